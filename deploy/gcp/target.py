"""The deployment target as `autotune deploy`/`destroy` and docs/deploy.md's sample plan build it:
the configuration file read, a models file of one's own checked, each function's source digested
(and staged, for a deploy). The command line turns TargetUnusable into its error message."""

from __future__ import annotations

from pathlib import Path

import msgspec

from autotune_gcp.deployment import DeployTarget
from autotune_local.checkout import CONFIG_FILE

DEFAULT_SOURCE_DIR = Path(".autotune/gcp-source")


class TargetUnusable(ValueError):
    """The configuration, an option, a models file or a function's source cannot be used; the
    message names which."""


def prepare_target(
    project: str,
    region: str,
    bucket: str | None,
    config: Path | None,
    *,
    firestore_location: str | None = None,
    tuning_service_account: str | None = None,
    source_dir: Path = DEFAULT_SOURCE_DIR,
    stage: bool = False,
    notify_url: str | None = None,
) -> DeployTarget:
    # Imported here, not above: tests replace these modules' functions (load_config_file, source_digest).
    from autotune.catalog import CatalogError
    from autotune.config import ConfigError, load_config_file
    from autotune_gcp.deployment import TargetError, functions, make_target
    from autotune_gcp.staging import StagingError, source_digest
    from autotune_gcp.staging import stage as stage_source

    try:
        pipeline = load_config_file(config or CONFIG_FILE)
        target = make_target(
            project=project,
            region=region,
            bucket=bucket,
            config=pipeline,
            firestore_location=firestore_location,
            tuning_service_account=tuning_service_account,
            source_root=source_dir.as_posix(),
            notify_url=notify_url,
        )
        keys = [fn.key for fn in functions(target)]
        models_file = pipeline.models_file
        if models_file:
            from autotune.catalog import catalog_from_files
            from autotune.catalog.catalog import CATALOG_FILE

            # A models file that does not load stops the deploy here, not in the function.
            catalog_from_files(CATALOG_FILE.read_text(encoding="utf-8"), Path(models_file))
        digests = {
            key: source_digest(key, models_file) if models_file else source_digest(key)
            for key in keys
        }
        if stage:
            for key in keys:
                stage_source(key, source_dir, models_file)
    except (ConfigError, TargetError, StagingError, CatalogError) as exc:
        raise TargetUnusable(str(exc)) from exc
    return msgspec.structs.replace(target, source_digests=digests)


def dry_run_header(target: DeployTarget, command: str) -> str:
    return (
        f"# autotune {command} plan: project {target.project}, region {target.region}, bucket gs://{target.bucket}\n"
        "# Nothing was read from Google Cloud: this is every step, as if nothing existed yet.\n"
        + (
            f"# Function sources are staged under {target.source_root}/ (run from the directory holding it).\n"
            if command == "deploy"
            else ""
        )
    )
