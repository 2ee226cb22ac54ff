"""The local stack's pieces that need no emulator: the event bridge's CloudEvent mapping,
stopping process groups by PID, the prerequisite check, options and local.env."""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from autotune_local import event_bridge, processes
from autotune_local.demo import media_objects, report_issue_lines, shipped_examples
from autotune_local.prerequisites import MissingPrerequisite, find_executables
from autotune_local.processes import RunningProcess
from autotune_local.stack import StackOptions, options_with, stack_environment, write_env_file

STORAGE_ROUTE = {"kind": "storage", "target": "http://127.0.0.1:1/"}
PUBSUB_ROUTE = {"kind": "pubsub", "target": "http://127.0.0.1:1/", "topic": "tuning-requests"}


def push(data: bytes, attributes: dict) -> dict:
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": attributes,
            "messageId": "42",
            "publishTime": "2026-11-25T01:00:00Z",
        },
        "subscription": "projects/p/subscriptions/validate-push",
    }


def test_storage_notification_becomes_a_binary_storage_cloudevent() -> None:
    data = json.dumps({"bucket": "b", "name": "incoming/a.jsonl", "generation": "7"}).encode()
    attributes = {
        "bucketId": "b",
        "objectId": "incoming/a.jsonl",
        "eventType": "OBJECT_FINALIZE",
        "eventTime": "2026-11-25T01:02:03Z",
    }
    headers, body = event_bridge.cloud_event_for(STORAGE_ROUTE, "p", push(data, attributes))
    assert headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
    assert headers["ce-source"] == "//storage.googleapis.com/projects/_/buckets/b"
    assert headers["ce-subject"] == "objects/incoming/a.jsonl"
    assert (
        headers["ce-id"] == "42"
        and headers["ce-time"] == "2026-11-25T01:02:03Z"
        and headers["ce-specversion"] == "1.0"
    )
    assert body == data


