"""`autotune watch` against the local stack, as a process with a set terminal width: one line
per event within that width; `--json` one CloudEvent per line; `--type` lets only that type by."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sample_data import conversation_dataset, unique
from typer.testing import CliRunner

from autotune.cli import app

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from autotune.cli import main; main()"]
WATCH_SECONDS = "150"  # watch stops by itself: a bound on a hang, nothing here measures speed


def start_watch(stack, columns: int, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TTY_COMPATIBLE"}} | {
        "COLUMNS": str(columns)
    }
    watch = subprocess.Popen(
        [*CLI, "watch", "--seconds", WATCH_SECONDS, "--state-dir", str(stack.state_dir), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    # Its subscription exists once it says so: events published after this reach it.
    stream = watch.stderr if "--json" in args else watch.stdout
    assert stream is not None
    assert stream.readline().startswith("listening on tuning-events")
    return watch


def stop(watch: subprocess.Popen) -> None:
    if watch.poll() is None:
        watch.terminate()
    watch.communicate(timeout=60)


def test_watch_lines_fit_and_json_lines_are_filtered_cloudevents(
    local_stack, tmp_path: Path
) -> None:
    text_watch = start_watch(local_stack, 70)
    json_watch = start_watch(local_stack, 70, "--json", "--type", "rejected")
    try:
        accepted = tmp_path / (unique("watched-ok") + ".jsonl")
        accepted.write_bytes(conversation_dataset(accepted.name))
        rejected = tmp_path / (unique("watched-bad-" + "x" * 60) + ".jsonl")
        rejected.write_bytes(conversation_dataset(rejected.name, 18) + b"not json\n")
        for path in (accepted, rejected):
            result = CliRunner().invoke(
                app,
                [
                    "upload",
                    str(path),
                    "--wait",
                    "--timeout",
                    "180",
                    "--state-dir",
                    str(local_stack.state_dir),
                ],
            )
            assert result.exit_code in (0, 1), result.output

        rejected_uri = f"gs://{local_stack.bucket}/incoming/{rejected.name}"
        assert json_watch.stdout is not None and text_watch.stdout is not None
        documents = []
        for line in json_watch.stdout:  # ends when watch's --seconds run out
            documents.append(json.loads(line))
            if documents[-1]["subject"] == rejected_uri:
                break
        assert documents and documents[-1]["subject"] == rejected_uri, documents
        assert {d["type"] for d in documents} == {"autotune.dataset.v1.rejected"}
        assert documents[-1]["data"]["report_uri"].startswith(
            f"gs://{local_stack.bucket}/reports/"
        )  # whole, not cut

        lines = []
        wanted = {"autotune.dataset.v1.accepted", "autotune.dataset.v1.rejected"}
        for line in text_watch.stdout:  # Pub/Sub keeps no order: read until both have come
            lines.append(line.rstrip("\n"))
            if wanted <= {line.split(" ", 1)[0] for line in lines}:
                break
        assert wanted <= {line.split(" ", 1)[0] for line in lines}, lines
        assert all(len(line) <= 70 for line in lines), lines
        assert all(
            line.endswith("…") for line in lines if line.startswith("autotune.dataset.v1.rejected")
        ), lines
    finally:
        stop(text_watch)
        stop(json_watch)
