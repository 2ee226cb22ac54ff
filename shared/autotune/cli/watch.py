"""`autotune watch`: the local stack's tuning-events as they arrive, through a subscription of
its own, until Ctrl-C, `--seconds`, or the stack stopping (autotune_local.watching)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from autotune.cli.app import app
from autotune.cli.local_state import (
    StateDirOption,
    relative_to_cwd,
    resolve_state_dir,
    running_stack_env,
)
from autotune.cli.terminal import echo, fail


@app.command()
def watch(
    seconds: Annotated[
        float, typer.Option(help="Stop after this many seconds (0: until Ctrl-C).")
    ] = 0.0,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="One JSON object per event and line: the CloudEvent, data included."
        ),
    ] = False,
    types: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            help="Only events of this type (rejected, succeeded, ... or the full type); repeat for more.",
        ),
    ] = None,
    state_dir: StateDirOption = None,
) -> None:
    """Print the local stack's tuning-events as they arrive (a subscription of its own), one line
    each within the terminal's width."""
    from autotune.event_lines import fitted_line, json_line, wanted_types

    try:
        wanted = wanted_types(types or [])
    except ValueError as exc:
        raise fail(f"--type: {exc}", 2) from None
    stack_env = running_stack_env(resolve_state_dir(state_dir))
    from rich.console import Console

    from autotune_local.clients import EventListener, subscriber_client
    from autotune_local.demo import describe_event

    width = Console().width

    listener = EventListener.create(
        subscriber_client(stack_env),
        stack_env["AUTOTUNE_PROJECT"],
        stack_env["AUTOTUNE_EVENTS_TOPIC"],
    )
    deadline = time.monotonic() + seconds if seconds else None
    # With --json, stdout holds nothing but the events' JSON lines.
    typer.echo(f"listening on {stack_env['AUTOTUNE_EVENTS_TOPIC']} (Ctrl-C to stop)", err=as_json)
    from autotune.events import TuningEvent
    from autotune_local.running import events_source_running
    from autotune_local.watching import follow_events

    def show(event: TuningEvent) -> None:
        if event.type in wanted:
            echo(json_line(event) if as_json else fitted_line(describe_event(event), width))

    directory = resolve_state_dir(state_dir)
    stack_gone = False
    try:
        stack_gone = follow_events(
            listener,
            show=show,
            source_running=lambda: events_source_running(directory),
            deadline=deadline,
        )
    except KeyboardInterrupt:
        pass
    finally:
        if not stack_gone:  # else its subscription went with the emulator: nobody to ask
            listener.close()
    if stack_gone:
        raise fail(
            f"the local stack in {relative_to_cwd(directory)} has stopped: no more events will come; stopped watching"
        )
