"""`autotune smoke`: prove a deployment works without paying for a tuning job (autotune.smoke).

Without --project it checks the local stack that `autotune up` started; with --project, the
Google Cloud deployment (the bucket and topic names from deploy/config.toml, the caller's own
credentials). `autotune deploy` runs the same check at its end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autotune.cli.app import app
from autotune.cli.local_state import StateDirOption, resolve_state_dir, running_stack_env

SMOKE_TIMEOUT_SECONDS = 180.0


@app.command()
def smoke(
    project: Annotated[
        str | None,
        typer.Option(
            "--project",
            help="Check this Google Cloud project's deployment (default: the local stack).",
        ),
    ] = None,
    bucket: Annotated[
        str | None,
        typer.Option(
            "--bucket", help="Dataset bucket on Google Cloud (default: PROJECT-autotune)."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Configuration file (default: deploy/config.toml)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the rejected event.")
    ] = SMOKE_TIMEOUT_SECONDS,
    state_dir: StateDirOption = None,
) -> None:
    """Upload a small invalid dataset, wait for its `rejected` event on tuning-events, clean up."""
    if project is None:
        env = running_stack_env(resolve_state_dir(state_dir))
        from autotune_local.clients import storage_client, subscriber_client

        storage, subscriber = storage_client(env), subscriber_client(env)
        names = {
            "project": env["AUTOTUNE_PROJECT"],
            "bucket": env["AUTOTUNE_BUCKET"],
            "events_topic": env["AUTOTUNE_EVENTS_TOPIC"],
            "incoming_prefix": env["AUTOTUNE_INCOMING_PREFIX"],
            "reports_prefix": env["AUTOTUNE_REPORTS_PREFIX"],
        }
    else:
        storage, subscriber, names = google_cloud_clients(project, bucket, config)
    if not run_and_report(storage, subscriber, names, timeout):
        raise typer.Exit(1)


def google_cloud_clients(project: str, bucket: str | None, config: Path | None):
    from google.cloud import pubsub_v1, storage

    from autotune.config import load_config_file
    from autotune_local.checkout import CONFIG_FILE

    pipeline = load_config_file(config or CONFIG_FILE)
    names = {
        "project": project,
        "bucket": bucket or pipeline.bucket or f"{project}-autotune",
        "events_topic": pipeline.events_topic,
        "incoming_prefix": pipeline.incoming_prefix,
        "reports_prefix": pipeline.reports_prefix,
    }
    return storage.Client(project=project), pubsub_v1.SubscriberClient(), names


def run_and_report(storage, subscriber, names: dict[str, str], timeout: float) -> bool:
    from autotune.smoke import run_smoke

    result = run_smoke(storage, subscriber, timeout=timeout, echo=typer.echo, **names)
    if result.ok:
        typer.echo(
            f"smoke test passed in {result.seconds:.1f} s: upload, trigger, validation, report and event all work "
            "(the test object, its report and the subscription were removed)"
        )
        return True
    typer.echo(
        f"smoke test FAILED after {result.seconds:.1f} s: {result.failed_link}. {result.detail}",
        err=True,
    )
    return False