def test_pubsub_message_becomes_a_message_published_cloudevent() -> None:
    headers, body = event_bridge.cloud_event_for(PUBSUB_ROUTE, "p", push(b'{"x": 1}', {"k": "v"}))
    assert headers["ce-type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert headers["ce-source"] == "//pubsub.googleapis.com/projects/p/topics/tuning-requests"
    envelope = json.loads(body)
    assert base64.b64decode(envelope["message"]["data"]) == b'{"x": 1}'
    assert (
        envelope["message"]["attributes"] == {"k": "v"} and envelope["message"]["messageId"] == "42"
    )
    assert envelope["subscription"] == "projects/p/subscriptions/validate-push"


@pytest.mark.parametrize(
    ("route", "body"),
    [
        (STORAGE_ROUTE, {}),
        (STORAGE_ROUTE, push(b"{}", {"eventType": "OBJECT_FINALIZE"})),
        (STORAGE_ROUTE, push(b"{}", {"bucketId": "b", "objectId": "o", "eventType": "SOMETHING"})),
        (PUBSUB_ROUTE, {"message": {"data": ""}}),
    ],
)
def test_unreadable_push_requests_are_refused(route: dict, body: dict) -> None:
    with pytest.raises(event_bridge.UnreadablePush):
        event_bridge.cloud_event_for(route, "p", body)


def test_stop_ends_the_whole_process_group_children_included(tmp_path: Path) -> None:
    # A wrapper that starts a child, like the Firestore emulator's script starting Java.
    proc = processes.launch(
        "wrapper", ["bash", "-c", "sleep 300 & sleep 300; wait"], env=os.environ, log_dir=tmp_path
    )
    deadline = time.monotonic() + 10
    while len(processes.group_pids(proc)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    members = processes.group_pids(proc)
    assert len(members) >= 3
    processes.stop([proc])
    assert processes.group_pids(proc) == []
    assert not processes.is_running(proc)


def test_a_recycled_pid_is_never_signalled() -> None:
    # Our own PID, recorded with another start time: it is someone else's now, so hands off.
    stale = RunningProcess(name="stale", pid=os.getpid(), started="1", log="")
    assert processes.group_pids(stale) == []
    processes.stop([stale])  # would kill this test run if it signalled


def test_missing_emulators_say_how_to_install_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CLOUDSDK_ROOT_DIR", raising=False)
    with pytest.raises(MissingPrerequisite) as caught:
        find_executables()
    message = str(caught.value)
    assert "gcloud" in message and "Java" in message
    assert (
        "google-cloud-cli-pubsub-emulator" in message
        and "google-cloud-cli-firestore-emulator" in message
    )


def test_overrides_go_to_the_stack_or_the_pipeline_config() -> None:
    options = options_with(
        max_concurrent_jobs=3, job_seconds=2.5, allowed_media_buckets=("media-bucket",)
    )
    assert options.job_seconds == 2.5
    assert dict(options.config_overrides) == {
        "max_concurrent_jobs": 3,
        "allowed_media_buckets": ("media-bucket",),
    }
    with pytest.raises(TypeError, match="no_such_option"):
        options_with(no_such_option=1)
    assert StackOptions().max_delivery_attempts == 5


def test_local_env_exports_every_variable_a_shell_can_source(tmp_path: Path) -> None:
    from autotune.config import PipelineConfig

    ports = {
        "pubsub": 1,
        "firestore": 2,
        "storage": 3,
        "tuning": 4,
        "bridge": 5,
        "validate": 6,
        "submit": 7,
        "status": 8,
    }
    env = stack_environment(
        PipelineConfig(project="p", bucket="b", vertex_endpoint="http://127.0.0.1:4"), ports
    )
    env["AUTOTUNE_TUNING_SERVICE_ACCOUNT"] = "it's quoted"
    write_env_file(tmp_path / "local.env", env)
    out = subprocess.run(
        ["bash", "-c", f"source {shlex.quote(str(tmp_path / 'local.env'))} && env"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sourced = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert sourced["PUBSUB_EMULATOR_HOST"] == "127.0.0.1:1"
    assert sourced["STORAGE_EMULATOR_HOST"] == "http://127.0.0.1:3"
    assert sourced["AUTOTUNE_SUBMIT_URL"] == "http://127.0.0.1:7"
    assert sourced["AUTOTUNE_TUNING_SERVICE_ACCOUNT"] == "it's quoted"


def test_demo_finds_the_shipped_examples_and_the_media_they_name() -> None:
    good, bad, multimodal = shipped_examples()
    assert good.path.exists() and bad.path.exists() and multimodal.path.exists()
    assert multimodal.media_dir is not None
    placed = media_objects(multimodal.path.read_text(), multimodal.media_dir, "autotune-datasets")
    assert placed and all(path.is_file() for path in placed.values())
    text = '{"fileData": {"fileUri": "gs://autotune-datasets/media/x.png"}} {"fileUri": "gs://other/media/x.png"}'
    assert media_objects(text, Path("/nonexistent"), "autotune-datasets") == {}


def test_demo_summary_says_how_many_problems_it_did_not_list() -> None:
    issues = [
        {
            "file": "gs://b/t.jsonl",
            "role": "train",
            "line": n,
            "code": "invalid_json",
            "severity": "error",
            "field": None,
            "message": "not JSON",
        }
        for n in range(1, 6)
    ]
    issues.append(
        {
            "file": "gs://b/t.jsonl",
            "role": "train",
            "line": 9,
            "code": "blank_line",
            "severity": "warning",
            "field": None,
            "message": "empty line",
        }
    )
    report = {
        "errors": issues,
        "counts": {"invalid_json": 11, "blank_line": 1},
        "totals": {"errors": 11, "warnings": 1},
    }
    lines = report_issue_lines(report, listed=5)
    assert len(lines) == 6 and all("invalid_json" in line for line in lines[:5])
    assert "7 more not listed" in lines[5]
    # A report stored before it carried totals: its counts say the same.
    assert (
        "7 more not listed"
        in report_issue_lines({k: v for k, v in report.items() if k != "totals"}, listed=5)[5]
    )
    assert (
        len(
            report_issue_lines(
                {"errors": issues[:2], "totals": {"errors": 2, "warnings": 0}}, listed=5
            )
        )
        == 2
    )
    assert report_issue_lines(None) == []


def test_commands_that_need_a_stack_say_how_to_start_one(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from autotune.cli import app

    runner = CliRunner()
    down = runner.invoke(app, ["down", "--state-dir", str(tmp_path)])
    assert down.exit_code == 0 and "no local stack was running" in down.output
    dataset = tmp_path / "d.jsonl"
    dataset.write_text("{}\n")
    upload = runner.invoke(app, ["upload", str(dataset), "--state-dir", str(tmp_path)])
    assert upload.exit_code == 1
    assert "autotune up --detach" in upload.output


def test_ctrl_c_as_the_ready_line_is_printed_stops_the_stack_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Ctrl-C sent the moment `up` says it is ready (a person, or a test that waits for the
    # line) lands while the line is being written: it must stop the stack like any other Ctrl-C.
    from types import SimpleNamespace

    from typer.testing import CliRunner

    import autotune.cli.stack as stack_cli
    import autotune_local.stack as local_stack
    from autotune.cli import app

    class StackInterruptedWhileReady:
        project, bucket, log_dir = "p", "b", tmp_path / "logs"
        config = SimpleNamespace(incoming_prefix="incoming/")
        stopped = 0

        @property
        def env(self) -> dict[str, str]:
            raise KeyboardInterrupt  # read for the ready line

        def stop(self) -> None:
            self.stopped += 1

    stack = StackInterruptedWhileReady()
    monkeypatch.setattr(local_stack, "start_stack", lambda options: stack)
    monkeypatch.setattr(stack_cli, "_stop_on_sigterm", lambda: None)  # leave pytest's handlers be
    result = CliRunner().invoke(app, ["up", "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 0, result.output
    assert stack.stopped == 1
    assert (
        "stopping the local stack" in result.output and "stopped: no process left" in result.output
    )


def test_ports_are_picked_outside_the_ephemeral_range_and_never_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A port from the ephemeral range can be taken by an outgoing connection's local end
    # between the pick and the server's bind: the dashboard once failed that way.
    ephemeral = processes.ephemeral_ports()
    picked = [processes.free_port() for _ in range(300)]
    assert len(set(picked)) == len(picked)
    assert not any(port in ephemeral for port in picked)
    assert all(processes.LOWEST_PICKED_PORT <= port < 65536 for port in picked)

    odd_range = tmp_path / "ip_local_port_range"
    odd_range.write_text("1024\t65000\n")  # no room outside it: the OS picks
    monkeypatch.setattr(processes, "EPHEMERAL_RANGE_FILE", odd_range)
    assert processes.ephemeral_ports() == range(1024, 65001)
    port = processes.free_port()
    assert port not in picked and 0 < port < 65536


def test_the_ephemeral_range_defaults_to_linuxs_when_it_cannot_be_read(tmp_path: Path) -> None:
    assert processes.ephemeral_ports(tmp_path / "missing") == range(32768, 61000)
    garbled = tmp_path / "garbled"
    garbled.write_text("not numbers")
    assert processes.ephemeral_ports(garbled) == range(32768, 61000)
