"""Cold start: how long importing each function's module takes in a fresh interpreter.

Cloud Run functions pay this on every new instance before the first event is handled, so it
is measured the way the runtime pays it: a new `python` process that imports `main` from the
function's directory. Each function is imported RUNS times; the median and the slowest run are
printed next to the target, along with the heaviest imports from `python -X importtime`.

    python bench/cold_start.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS_MS = {"validate": 300, "submit": 1000, "status": 1000}


def import_seconds(function: str) -> float:
    source = ROOT / "functions" / function
    code = "import time; t = time.perf_counter(); import main; print(time.perf_counter() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
        env=_clean_env(),
    )
    return float(out.stdout.strip().splitlines()[-1])


def heaviest_imports(function: str, count: int = 5) -> list[tuple[int, str]]:
    source = ROOT / "functions" / function
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import main"],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
        env=_clean_env(),
    )
    rows = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2].rstrip()
        depth = len(name) - len(name.lstrip())
        if depth == 3:  # imported by main itself (importtime indents each level by two)
            rows.append((int(parts[1].strip()), name.strip()))
    return sorted(rows, reverse=True)[:count]


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.runs} fresh interpreters per function")
    print(f"{'function':<10} {'median ms':>10} {'max ms':>8} {'target ms':>10}  verdict")
    failed = False
    for function, target in TARGETS_MS.items():
        times = [import_seconds(function) * 1000 for _ in range(args.runs)]
        median = statistics.median(times)
        verdict = "met" if median < target else "NOT MET"
        failed |= median >= target
        print(f"{function:<10} {median:>10.0f} {max(times):>8.0f} {target:>10}  {verdict}")
    print("\nheaviest top-level imports (cumulative ms, one run each):")
    for function in TARGETS_MS:
        tops = ", ".join(f"{name} {us / 1000:.0f}" for us, name in heaviest_imports(function))
        print(f"  {function}: {tops}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
