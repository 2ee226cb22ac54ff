"""The local stack's speed: how long `up` and `down` take, and how long a dataset takes from
upload to its verdict on tuning-events (through fake-gcs-server, the event bridge and the
validate function), for a small file and a generated large one.

    python bench/local_stack.py [--runs 3] [--large-mb 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from autotune.events import EventType
from autotune_local.stack import options_with, start_stack

ROOT = Path(__file__).resolve().parents[1]


def dataset_of_size(megabytes: int) -> bytes:
    line = (
        json.dumps(
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [
                            {
                                "text": "Summarise the following paragraph in one sentence. "
                                + "lorem ipsum " * 40
                            }
                        ],
                    },
                    {"role": "model", "parts": [{"text": "A short summary of the paragraph."}]},
                ]
            }
        ).encode()
        + b"\n"
    )
    # Distinct lines, so duplicate detection does not short-cut anything.
    lines, size, i = [], 0, 0
    while size < megabytes * 1_000_000:
        row = line.replace(b"paragraph.", f"paragraph {i}.".encode(), 1)
        lines.append(row)
        size += len(row)
        i += 1
    return b"".join(lines)


def verdict_seconds(stack, listener, name: str, data: bytes) -> tuple[float, float, str]:
    began = time.monotonic()
    stack.upload(data, name)
    uploaded = time.monotonic()
    uri = f"gs://{stack.bucket}/{name}"
    received = listener.wait_for(
        lambda r: (
            r.event.subject == uri
            and r.event.type in (EventType.DATASET_ACCEPTED, EventType.DATASET_REJECTED)
        ),
        timeout=600,
    )
    return uploaded - began, time.monotonic() - uploaded, received.event.type.value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--large-mb", type=int, default=200)
    args = parser.parse_args()
    ups, downs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            began = time.monotonic()
            stack = start_stack(options_with(state_dir=Path(tmp) / f"run{run}"))
            ups.append(time.monotonic() - began)
            if run < args.runs - 1:
                began = time.monotonic()
                stack.stop()
                downs.append(time.monotonic() - began)
        print(
            f"autotune up:   median {statistics.median(ups):.2f} s, max {max(ups):.2f} s over {len(ups)} starts (all servers ready, topics and bucket created)"
        )
        print(
            f"autotune down: median {statistics.median(downs or [0]):.2f} s over {len(downs)} stops"
        )
        listener = stack.listen_events()
        small = (ROOT / "examples" / "classification.jsonl").read_bytes()
        up_s, verdict_s, kind = verdict_seconds(
            stack, listener, "incoming/bench-small.jsonl", small
        )
        print(
            f"small dataset ({len(small) / 1000:.1f} kB): upload {up_s:.2f} s, upload -> {kind} {verdict_s:.2f} s"
        )
        large = dataset_of_size(args.large_mb)
        up_s, verdict_s, kind = verdict_seconds(
            stack, listener, "incoming/bench-large.jsonl", large
        )
        print(
            f"large dataset ({len(large) / 1e6:.0f} MB): upload {up_s:.2f} s, upload -> {kind} {verdict_s:.2f} s "
            f"({len(large) / 1e6 / verdict_s:.0f} MB/s end to end: read from storage, validated, report written, published)"
        )
        listener.close()
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
