"""The local pipeline from the command line: `autotune up`, `down`, `upload`, `watch`, `demo`.

Every command finds the running stack through its state file (.autotune/stack.json), so they
work from any shell; heavy imports (emulator control, Google clients) stay inside the commands.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from autotune.cli.app import app
from autotune.cli.terminal import echo, terminal_text

StateDirOption = Annotated[
    Path | None, typer.Option("--state-dir", help="Where the stack keeps local.env, logs/ and its PIDs (default: .autotune/).")
]


def _state_dir(given: Path | None) -> Path:
    from autotune_local.stack import DEFAULT_STATE_DIR

    return (given or DEFAULT_STATE_DIR).resolve()


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@app.command()
def up(
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Return once everything is ready; `autotune down` stops it.")] = False,
    max_concurrent_jobs: Annotated[int | None, typer.Option(help="Concurrent tuning jobs (pipeline limit and emulator quota).")] = None,
    job_seconds: Annotated[float, typer.Option(help="How long an emulated tuning job runs.")] = 15.0,
    tick_seconds: Annotated[float, typer.Option(help="Seconds between status ticks (Cloud Scheduler's stand-in).")] = 3.0,
    state_dir: StateDirOption = None,
) -> None:
    """Start the whole pipeline on this machine: emulators, event bridge, tuning emulator, functions."""
    from autotune_local.prerequisites import MissingPrerequisite
    from autotune_local.processes import ProcessFailed, log_tail
    from autotune_local.stack import ENV_FILE, options_with, start_stack

    overrides: dict[str, object] = {"job_seconds": job_seconds, "tick_seconds": tick_seconds}
    if max_concurrent_jobs is not None:
        overrides["max_concurrent_jobs"] = max_concurrent_jobs
    directory = _state_dir(state_dir)
    _stop_on_sigterm()
    began = time.monotonic()
    try:
        stack = start_stack(options_with(state_dir=directory, **overrides))
    except (MissingPrerequisite, ProcessFailed) as exc:
        raise _fail(str(exc)) from None
    took = time.monotonic() - began
    env_file = _relative(directory / ENV_FILE)
    typer.echo(
        f"autotune local stack ready in {took:.1f} s (project {stack.project}, bucket gs://{stack.bucket}). "
        f"Drop a dataset: `autotune upload FILE.jsonl` (or any Cloud Storage client after `source {env_file}`, "
        f"into gs://{stack.bucket}/{stack.config.incoming_prefix}); follow it: `autotune watch`; logs: {_relative(stack.log_dir)}/; "
        + ("stop: `autotune down`." if detach else "stop: Ctrl-C.")
    )
    if detach:
        stack.keep_running_after_exit()
        return
    try:
        while True:
            time.sleep(1.0)
            dead = stack.dead_processes()
            if dead:
                for proc in dead:
                    typer.echo(f"{proc.name} exited; see {proc.log}\n{log_tail(proc.log)}", err=True)
                raise _fail("a part of the stack stopped; stopping the rest")
    except KeyboardInterrupt:
        typer.echo("stopping the local stack ...")
    finally:
        stack.stop()
    typer.echo("stopped: no process left.")


@app.command()
def down(state_dir: StateDirOption = None) -> None:
    """Stop the local stack (also one left behind by an `autotune up` that was killed)."""
    from autotune_local.stack import stop_recorded

    stopped = stop_recorded(_state_dir(state_dir))
    typer.echo(f"stopped {len(stopped)} process(es): " + ", ".join(f"{p.name} ({p.pid})" for p in stopped) if stopped else "no local stack was running.")


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="A .jsonl dataset, a .tuning.json manifest, or media.")],
    name: Annotated[str | None, typer.Option(help="Object name in the bucket (default: incoming/FILE).")] = None,
    model: Annotated[str | None, typer.Option(help="autotune-model metadata.")] = None,
    epochs: Annotated[str | None, typer.Option(help="autotune-epochs metadata.")] = None,
    adapter_size: Annotated[str | None, typer.Option(help="autotune-adapter-size metadata.")] = None,
    learning_rate_multiplier: Annotated[str | None, typer.Option(help="autotune-learning-rate-multiplier metadata.")] = None,
    region: Annotated[str | None, typer.Option(help="autotune-region metadata.")] = None,
    validation: Annotated[str | None, typer.Option(help="autotune-validation metadata: object name of the validation file.")] = None,
    display_name: Annotated[str | None, typer.Option(help="autotune-display-name metadata.")] = None,
    force: Annotated[bool, typer.Option(help="autotune-force: tune again even if these bytes and settings were tuned before.")] = False,
    state_dir: StateDirOption = None,
) -> None:
    """Upload a file into the local stack's bucket, as a user would into Cloud Storage."""
    stack_env = _running_stack_env(_state_dir(state_dir))
    from autotune_local.clients import storage_client, upload_object

    values = {
        "autotune-model": model, "autotune-epochs": epochs, "autotune-adapter-size": adapter_size,
        "autotune-learning-rate-multiplier": learning_rate_multiplier, "autotune-region": region,
        "autotune-validation": validation, "autotune-display-name": display_name, "autotune-force": "true" if force else None,
    }
    metadata = {k: v for k, v in values.items() if v is not None}
    object_name = name or f"{stack_env.get('AUTOTUNE_INCOMING_PREFIX', 'incoming/')}{file.name}"
    bucket = stack_env["AUTOTUNE_BUCKET"]
    generation = upload_object(storage_client(stack_env), bucket, object_name, file, metadata=metadata)
    echo(terminal_text(f"uploaded gs://{bucket}/{object_name} (generation {generation})" + (f" with {metadata}" if metadata else ""),
                       newlines=False))


