"""The whole `autotune validate` command next to bare decode loops over the same file, each a
whole process, side by side in one run.

    .venv/bin/python bench/validator_bench.py                 # 200,000 text examples (~350 MB)
    .venv/bin/python bench/validator_bench.py --examples 20000
    .venv/bin/python bench/validator_bench.py --long-line-mb 300   # also: one 300 MB line, no newline
    .venv/bin/python bench/validator_bench.py --tiny 2000000       # also: 2M ~100-byte examples

Three processes are timed from the outside (wall clock from spawn to exit, so interpreter start
and imports count for all three), alternating, `--repeat` times each:

- json:     `python -c` a bare `for line in file: json.loads(line)` loop
- msgspec:  `python -c` a bare `for line in file: msgspec.json.decode(line)` loop
- validate: `autotune validate FILE --json --model gemini-3.5-flash --epochs 3`, the command a
            user runs (its report goes to a pipe and is discarded)

Peak RSS and CPU time (user + system, all threads) are each child's own (os.wait4): on a shared
machine the CPU time wanders much less than the wall clock. The dataset is generated once into bench/out/
(gitignored) and reused. A script, not a test: the machine is shared and timings vary.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
MODEL = "gemini-3.5-flash"

_WORDS = (
    "the customer asked about a refund for the order placed last week and the agent explained the policy "
    "shipping times vary by region while express delivery arrives within two business days for most cities "
    "please summarise the conversation between the two speakers and keep every decision they agreed on "
    "the contract renews automatically unless either party gives notice thirty days before the end of term "
    "our model should answer in a friendly tone and cite the relevant section of the handbook when it can"
).split()

_JSON_LOOP = r"""
import json, sys
n = 0
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        json.loads(line)
        n += 1
print(n)
"""

_MSGSPEC_LOOP = r"""
import sys, msgspec
decode = msgspec.json.decode
n = 0
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        decode(line)
        n += 1
