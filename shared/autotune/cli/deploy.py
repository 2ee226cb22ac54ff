"""Google Cloud from the command line: `autotune deploy` and `autotune destroy`.

Both read deploy/config.toml (the file the local stack reads too), build the plan with
autotune_gcp, and either print it (`--dry-run`: copy-pasteable shell, nothing contacted) or
read what the project already holds and run only what is missing or different.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autotune.cli.app import app
from autotune_gcp.target import DEFAULT_SOURCE_DIR, dry_run_header

ProjectOption = Annotated[str, typer.Option("--project", help="Google Cloud project ID.")]
RegionOption = Annotated[
    str, typer.Option("--region", help="Region for the functions, scheduler and bucket.")
]
BucketOption = Annotated[
    str | None,
    typer.Option(
        "--bucket", help="Dataset bucket (default: PROJECT-autotune; created unless it exists)."
    ),
]
DryRunOption = Annotated[
    bool,
    typer.Option(
        "--dry-run", help="Print every command in order, as shell, without contacting Google Cloud."
    ),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="Configuration file (default: deploy/config.toml).")
]
SourceDirOption = Annotated[
    Path, typer.Option("--source-dir", help="Where each function's upload directory is staged.")
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _target(
    project,
    region,
    bucket,
    config,
    firestore_location=None,
    tuning_service_account=None,
    source_dir=DEFAULT_SOURCE_DIR,
    stage=False,
    notify_url=None,
):
    from autotune_gcp.target import TargetUnusable, prepare_target

    try:
        return prepare_target(
            project,
            region,
            bucket,
            config,
            firestore_location=firestore_location,
            tuning_service_account=tuning_service_account,
            source_dir=source_dir,
            stage=stage,
            notify_url=notify_url,
        )
    except TargetUnusable as exc:
        raise _fail(str(exc)) from exc


@app.command()
def deploy(
    project: ProjectOption,
    region: RegionOption,
    bucket: BucketOption = None,
    dry_run: DryRunOption = False,
    config: ConfigOption = None,
    firestore_location: Annotated[
        str | None,
        typer.Option(help="Firestore location when the database is created (default: the region)."),
    ] = None,
    tuning_service_account: Annotated[
        str | None,
        typer.Option(
            help="Run tuning jobs as this service account (default: from the config file)."
        ),
    ] = None,
    source_dir: SourceDirOption = DEFAULT_SOURCE_DIR,
    notify_url: Annotated[
        str | None,
        typer.Option(
            "--notify-url",
            help="Push each job end event (succeeded, failed, cancelled) to this https URL, "
            "with an OIDC token the receiver can verify.",
        ),
    ] = None,
    smoke: Annotated[
        bool,
        typer.Option(
            help="At the end, prove the deployment works (`autotune smoke`: an invalid upload, its rejected event)."
        ),
    ] = True,
) -> None:
    """Create or update the pipeline in a Google Cloud project; a second run changes nothing."""
    from autotune_gcp.commands import render_script
    from autotune_gcp.plan import PlanConflict, deploy_plan

    target = _target(
        project,
        region,
        bucket,
        config,
        firestore_location,
        tuning_service_account,
        source_dir,
        stage=True,
        notify_url=notify_url,
    )
    if dry_run:
        typer.echo(dry_run_header(target, "deploy") + render_script(deploy_plan(target)), nl=False)
        return
    state = _observe(target)
    try:
        steps = deploy_plan(target, state)
    except PlanConflict as exc:
        raise _fail(str(exc)) from exc
    if not steps:
        typer.echo(
            f"nothing to change: project {target.project} already holds the whole deployment"
        )
    else:
        typer.echo(f"{len(steps)} steps to run in project {target.project}:")
        _execute(steps)
        typer.echo(
            "deployed: run `autotune deploy` again to check (it should find nothing to change)"
        )
    if smoke:
        from autotune.cli.smoke import (
            SMOKE_TIMEOUT_SECONDS,
            google_cloud_clients,
            run_and_report,
        )

        storage, subscriber, names = google_cloud_clients(target.project, target.bucket, config)
        if not run_and_report(storage, subscriber, names, SMOKE_TIMEOUT_SECONDS):
            raise typer.Exit(1)


@app.command()
def destroy(
    project: ProjectOption,
    region: RegionOption,
    bucket: BucketOption = None,
    dry_run: DryRunOption = False,
    config: ConfigOption = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Delete data without asking (for scripts).")
    ] = False,
    keep_data: Annotated[
        bool,
        typer.Option("--keep-data", help="Keep the bucket and the ledger; remove everything else."),
    ] = False,
) -> None:
    """Remove what `autotune deploy` created, asking before it deletes data (bucket, ledger)."""
    from autotune_gcp.commands import render_script
    from autotune_gcp.plan import destroy_plan

    target = _target(project, region, bucket, config)
    if dry_run:
        typer.echo(
            dry_run_header(target, "destroy")
            + render_script(destroy_plan(target, None, keep_data=keep_data)),
            nl=False,
        )
        return
    steps = destroy_plan(target, _observe(target), keep_data=keep_data)
    chosen = []
    for step in steps:
        if (
            step.deletes_data
            and not yes
            and not _confirm(f"Delete {step.why.removeprefix('DATA: ')}?")
        ):
            typer.echo(f"kept: {step.why.removeprefix('DATA: ')}")
            continue
        chosen.append(step)
    if not chosen:
        typer.echo(f"nothing to remove in project {target.project}")
        return
    _execute(chosen)
    typer.echo("destroyed")


def _confirm(question: str) -> bool:
    try:
        return typer.confirm(question, default=False)
    except typer.Abort:  # no terminal to answer from: the safe answer
        return False


def _observe(target):
    from autotune_gcp.runner import DeployError, require_gcloud, run_gcloud
    from autotune_gcp.state import InspectionError, observe

    try:
        require_gcloud()
        typer.echo(f"reading what project {target.project} already holds...")
        return observe(target, run_gcloud)
    except (DeployError, InspectionError) as exc:
        raise _fail(str(exc), 1) from exc


def _execute(steps) -> None:
    from autotune_gcp.runner import DeployError, execute

    try:
        execute(steps, typer.echo)
    except DeployError as exc:
        raise _fail(str(exc), 1) from exc
