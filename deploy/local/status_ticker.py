"""The local stand-in for Cloud Scheduler: a tick on status-ticks every few seconds.

Vertex AI announces no job completion, so the status function polls on this tick.

    python -m autotune_local.status_ticker --project P --topic status-ticks --seconds 3
(PUBSUB_EMULATOR_HOST must point at the Pub/Sub emulator.)
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from datetime import UTC, datetime

from autotune import structured_log


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)

    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(args.project, args.topic)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    structured_log.info("status ticker started", topic=topic, seconds=args.seconds)
    while not stopping.wait(args.seconds):
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        try:
            publisher.publish(
                topic, json.dumps({"time": stamp}).encode(), origin="autotune-local-ticker"
            ).result(timeout=10)
        except Exception as exc:  # a missed tick is harmless: the next one comes in seconds
            structured_log.warning("tick not published", error=str(exc))
    structured_log.info("status ticker stopped")


if __name__ == "__main__":
    main()
