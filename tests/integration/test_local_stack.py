"""The local stack as a whole: `autotune up`/`down` leave no process behind (checked by PID),
a second `up` refuses to replace a running stack and, with --replace, cleans what a killed one
left; `watch` stops once the stack is gone; and the event bridge makes Pub/Sub deliver a
storage event again when the function fails, then dead-letters it after five attempts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from autotune.events import EventType
from autotune_local import processes
from autotune_local.stack import STATE_FILE, FunctionSource, recorded_processes

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from autotune.cli import main; main()"]
REQUIRED_ENV = [
    "STORAGE_EMULATOR_HOST",
    "PUBSUB_EMULATOR_HOST",
    "FIRESTORE_EMULATOR_HOST",
    "AUTOTUNE_PROJECT",
    "AUTOTUNE_BUCKET",
    "AUTOTUNE_EVENTS_TOPIC",
    "AUTOTUNE_REQUESTS_TOPIC",
    "AUTOTUNE_TICKS_TOPIC",
    "AUTOTUNE_VERTEX_ENDPOINT",
    "AUTOTUNE_VALIDATE_URL",
    "AUTOTUNE_SUBMIT_URL",
    "AUTOTUNE_STATUS_URL",
    "AUTOTUNE_MAX_CONCURRENT_JOBS",
]


def every_pid(state_dir: Path) -> set[int]:
    """Every live process of the recorded stack, children included (the whole process groups)."""
    return {pid for proc in recorded_processes(state_dir) for pid in processes.group_pids(proc)}


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


# The start of `up`'s ready line (a traceback may hold the word "ready" too).
READY_LINE = "autotune local stack ready in "


def read_until_ready(up: subprocess.Popen) -> str:
    """The `up` output up to its ready line (a warning printed first must not fail the test)."""
    assert up.stdout is not None
    seen = []
    for line in up.stdout:
        seen.append(line)
        if line.startswith(READY_LINE):
            break
    return "".join(seen)


def stop_leftovers(state_dir: Path) -> None:
    """Whatever a failed test left running, stopped by the PIDs the stack recorded."""
    processes.stop(recorded_processes(state_dir))


def cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_up_detach_writes_local_env_and_down_leaves_no_process(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    result = cli("up", "--detach", "--state-dir", str(state_dir))
    assert result.returncode == 0, result.stderr
    assert "ready" in result.stdout and "autotune upload" in result.stdout
    pids = every_pid(state_dir)
    try:
        names = {p.name for p in recorded_processes(state_dir)}
        assert {
            "pubsub",
            "firestore",
            "storage",
            "tuning",
            "bridge",
            "ticker",
            "validate",
            "submit",
            "status",
            "dashboard",
        } <= names
        # The Firestore wrapper script runs Java as a child: it is in the group, so it is counted.
        assert len(pids) > len(names)
        env_text = (state_dir / "local.env").read_text()
        exported = dict(
            line[len("export ") :].split("=", 1)
            for line in env_text.splitlines()
            if line.startswith("export ")
        )
        assert set(REQUIRED_ENV) <= set(exported)
        assert exported["AUTOTUNE_VERTEX_ENDPOINT"].startswith("http://127.0.0.1:")
        assert exported["AUTOTUNE_EVENTS_TOPIC"] == "tuning-events"
        # The live page: its address printed and in local.env, answering.
        assert exported["AUTOTUNE_DASHBOARD_URL"] in result.stdout
        with urllib.request.urlopen(exported["AUTOTUNE_DASHBOARD_URL"], timeout=10) as page:
            assert page.status == 200 and b"autotune pipeline" in page.read()
        assert all((state_dir / "logs" / f"{name}.log").exists() for name in names)
        uploaded = cli(
            "upload",
            str(REPO / "examples" / "classification.jsonl"),
            "--epochs",
            "2",
            "--state-dir",
            str(state_dir),
        )
        assert uploaded.returncode == 0, uploaded.stderr
        assert "uploaded gs://autotune-datasets/incoming/classification.jsonl" in uploaded.stdout
        assert "'autotune-epochs': '2'" in uploaded.stdout

        again = cli("up", "--detach", "--state-dir", str(state_dir))
        assert again.returncode == 1, again.stdout
        assert "already running" in again.stderr and "--replace" in again.stderr
        assert "1 upload(s)" in again.stderr and "ledger record(s)" in again.stderr
        assert alive(pids) == pids  # the running stack was left alone

        watch = subprocess.Popen(
            [*CLI, "watch", "--state-dir", str(state_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert watch.stdout is not None
        assert watch.stdout.readline().startswith("listening on tuning-events")
    finally:
        down = cli("down", "--state-dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert alive(pids) == set()
    assert not (state_dir / STATE_FILE).exists()
    try:
        # A bound on a hang, not a measure of speed: watch notices the stack is gone and stops.
        watch_out, watch_err = watch.communicate(timeout=120)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 1 and "has stopped: no more events will come" in watch_err


def _sigint_as_a_terminal_sends_it() -> None:
    # A test runner started in the background of a script inherits SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler: give the child the disposition a terminal has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_on_up_stops_every_process(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    up = subprocess.Popen(
        [*CLI, "up", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        preexec_fn=_sigint_as_a_terminal_sends_it,
    )
    try:
        output = read_until_ready(up)
        assert READY_LINE in output, output
        pids = every_pid(state_dir)
        assert pids
        up.send_signal(signal.SIGINT)
        rest, _ = up.communicate(timeout=60)
        assert up.returncode == 0, output + rest
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        survivors = alive(every_pid(state_dir))
        stop_leftovers(state_dir)
    assert survivors == set()
    assert alive(pids) == set()


def test_second_up_refuses_then_with_replace_cleans_a_stack_left_by_a_killed_up_and_reuses_no_data(
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    up = subprocess.Popen(
        [*CLI, "up", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        assert READY_LINE in read_until_ready(up)
    except BaseException:
        up.kill()
        stop_leftovers(state_dir)
        raise
    first_pids = every_pid(state_dir)
    first_env = json.loads((state_dir / STATE_FILE).read_text())["env"]
    from autotune_local.clients import storage_client, upload_object

    upload_object(
        storage_client(first_env),
        first_env["AUTOTUNE_BUCKET"],
        "notes/left-behind.txt",
        b"old data",
    )
    up.kill()  # SIGKILL: no chance to clean up; its servers, in their own sessions, live on
    up.wait()
    assert alive(first_pids) == first_pids - {up.pid}

    refused = cli("up", "--detach", "--state-dir", str(state_dir))
    assert refused.returncode == 1 and "already running" in refused.stderr
    assert alive(first_pids) == first_pids - {
        up.pid
    }  # a killed `up` left servers holding data: kept unless told
    result = cli("up", "--detach", "--replace", "--state-dir", str(state_dir))
    try:
        assert result.returncode == 0, result.stderr
        assert alive(first_pids) == set()
        second_env = json.loads((state_dir / STATE_FILE).read_text())["env"]
        bucket = storage_client(second_env).bucket(second_env["AUTOTUNE_BUCKET"])
        assert bucket.get_blob("notes/left-behind.txt") is None
    finally:
        second_pids = every_pid(state_dir)
        cli("down", "--state-dir", str(state_dir))
    assert alive(second_pids) == set()


@pytest.fixture(scope="module")
def flaky_stack(make_local_stack, tmp_path_factory):
    deliveries = tmp_path_factory.mktemp("deliveries")
    stack = make_local_stack(
        functions={
            "validate": FunctionSource(
                REPO / "tests" / "integration" / "functions" / "flaky_validate.py", "validate"
            ),
            "submit": None,
            "status": None,
        },
        extra_env={"AUTOTUNE_TEST_DELIVERIES": str(deliveries)},
    )
    yield stack, deliveries
    stack.stop()


def good_dataset() -> bytes:
    rows = [
        {
            "contents": [
                {"role": "user", "parts": [{"text": f"Q{i}"}]},
                {"role": "model", "parts": [{"text": f"A{i}"}]},
            ]
        }
        for i in range(20)
    ]
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def test_bridge_delivers_again_when_the_function_fails(flaky_stack) -> None:
    stack, deliveries = flaky_stack
    events = stack.listen_events()
    name = f"incoming/fails-once-{uuid.uuid4().hex[:8]}.jsonl"
    stack.upload(good_dataset(), name)

    received = events.wait_for(
        lambda r: r.event.subject == f"gs://{stack.bucket}/{name}", timeout=60
    )

    assert received.event.type is EventType.DATASET_ACCEPTED
    attempts = sorted(p.name for p in deliveries.iterdir() if p.read_text() == name)
    assert len(attempts) == 2  # refused once, delivered again, then accepted
    bridge_log = [
        json.loads(x)
        for x in (stack.log_dir / "bridge.log").read_text().splitlines()
        if x.startswith("{")
    ]
    statuses = [e["status"] for e in bridge_log if e.get("subject") == f"objects/{name}"]
    assert statuses[0] >= 500 and statuses[-1] == 200
    events.close()


def test_events_the_function_always_refuses_end_in_the_dead_letter_topic(flaky_stack) -> None:
    # Three refused together: under a retry policy the emulator would stop redelivering them.
    stack, deliveries = flaky_stack
    names = [f"incoming/always-fails-{i}-{uuid.uuid4().hex[:8]}.jsonl" for i in range(3)]
    for name in names:
        stack.upload(good_dataset(), name)
    subscriber = stack.subscriber()
    dead_letter = subscriber.subscription_path(
        stack.project, stack.subscriptions.dead_letter["validate"]
    )
    from google.api_core import exceptions as gexc

    deadline = time.monotonic() + 120
    found: set[str] = set()
    while found != set(names) and time.monotonic() < deadline:
        try:
            response = subscriber.pull(subscription=dead_letter, max_messages=10, timeout=2)
        except (gexc.DeadlineExceeded, gexc.RetryError):
            continue
        for item in response.received_messages:
            found.add(item.message.attributes.get("objectId"))
    assert found >= set(names), f"never dead-lettered: {set(names) - found}"
    for name in names:
        assert len([p for p in deliveries.iterdir() if p.read_text() == name]) == 5, name


def test_demo_follows_the_shipped_examples_to_their_end_and_leaves_no_process(
    tmp_path: Path,
) -> None:
    from autotune_local.demo import run_demo

    lines: list[str] = []
    finished = run_demo(
        echo=lines.append, timeout=240, job_seconds=2.0, state_dir=tmp_path / "demo"
    )
    output = "\n".join(lines)
    assert finished, output
    assert (
        "autotune.dataset.v1.rejected  gs://autotune-datasets/incoming/conversation-shape.jsonl"
        in output
    )
    assert (
        "autotune.job.v1.succeeded  gs://autotune-datasets/incoming/classification.jsonl" in output
    )
    assert "autotune.job.v1.succeeded  gs://autotune-datasets/incoming/multimodal.jsonl" in output
    assert "tuned_model=projects/autotune-local/" in output
    assert lines[-1] == "stopped: no process left."
