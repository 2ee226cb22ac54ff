"""`autotune up --notify-url`: a receiver on this machine gets the job's end pushed to it, in
Pub/Sub's push format, with the CloudEvent context in the attributes. The Pub/Sub emulator
sends no token and does not apply the filter: the test states both, so a change shows."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sample_data import conversation_dataset, unique

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from autotune.cli import main; main()"]


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], dict]] = []
        self.arrived = threading.Condition()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # http.server calls it by this name
        receiver = self.server
        assert isinstance(receiver, Receiver)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with receiver.arrived:
            receiver.received.append((dict(self.headers), json.loads(body)))
            receiver.arrived.notify_all()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_up_with_notify_url_pushes_the_jobs_end_to_a_receiver(tmp_path: Path) -> None:
    receiver = Receiver()
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/autotune"
    state_dir = tmp_path / "state"
    assert (
        cli(
            "up", "--detach", "--notify-url", "ftp://nowhere", "--state-dir", str(state_dir)
        ).returncode
        == 2
    )
    started = cli(
        "up",
        "--detach",
        "--notify-url",
        url,
        "--job-seconds",
        "2",
        "--tick-seconds",
        "1",
        "--state-dir",
        str(state_dir),
    )
    try:
        assert started.returncode == 0, started.stderr
        assert f"job end events are pushed to {url}" in started.stdout
        dataset = tmp_path / f"{unique('notify')}.jsonl"
        dataset.write_bytes(conversation_dataset(dataset.stem))
        uploaded = cli("upload", str(dataset), "--state-dir", str(state_dir))
        assert uploaded.returncode == 0, uploaded.stderr
        subject = f"gs://autotune-datasets/incoming/{dataset.name}"

        def ended() -> tuple[dict, dict] | None:
            return next(
                (
                    (h, b)
                    for h, b in receiver.received
                    if b["message"]["attributes"].get("ce-type") == "autotune.job.v1.succeeded"
                    and b["message"]["attributes"].get("ce-subject") == subject
                ),
                None,
            )

        deadline = time.monotonic() + 180  # a bound on a hang, not a measure of speed
        with receiver.arrived:
            while ended() is None and time.monotonic() < deadline:
                receiver.arrived.wait(timeout=2)
        found = ended()
        assert found is not None, [
            b["message"]["attributes"].get("ce-type") for _, b in receiver.received
        ]
        headers, body = found
        assert body["subscription"] == "projects/autotune-local/subscriptions/autotune-notify"
        payload = json.loads(base64.b64decode(body["message"]["data"]))
        assert (
            payload["state"] == "SUCCEEDED"
            and payload["tuned_model"]
            and payload["dataset_uri"] == subject
        )
        # What the emulator does not do, unlike Google Cloud: sign the push, apply the filter.
        assert "Authorization" not in headers
        types = {b["message"]["attributes"].get("ce-type") for _, b in receiver.received}
        assert "autotune.dataset.v1.accepted" in types
    finally:
        cli("down", "--state-dir", str(state_dir))
        receiver.shutdown()
