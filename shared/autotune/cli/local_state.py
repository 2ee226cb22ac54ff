"""Finding the local stack from the command line: the `--state-dir` option, the stack running
there, and paths said relative to where the user stands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autotune.cli.terminal import fail

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the stack keeps local.env, logs/ and its PIDs (default: .autotune/).",
    ),
]


def resolve_state_dir(given: Path | None) -> Path:
    from autotune_local.stack import DEFAULT_STATE_DIR

    return (given or DEFAULT_STATE_DIR).resolve()


def running_stack_env(state_dir: Path) -> dict[str, str]:
    """The environment of the stack running in state_dir; exits 1 saying how to start one."""
    from autotune_local.processes import is_running
    from autotune_local.stack import read_state, recorded_processes

    state = read_state(state_dir)
    if not state or not any(is_running(p) for p in recorded_processes(state_dir)):
        raise fail(
            f"no local stack is running (state in {relative_to_cwd(state_dir)}); start one with `autotune up --detach`"
        )
    return dict(state["env"])


def relative_to_cwd(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