@app.command()
def watch(
    seconds: Annotated[float, typer.Option(help="Stop after this many seconds (0: until Ctrl-C).")] = 0.0,
    state_dir: StateDirOption = None,
) -> None:
    """Print the local stack's tuning-events as they arrive (a subscription of its own)."""
    stack_env = _running_stack_env(_state_dir(state_dir))
    from autotune_local.clients import EventListener, subscriber_client
    from autotune_local.demo import describe_event

    listener = EventListener.create(subscriber_client(stack_env), stack_env["AUTOTUNE_PROJECT"], stack_env["AUTOTUNE_EVENTS_TOPIC"])
    deadline = time.monotonic() + seconds if seconds else None
    typer.echo(f"listening on {stack_env['AUTOTUNE_EVENTS_TOPIC']} (Ctrl-C to stop)")
    try:
        while deadline is None or time.monotonic() < deadline:
            for received in listener.poll(timeout=1.0):
                echo(terminal_text(describe_event(received.event), newlines=False))
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()


@app.command()
def demo(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every dataset to reach its end.")] = 300.0,
    job_seconds: Annotated[float, typer.Option(help="How long an emulated tuning job runs.")] = 8.0,
) -> None:
    """Bring the stack up, drop the shipped examples, follow each to its end, print it all, stop."""
    from autotune_local.demo import run_demo
    from autotune_local.prerequisites import MissingPrerequisite
    from autotune_local.processes import ProcessFailed

    _stop_on_sigterm()
    try:
        ok = run_demo(echo=typer.echo, timeout=timeout, job_seconds=job_seconds)
    except (MissingPrerequisite, ProcessFailed, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail("interrupted; the stack was stopped", 130) from None
    if not ok:
        raise typer.Exit(1)


def _running_stack_env(state_dir: Path) -> dict[str, str]:
    from autotune_local.stack import read_state, recorded_processes
    from autotune_local.processes import is_running

    state = read_state(state_dir)
    if not state or not any(is_running(p) for p in recorded_processes(state_dir)):
        raise _fail(f"no local stack is running (state in {_relative(state_dir)}); start one with `autotune up --detach`")
    return dict(state["env"])


def _stop_on_sigterm() -> None:
    # SIGTERM (a supervisor, `kill PID`) and SIGHUP (the terminal closed) stop the stack the
    # same way Ctrl-C does.
    def interrupt(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)

