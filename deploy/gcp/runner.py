"""The thin shell: run gcloud, for reading state and for carrying out a plan."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence

from autotune_gcp.commands import Step, render_command, substitute
from autotune_gcp.state import CommandResult

# Reads answer in seconds; a function deploy builds a container and may take many minutes.
READ_TIMEOUT_SECONDS = 120
CHANGE_TIMEOUT_SECONDS = 1800


class DeployError(RuntimeError):
    """A step failed; the message names the step and how."""


def require_gcloud() -> str:
    path = shutil.which("gcloud")
    if path is None:
        raise DeployError(
            "gcloud is not on PATH: install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install) "
            "and run `gcloud auth login`"
        )
    return path


def run_gcloud(argv: Sequence[str]) -> CommandResult:
    """Run a read-only gcloud command and capture what it says."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=READ_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return CommandResult(124, "", f"timed out after {READ_TIMEOUT_SECONDS} s")
    return CommandResult(done.returncode, done.stdout, done.stderr)


def execute(steps: Iterable[Step], echo: Callable[[str], None]) -> None:
    """Run each step in order; a lookup's output becomes its variable for the steps after it."""
    values: dict[str, str] = {}
    for number, step in enumerate(steps, start=1):
        argv = substitute(step.argv, values)
        echo(f"[{number}] {step.why}\n    {render_command(argv)}")
        if step.capture:
            result = run_gcloud(argv)
            value = result.stdout.strip()
            if result.returncode != 0 or not value:
                raise DeployError(
                    f"step {number} ({step.why}) found nothing: {result.stderr.strip() or 'empty answer'}"
                )
            values[step.capture] = value
            continue
        try:
            # gcloud's own progress goes straight to the terminal: a function build takes minutes.
            code = subprocess.run(
                list(argv), timeout=CHANGE_TIMEOUT_SECONDS, stdin=subprocess.DEVNULL
            ).returncode
        except subprocess.TimeoutExpired as exc:
            raise DeployError(
                f"step {number} ({step.why}) timed out after {CHANGE_TIMEOUT_SECONDS} s"
            ) from exc
        if code != 0:
            raise DeployError(
                f"step {number} ({step.why}) failed with exit code {code}; gcloud's message is above. "
                "Fix the cause and run the same command again: steps already done are skipped."
            )
