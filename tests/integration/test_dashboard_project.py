"""`autotune dashboard --project P` as a user runs it against a deployed project, pointed at the
local stack's emulators through the variables the Google client libraries read
(STORAGE_EMULATOR_HOST, FIRESTORE_EMULATOR_HOST, PUBSUB_EMULATOR_HOST) instead of Google Cloud:
the same clients and adapters, no local stack state. And the local stack's own page, announced
in local.env."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sample_data import conversation_dataset, unique

pytestmark = pytest.mark.integration

WAIT = 120.0
EMULATOR_VARIABLES = ("STORAGE_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")


@pytest.fixture(scope="module")
def stack(local_stack):
    return local_stack


def dashboard_subscriptions(stack) -> set[str]:
    return {
        s.name
        for s in stack.subscriber().list_subscriptions(
            request={"project": f"projects/{stack.project}"}
        )
        if "/autotune-dashboard-" in s.name
    }


def test_the_project_command_serves_the_page_from_the_project_and_cleans_up(
    stack, tmp_path: Path
) -> None:
    name = f"incoming/{unique('project-page')}.jsonl"
    generation = stack.upload(conversation_dataset(name), name)
    before = dashboard_subscriptions(stack)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AUTOTUNE_") and k not in EMULATOR_VARIABLES
    }
    env.update({k: stack.env[k] for k in EMULATOR_VARIABLES})
    env["AUTOTUNE_BUCKET"] = stack.bucket
    empty_state = tmp_path / "no-stack"  # no local stack here: the command must not find one
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("autotune")),
            "dashboard",
            "--project",
            stack.project,
            "--state-dir",
            str(empty_state),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "read-only" in line and "http://127.0.0.1:" in line, line
        url = line.split("): ", 1)[1].split()[0]
        deadline = time.monotonic() + WAIT
        while True:
            state = requests.get(url + "api/state", timeout=10).json()
            rows = [
                u
                for u in state["uploads"]
                if u["object"] == name and u["generation"] == str(generation)
            ]
            if rows and rows[0]["state"] == "SUCCEEDED":
                break
            assert time.monotonic() < deadline, (
                f"{name} did not reach SUCCEEDED on the project page: {rows}"
            )
            time.sleep(1.0)
        assert state["project"] == stack.project and state["bucket"] == stack.bucket
        assert (
            rows[0]["tuned_model"] and rows[0]["report_console"] is None
        )  # emulators: no console links
        assert requests.post(url + "api/state", timeout=10).status_code == 405
        assert (
            len(dashboard_subscriptions(stack) - before) == 1
        )  # its own subscription on tuning-events
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, output
    assert "stopped." in output
    assert dashboard_subscriptions(stack) == before  # deleted on the way out


def test_without_a_project_it_points_at_the_local_stacks_page(stack) -> None:
    from typer.testing import CliRunner

    from autotune.cli import app

    env_file = (stack.state_dir / "local.env").read_text()
    assert f"export AUTOTUNE_DASHBOARD_URL={stack.env['AUTOTUNE_DASHBOARD_URL']}" in env_file
    result = CliRunner().invoke(
        app, ["dashboard", "--state-dir", str(stack.state_dir)], env={"AUTOTUNE_PROJECT": ""}
    )
    assert result.exit_code == 0 and stack.env["AUTOTUNE_DASHBOARD_URL"] in result.output