print(n)
"""


def _command(mode: str, path: Path) -> list[str]:
    if mode == "json":
        return [sys.executable, "-c", _JSON_LOOP, str(path)]
    if mode == "msgspec":
        return [sys.executable, "-c", _MSGSPEC_LOOP, str(path)]
    cli = Path(sys.executable).with_name("autotune")
    return [str(cli), "validate", str(path), "--json", "--model", MODEL, "--epochs", "3"]


def generate(path: Path, examples: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    sentences = [
        " ".join(rng.choices(_WORDS, k=rng.randint(8, 24))).capitalize() + "." for _ in range(5000)
    ]

    def text(n_sentences: int) -> str:
        return " ".join(rng.choices(sentences, k=n_sentences))

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for i in range(examples):
            turns = []
            for t in range(rng.choice((2, 2, 4))):
                role = "user" if t % 2 == 0 else "model"
                turns.append(
                    {"role": role, "parts": [{"text": f"#{i} " + text(rng.randint(3, 9))}]}
                )
            example: dict = {"contents": turns}
            if rng.random() < 0.5:
                example["systemInstruction"] = {"parts": [{"text": text(2)}]}
            handle.write(json.dumps(example) + "\n")
    tmp.rename(path)


def measure(mode: str, path: Path) -> dict:
    started = time.perf_counter()
    child = subprocess.Popen(
        _command(mode, path), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = child.communicate()
    seconds = time.perf_counter() - started
    # communicate() has reaped the child; its rusage comes from the wait status we re-read here.
    rss_mb, cpu = _rusage.pop(child.pid, (float("nan"), float("nan")))
    if mode != "validate" and child.returncode != 0:
        raise SystemExit(f"{mode} loop failed: {err.decode(errors='replace')}")
    result: dict = {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "peak_rss_mb": rss_mb,
        "exit": child.returncode,
    }
    if mode == "validate":
        if child.returncode not in (0, 1):
            raise SystemExit(
                f"autotune validate exited {child.returncode}: {err.decode(errors='replace')}{out[:2000]!r}"
            )
        report = json.loads(out)
        result.update(
            examples=report["files"]["train"]["examples"],
            valid=report["valid"],
            counts=report["counts"],
        )
    else:
        result["examples"] = int(out)
    return result


_rusage: dict[int, tuple[float, float]] = {}  # pid -> (peak RSS in MB, user + system CPU seconds)


def _install_wait4() -> None:
    """Popen reaps its child with waitpid; route that through wait4 to keep the child's own
    ru_maxrss (RUSAGE_CHILDREN would give the largest child so far, not this one)."""
    original = os.waitpid

    def waitpid(pid: int, options: int):
        if pid > 0:
            got, status, usage = os.wait4(pid, options)
            if got:
                _rusage[got] = (usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)
            return got, status
        return original(pid, options)

    subprocess.os.waitpid = waitpid  # type: ignore[attr-defined]  # subprocess re-exports os at run time only


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=200_000)
    parser.add_argument(
        "--long-line-mb", type=int, default=0, help="also validate one line of this many MB"
    )
    parser.add_argument(
        "--tiny",
        type=int,
        default=0,
        help="also validate this many tiny (~100-byte) examples: the most examples per byte",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each, alternating; the best and median are shown",
    )
    args = parser.parse_args()
    _install_wait4()

    path = OUT / f"text-{args.examples}.jsonl"
    if not path.exists():
        print(f"generating {path.relative_to(ROOT)} ...", flush=True)
        generate(path, args.examples)
    size_mb = path.stat().st_size / 1e6
    print(f"dataset: {path.relative_to(ROOT)}  {args.examples:,} examples  {size_mb:,.1f} MB")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")

    runs: dict[str, list[dict]] = {"json": [], "msgspec": [], "validate": []}
    for _ in range(max(1, args.repeat)):
        for mode in runs:
            runs[mode].append(measure(mode, path))
    best = {mode: min(rs, key=lambda r: r["seconds"]) for mode, rs in runs.items()}
    median = {
        mode: sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2] for mode, rs in runs.items()
    }
    names = {"json": "json.loads loop", "msgspec": "msgspec loop", "validate": "autotune validate"}
    for mode, name in names.items():
        r, m = best[mode], median[mode]
        print(
            f"{name:18s} {size_mb / r['seconds']:8.1f} MB/s  {r['examples'] / r['seconds']:10,.0f} examples/s"
            f"  {r['seconds']:6.2f} s (median of {len(runs[mode])}: {m['seconds']:.2f} s)"
            f"  cpu {min(x['cpu_seconds'] for x in runs[mode]):5.2f} s"
            f"  peak RSS {max(x['peak_rss_mb'] for x in runs[mode]):6.1f} MB"
        )
    for base in ("json", "msgspec"):
        print(
            f"autotune validate time / {names[base]} time: "
            f"{best['validate']['seconds'] / best[base]['seconds']:.2f}x best, "
            f"{median['validate']['seconds'] / median[base]['seconds']:.2f}x median, "
            f"{min(x['cpu_seconds'] for x in runs['validate']) / min(x['cpu_seconds'] for x in runs[base]):.2f}x CPU time"
        )
    print(f"load average at end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(
        f"validator report: valid={best['validate']['valid']} counts={best['validate']['counts']}"
    )

    if args.tiny:
        tiny_path = OUT / f"tiny-{args.tiny}.jsonl"
        if not tiny_path.exists():
            line = '{"contents":[{"role":"user","parts":[{"text":"q%d"}]},{"role":"model","parts":[{"text":"a"}]}]}\n'
            with open(tiny_path, "w") as handle:
                for i in range(args.tiny):
                    handle.write(line % i)
        r = measure("validate", tiny_path)
        mb = tiny_path.stat().st_size / 1e6
        print(
            f"{args.tiny:,} tiny examples ({mb:,.0f} MB): {mb / r['seconds']:.1f} MB/s, "
            f"{r['examples'] / r['seconds']:,.0f} examples/s, peak RSS {r['peak_rss_mb']:.1f} MB"
        )

    if args.long_line_mb:
        long_path = OUT / f"one-line-{args.long_line_mb}mb.jsonl"
        if not long_path.exists():
            block = b'{"contents": "' + b"x" * (1 << 20)
            with open(long_path, "wb") as handle:
                for _ in range(args.long_line_mb):
                    handle.write(block)
        r = measure("validate", long_path)
        mb = long_path.stat().st_size / 1e6
        print(
            f"one {mb:,.0f} MB line, no newline: {r['seconds']:.2f} s  peak RSS {r['peak_rss_mb']:.1f} MB"
            f"  counts={r['counts']}"
        )


if __name__ == "__main__":
    main()
