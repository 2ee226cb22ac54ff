"""The local pipeline from the command line: `autotune up`, `down`, `upload`, `demo` (and
`watch`, in cli/watch.py).

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
from autotune.cli.local_state import (
    StateDirOption,
    relative_to_cwd,
    resolve_state_dir,
    running_stack_env,
)
from autotune.cli.terminal import echo, fail, terminal_text


@app.command()
def up(
    detach: Annotated[
        bool,
        typer.Option(
            "--detach", "-d", help="Return once everything is ready; `autotune down` stops it."
        ),
    ] = False,
    max_concurrent_jobs: Annotated[
        int | None, typer.Option(help="Concurrent tuning jobs (pipeline limit and emulator quota).")
    ] = None,
    job_seconds: Annotated[
        float, typer.Option(help="How long an emulated tuning job runs.")
    ] = 15.0,
    tick_seconds: Annotated[
        float, typer.Option(help="Seconds between status ticks (Cloud Scheduler's stand-in).")
    ] = 3.0,
    tuning_endpoint: Annotated[
        str,
        typer.Option(
            help="Send tuning calls to this server (it must speak the v1 REST tuning API: a recorded stub, another emulator) "
            "instead of starting the built-in tuning emulator. http:// is called without credentials."
        ),
    ] = "",
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Stop a stack already running here and start an empty one (its data is lost).",
        ),
    ] = False,
    notify_url: Annotated[
        str | None,
        typer.Option(
            help="Push tuning-events to this http(s) URL (a receiver on this machine); the emulator sends no token and every event, not only job ends."
        ),
    ] = None,
    state_dir: StateDirOption = None,
) -> None:
    """Start the whole pipeline on this machine: emulators, event bridge, tuning emulator, functions.
    A stack already running in the state directory is left alone unless --replace."""
    from autotune_local.prerequisites import MissingPrerequisite
    from autotune_local.processes import ProcessFailed, log_tail
    from autotune_local.stack import options_with, start_stack

    if tuning_endpoint and not tuning_endpoint.startswith(("http://", "https://")):
        raise fail(f"--tuning-endpoint {tuning_endpoint!r}: give a URL, e.g. http://127.0.0.1:8090")
    overrides: dict[str, object] = {
        "job_seconds": job_seconds,
        "tick_seconds": tick_seconds,
        "tuning_endpoint": tuning_endpoint,
    }
    if max_concurrent_jobs is not None:
        overrides["max_concurrent_jobs"] = max_concurrent_jobs
    directory = resolve_state_dir(state_dir)
    if notify_url is not None:
        from autotune.job_end_notice import notify_url_problem

        problem = notify_url_problem(notify_url, local=True)
        if problem:
            raise fail(problem, 2)
    if not replace:
        _refuse_to_replace(directory)
    _stop_on_sigterm()
    began = time.monotonic()
    from autotune.catalog import CatalogError

    try:
        stack = start_stack(options_with(state_dir=directory, **overrides))
    except (MissingPrerequisite, ProcessFailed, CatalogError) as exc:
        raise fail(str(exc)) from None
    # From here on a Ctrl-C (or SIGTERM, SIGHUP) at any moment stops the stack and exits 0: the
    # ready line is printed inside the try, so a Ctrl-C sent as it appears is no traceback.
    detached = False
    try:
        if notify_url:
            from autotune_local.notify import subscribe_notify_url

            try:
                subscription = subscribe_notify_url(stack.subscriber(), stack.config, notify_url)
            except Exception as exc:
                raise fail(
                    f"could not subscribe {notify_url} to {stack.config.events_topic}: {exc}"
                ) from None
            typer.echo(
                f"job end events are pushed to {notify_url} ({subscription}; locally unsigned and unfiltered: "
                "every event arrives, filter on the ce-type attribute)"
            )
        _say_ready(stack, time.monotonic() - began, directory, detach=detach)
        if detach:
            detached = True
            stack.keep_running_after_exit()
            return
        while True:
            time.sleep(1.0)
            dead = stack.dead_processes()
            if dead:
                for proc in dead:
                    typer.echo(
                        f"{proc.name} exited; see {proc.log}\n{log_tail(proc.log)}", err=True
                    )
                raise fail("a part of the stack stopped; stopping the rest")
    except KeyboardInterrupt:
        typer.echo("stopping the local stack ...")
    finally:
        if not detached:
            stack.stop()
    typer.echo("stopped: no process left.")


@app.command()
def down(state_dir: StateDirOption = None) -> None:
    """Stop the local stack (also one left behind by an `autotune up` that was killed)."""
    from autotune_local.stack import stop_recorded

    stopped = stop_recorded(resolve_state_dir(state_dir))
    typer.echo(
        f"stopped {len(stopped)} process(es): " + ", ".join(f"{p.name} ({p.pid})" for p in stopped)
        if stopped
        else "no local stack was running."
    )


@app.command()
def upload(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Files and folders: .jsonl datasets, .tuning.json manifests, media. A folder keeps its name and inner paths."
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option(
            help="Object name in the bucket, for a single file (default: PREFIX + its name)."
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            help="Folder in the bucket (default: the incoming prefix, incoming/; '/' for the bucket's root)."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="autotune-model metadata.")] = None,
    epochs: Annotated[str | None, typer.Option(help="autotune-epochs metadata.")] = None,
    adapter_size: Annotated[
        str | None, typer.Option(help="autotune-adapter-size metadata.")
    ] = None,
    learning_rate_multiplier: Annotated[
        str | None, typer.Option(help="autotune-learning-rate-multiplier metadata.")
    ] = None,
    region: Annotated[str | None, typer.Option(help="autotune-region metadata.")] = None,
    validation: Annotated[
        str | None,
        typer.Option(help="autotune-validation metadata: object name of the validation file."),
    ] = None,
    display_name: Annotated[
        str | None, typer.Option(help="autotune-display-name metadata.")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="autotune-force: tune again even if these bytes and settings were tuned before."
        ),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Follow each dataset to its verdict, print the report's summary; exit 0 accepted, 1 rejected.",
        ),
    ] = False,
    until: Annotated[
        str | None,
        typer.Option(
            help="With --wait: 'verdict' (default) or 'ended' (the tuning job's end; exit 1 unless it succeeded or was skipped)."
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="With --wait: give up after this many seconds (exit 3).")
    ] = 600.0,
    state_dir: StateDirOption = None,
) -> None:
    """Upload files and folders into the local stack's bucket, as a user would into Cloud Storage.
    The settings options become custom metadata on every .jsonl and .tuning.json uploaded."""
    from autotune.cli.uploads import UploadPlanError, object_prefix, plan_uploads

    if until not in (None, "verdict", "ended"):
        raise fail(f"--until takes 'verdict' or 'ended', not {until!r}", 2)
    stack_env = running_stack_env(resolve_state_dir(state_dir))
    from autotune_local.clients import storage_client, upload_object

    values = {
        "autotune-model": model,
        "autotune-epochs": epochs,
        "autotune-adapter-size": adapter_size,
        "autotune-learning-rate-multiplier": learning_rate_multiplier,
        "autotune-region": region,
        "autotune-validation": validation,
        "autotune-display-name": display_name,
        "autotune-force": "true" if force else None,
    }
    metadata = {k: v for k, v in values.items() if v is not None}
    incoming = stack_env.get("AUTOTUNE_INCOMING_PREFIX", "incoming/")
    try:
        plan = plan_uploads(files, object_prefix(prefix, incoming), name)
    except UploadPlanError as exc:
        raise fail(str(exc), 2) from None
    bucket = stack_env["AUTOTUNE_BUCKET"]
    client = storage_client(stack_env)
    uploaded: list[tuple[str, str]] = []
    for local, object_name in plan:
        given = metadata if object_name.endswith((".jsonl", ".tuning.json")) else {}
        generation = upload_object(client, bucket, object_name, local, metadata=given)
        uploaded.append((object_name, str(generation)))
        echo(
            terminal_text(
                f"uploaded gs://{bucket}/{object_name} (generation {generation})"
                + (f" with {given}" if given else ""),
                newlines=False,
            )
        )
    if len(plan) > 1:
        typer.echo(f"{len(plan)} files uploaded")
    if wait or until:
        from autotune.cli.follow_upload import follow_uploads

        raise typer.Exit(
            follow_uploads(uploaded, until=until or "verdict", timeout=timeout, state_dir=state_dir)
        )


@app.command()
def demo(
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for every dataset to reach its end.")
    ] = 300.0,
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
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted; the stack was stopped", 130) from None
    if not ok:
        raise typer.Exit(1)


def _refuse_to_replace(directory: Path) -> None:
    from autotune_local.running import running_stack, what_would_be_lost

    running = running_stack(directory)
    if running is None:
        return
    held = "; ".join(what_would_be_lost(running))
    raise fail(
        f"a local stack is already running in {relative_to_cwd(directory)} (started {running.created or 'at an unknown time'}; "
        f"{len(running.alive)} process(es) alive: {', '.join(running.alive)}). A new one starts empty, so replacing it loses "
        f"{held}. Keep it and use it, stop it first with `autotune down`, or replace it with `autotune up --replace`."
    )


def _say_ready(stack, took: float, directory: Path, *, detach: bool) -> None:
    from autotune_local.stack import ENV_FILE

    env_file = relative_to_cwd(directory / ENV_FILE)
    typer.echo(
        f"autotune local stack ready in {took:.1f} s (project {stack.project}, bucket gs://{stack.bucket}). "
        f"Drop a dataset: `autotune upload FILE.jsonl` (or any Cloud Storage client after `source {env_file}`, "
        f"into gs://{stack.bucket}/{stack.config.incoming_prefix}); follow it: `autotune watch`"
        + (
            f" or the live page {stack.env['AUTOTUNE_DASHBOARD_URL']}"
            if stack.env.get("AUTOTUNE_DASHBOARD_URL")
            else ""
        )
        + f"; logs: {relative_to_cwd(stack.log_dir)}/; "
        + ("stop: `autotune down`." if detach else "stop: Ctrl-C.")
    )


def _stop_on_sigterm() -> None:
    # SIGTERM (a supervisor, `kill PID`) and SIGHUP (the terminal closed) stop the stack the
    # same way Ctrl-C does.
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
