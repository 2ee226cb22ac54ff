"""`autotune dashboard`: the live pipeline page for a deployed project, on this machine.

It reads the project with the user's own credentials (Application Default Credentials:
`gcloud auth application-default login`), through the same adapters the functions use, and
serves the page on 127.0.0.1 until Ctrl-C. The local stack serves its own page (`autotune up`
prints its address); without --project this command prints that address.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from autotune.cli.app import app
from autotune.cli.terminal import echo

BUCKET_SUFFIX = "-autotune"  # `autotune deploy`'s default bucket: PROJECT-autotune


@app.command()
def dashboard(
    project: Annotated[
        str | None,
        typer.Option(
            help="The Google Cloud project autotune is deployed in (default: AUTOTUNE_PROJECT)."
        ),
    ] = None,
    bucket: Annotated[
        str | None,
        typer.Option(
            help="Its dataset bucket (default: AUTOTUNE_BUCKET, else PROJECT-autotune as `autotune deploy` names it)."
        ),
    ] = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: a free one).")] = 0,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir", help="The local stack's state directory (default: .autotune/)."
        ),
    ] = None,
) -> None:
    """Serve the live pipeline page (uploads, queue, job slots, jobs, events) for a deployed project,
    read-only, on 127.0.0.1; without --project, print the running local stack's page address."""
    import msgspec

    from autotune.config import ConfigError, PipelineConfig

    project = project or os.environ.get("AUTOTUNE_PROJECT")
    if not project:
        from autotune.cli.uploads import local_stack_env

        env = local_stack_env(state_dir)
        if env and env.get("AUTOTUNE_DASHBOARD_URL"):
            echo(f"the local stack's page: {env['AUTOTUNE_DASHBOARD_URL']}")
            return
        echo(
            "give --project PROJECT (a deployed autotune) or start the local stack with `autotune up`, which serves its own page",
            err=True,
        )
        raise typer.Exit(2)
    if not 0 <= port <= 65535:
        echo(f"--port {port}: give a port number from 1 to 65535, or 0 for a free one", err=True)
        raise typer.Exit(2)
    from autotune_local.checkout import config_file

    try:
        # the checkout's deploy/config.toml under the environment, as the CLI's other commands read it
        config = PipelineConfig.from_env(config_file=config_file())
    except ConfigError as exc:
        echo(str(exc), err=True)
        raise typer.Exit(2) from None
    config = msgspec.structs.replace(
        config,
        project=project,
        bucket=bucket or os.environ.get("AUTOTUNE_BUCKET") or f"{project}{BUCKET_SUFFIX}",
    )
    from google.auth.exceptions import DefaultCredentialsError

    from autotune.dashboard.serve import serve_until_interrupted
    from autotune.dashboard.source import connect

    try:
        reader = connect(config, on_google_cloud=not os.environ.get("STORAGE_EMULATOR_HOST"))
    except DefaultCredentialsError as exc:
        echo(
            f"no Google credentials for project {project}: run `gcloud auth application-default login` ({exc})",
            err=True,
        )
        raise typer.Exit(1) from None
    try:
        serve_until_interrupted(
            reader,
            port,
            on_ready=lambda url: echo(
                f"autotune dashboard for project {project} (bucket gs://{config.bucket}, read-only): {url}  (Ctrl-C to stop)"
            ),
        )
    except OSError as exc:
        echo(
            f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc} (give another --port, or 0 for a free one)",
            err=True,
        )
        raise typer.Exit(1) from None
    echo("stopped.")
