"""Validator throughput and peak memory, next to a bare json.loads loop over the same file.

    .venv/bin/python bench/validator_bench.py                 # 200,000 text examples (~350 MB)
    .venv/bin/python bench/validator_bench.py --examples 20000
    .venv/bin/python bench/validator_bench.py --long-line-mb 300   # also: one 300 MB line, no newline
    .venv/bin/python bench/validator_bench.py --tiny 2000000       # also: 2M ~100-byte examples

The dataset is generated once into bench/out/ (gitignored) and reused. Each measurement runs
in a fresh child process that reports its own wall time and peak RSS (getrusage ru_maxrss),
so the figures do not include this script's memory. Single-threaded: the validator uses one
core. A script, not a test: the machine is shared and timings vary from run to run.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"

_WORDS = (
    "the customer asked about a refund for the order placed last week and the agent explained the policy "
    "shipping times vary by region while express delivery arrives within two business days for most cities "
    "please summarise the conversation between the two speakers and keep every decision they agreed on "
    "the contract renews automatically unless either party gives notice thirty days before the end of term "
    "our model should answer in a friendly tone and cite the relevant section of the handbook when it can"
).split()

_CHILD = r"""
import json, os, resource, sys, time
mode, path = sys.argv[1], sys.argv[2]
started = time.perf_counter()
if mode == "validate":
    from autotune.settings import TuningSettings
    from autotune.validation import DatasetSource, file_chunks, validate_dataset
imported = time.perf_counter()
if mode == "json":
    n = 0
    with open(path, "rb") as handle:
        for line in handle:
            json.loads(line)
            n += 1
    result = {"examples": n}
else:
    report = validate_dataset(
        DatasetSource(path, file_chunks(path), os.path.getsize(path)),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=3),
    )
    result = {"examples": report.example_count, "valid": report.valid, "counts": report.counts}
# Throughput excludes the import (reported apart): json is imported at interpreter start.
result["seconds"] = time.perf_counter() - imported
result["import_seconds"] = imported - started
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def generate(path: Path, examples: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    sentences = [" ".join(rng.choices(_WORDS, k=rng.randint(8, 24))).capitalize() + "." for _ in range(5000)]

    def text(n_sentences: int) -> str:
        return " ".join(rng.choices(sentences, k=n_sentences))

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for i in range(examples):
            turns = []
            for t in range(rng.choice((2, 2, 4))):
                role = "user" if t % 2 == 0 else "model"
                turns.append({"role": role, "parts": [{"text": f"#{i} " + text(rng.randint(3, 9))}]})
            example: dict = {"contents": turns}
            if rng.random() < 0.5:
                example["systemInstruction"] = {"parts": [{"text": text(2)}]}
            handle.write(json.dumps(example) + "\n")
    tmp.rename(path)


def measure(mode: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(path)], check=True, capture_output=True, text=True, cwd=ROOT
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200_000)
    parser.add_argument("--long-line-mb", type=int, default=0, help="also validate one line of this many MB")
    parser.add_argument("--tiny", type=int, default=0, help="also validate this many tiny (~100-byte) examples: the most examples per byte")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, alternating; the best and median are shown")
    args = parser.parse_args()

    path = OUT / f"text-{args.examples}.jsonl"
    if not path.exists():
        print(f"generating {path.relative_to(ROOT)} ...", flush=True)
        generate(path, args.examples)
    size_mb = path.stat().st_size / 1e6
    print(f"dataset: {path.relative_to(ROOT)}  {args.examples:,} examples  {size_mb:,.1f} MB")

    runs: dict[str, list[dict]] = {"json": [], "validate": []}
    for _ in range(max(1, args.repeat)):
        for mode in runs:
            runs[mode].append(measure(mode, path))
    best = {mode: min(rs, key=lambda r: r["seconds"]) for mode, rs in runs.items()}
    median = {mode: sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2] for mode, rs in runs.items()}
    for mode, name in (("json", "json.loads loop"), ("validate", "validator")):
        r, m = best[mode], median[mode]
        print(
            f"{name:16s} {size_mb / r['seconds']:8.1f} MB/s  {r['examples'] / r['seconds']:10,.0f} examples/s"
            f"  {r['seconds']:6.2f} s (median of {len(runs[mode])}: {m['seconds']:.2f} s)"
            f"  peak RSS {max(x['peak_rss_mb'] for x in runs[mode]):6.1f} MB"
        )
    ratio = best["json"]["seconds"] / best["validate"]["seconds"]
    ratio_median = median["json"]["seconds"] / median["validate"]["seconds"]
    print(f"validator speed / json.loads speed: {ratio:.2f}x best, {ratio_median:.2f}x median")
    print(f"validator report: valid={best['validate']['valid']} counts={best['validate']['counts']}")
    print(f"import of autotune.validation: {best['validate']['import_seconds'] * 1000:.0f} ms (not in the figures above)")

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
