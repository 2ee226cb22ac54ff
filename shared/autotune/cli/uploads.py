"""Every upload's fate for the CLI: the bucket (uploads and reports) next to the ledger.

Like `autotune jobs`, it talks to the running local stack when there is one (its addresses from
.autotune/), else to the project the environment names (AUTOTUNE_* variables and the usual
Google credentials), so `status`, `jobs`, `report` and `upload --wait` read a deployed project
the same way. Google clients are imported inside the functions: `autotune validate` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.cli.terminal import echo, fail
from autotune.upload_fates import (
    ACCEPTED,
    AWAITING,
    IGNORED,
    REJECTED,
    UploadFate,
    upload_fates,
    with_report,
)

if TYPE_CHECKING:
    from autotune.adapters.storage import GcsDatasetStore
    from autotune.config import PipelineConfig
    from autotune.jobs.lifecycle import LedgerRecord

# Rejected reports read per listing (each is one small object): enough for any terminal, and a
# bucket of many thousands of rejections does not make `autotune jobs` read them all.
MAX_REPORTS_READ = 200


@dataclass
class Bucket:
    """The dataset bucket and the ledger, wherever they are."""

    config: PipelineConfig
    store: GcsDatasetStore
    records: Callable[[], list[LedgerRecord]]

    def fates(
        self, records: list[LedgerRecord] | None = None, *, read_reports: bool = True
    ) -> list[UploadFate]:
        """Every upload's fate; none, with a warning on stderr, when the bucket cannot be listed
        (no storage access for these credentials): the ledger's records still answer."""
        from google.api_core import exceptions as gexc

        try:
            uploads = list(self.store.list_objects(self.config.incoming_prefix))
            reports = list(self.store.list_objects(self.config.reports_prefix))
        except gexc.GoogleAPIError as exc:
            echo(
                f"warning: cannot list gs://{self.config.bucket} ({exc}); rejected and ignored uploads are not shown",
                err=True,
            )
            return []
        fates = upload_fates(
            uploads, reports, self.records() if records is None else records, self.config
        )
        if not read_reports:
            return fates
        # The newest rejections first when there are more than can be read.
        to_read = [
            (f, f.report_name)
            for f in reversed(fates)
            if f.report_name and (f.verdict in (REJECTED, "") or f.record is None)
        ][:MAX_REPORTS_READ]
        completed = {id(f): with_report(f, self.report(name)) for f, name in to_read}
        return [completed.get(id(f), f) for f in fates]

    def report(self, report_name: str) -> dict | None:
        """The stored report, or None when it is missing, not JSON, or cannot be read (refused, or
        not answered within the client's retries): the listing goes on without it."""
        from google.api_core import exceptions as gexc

        try:
            stored = self.store.stat(report_name)
            if stored is None:
                return None
            document = json.loads(self.store.read_bytes(report_name, stored.generation))
        except (ValueError, LookupError, gexc.GoogleAPIError):
            return None
        return document if isinstance(document, dict) else None


def connect_bucket(state_dir: Path | None) -> Bucket:
    from autotune.adapters.storage import GcsDatasetStore
    from autotune.cli.jobs import _pipeline

    env = local_stack_env(state_dir)
    pipeline = _pipeline(state_dir)
    if env is not None:
        from autotune.config import PipelineConfig
        from autotune_local.clients import storage_client

        config, client = PipelineConfig.from_env(env), storage_client(env)
    else:
        from google.cloud import storage

        from autotune.config import PipelineConfig
        from autotune_local.checkout import config_file

        config = PipelineConfig.from_env(config_file=config_file())
        if not config.bucket:
            raise fail(
                "AUTOTUNE_BUCKET is not set: name the dataset bucket of the deployed project"
            )
        client = storage.Client(project=config.project)
    return Bucket(config, GcsDatasetStore(client, config.bucket), pipeline.ledger.records)


def local_stack_env(state_dir: Path | None) -> dict[str, str] | None:
    """The running local stack's environment, or None when none runs there."""
    from autotune_local.processes import is_running
    from autotune_local.stack import DEFAULT_STATE_DIR, read_state, recorded_processes

    directory = (state_dir or DEFAULT_STATE_DIR).resolve()
    state = read_state(directory)
    if state and any(is_running(p) for p in recorded_processes(directory)):
        return dict(state["env"])
    return None


def fate_state(fate: UploadFate) -> str:
    """The state column for an upload the ledger does not (yet) hold."""
    if fate.verdict == ACCEPTED:
        return "ACCEPTED" if fate.record is None else str(fate.record.state)
    return {REJECTED: "REJECTED", IGNORED: "IGNORED", AWAITING: "VALIDATING"}.get(
        fate.verdict, "UNKNOWN"
    )


def fate_why(fate: UploadFate) -> str:
    if fate.verdict == REJECTED:
        errors = "?" if fate.error_count is None else f"{fate.error_count:,}"
        return f"{errors} error(s); report {fate.report_uri}"
    if fate.verdict == ACCEPTED and fate.record is None:
        return f"accepted, not yet claimed by submit; report {fate.report_uri}"
    if fate.verdict == IGNORED:
        return fate.why
    return fate.why


def fate_json(fate: UploadFate) -> dict[str, Any]:
    return {
        "dataset_uri": fate.uri,
        "generation": fate.generation,
        "state": fate_state(fate),
        "verdict": fate.verdict or None,
        "error_count": fate.error_count,
        "warning_count": fate.warning_count,
        "model": fate.model,
        "report_uri": fate.report_uri,
        "why": fate.why or None,
        "updated_at": fate.updated.isoformat().replace("+00:00", "Z") if fate.updated else None,
        "idempotency_key": fate.record.idempotency_key if fate.record else None,
    }


def describe_fate(fate: UploadFate) -> str:
    lines = [f"{fate.uri} (generation {fate.generation}): {fate_state(fate)}"]
    for label, value in (
        ("verdict", fate.verdict),
        ("errors", fate.error_count),
        ("warnings", fate.warning_count),
        ("model", fate.model),
        ("report", fate.report_uri),
        ("why", fate.why if fate.verdict in (IGNORED, AWAITING) else None),
        ("uploaded", fate.updated.isoformat(timespec="seconds") if fate.updated else None),
    ):
        if value not in (None, ""):
            lines.append(f"  {label + ':':<13} {value}")
    if fate.verdict == REJECTED:
        lines.append(f"  read it:      autotune report {fate.uri}#{fate.generation}")
    return "\n".join(lines)


def report_summary(report: dict, report_uri: str, *, listed: int = 5) -> str:
    """The verdict line, counts by code, and the first problems, from a stored report."""
    from autotune.upload_fates import report_totals

    errors, warnings = report_totals(report)
    verdict = "ACCEPTED" if report.get("valid") is True else "REJECTED"
    train = (report.get("files") or {}).get("train") or {}
    examples = train.get("examples")
    lines = [
        f"{verdict}: {errors:,} error(s), {warnings:,} warning(s)"
        + (f", {examples:,} training examples" if isinstance(examples, int) else "")
        + (f" for {report['model']}" if report.get("model") else "")
    ]
    counts = report.get("counts") or {}
    if counts:
        lines.append(
            "  by code: "
            + ", ".join(
                f"{code} {n:,}" for code, n in sorted(counts.items(), key=lambda kv: -kv[1])
            )
        )
    issues = sorted(
        (i for i in report.get("errors") or [] if isinstance(i, dict)),
        key=lambda i: i.get("severity") != "error",
    )
    for issue in issues[:listed]:
        lines.append("  " + issue_line(issue, report))
    total = sum(n for n in counts.values() if isinstance(n, int))
    if total > min(listed, len(issues)):
        lines.append(f"  ... {total - min(listed, len(issues)):,} more: `autotune report`")
    lines.append(f"  report: {report_uri}")
    return "\n".join(lines)


def issue_line(issue: dict, report: dict) -> str:
    files = report.get("files") or {}
    # "file" holds the path; reports stored before "role" existed hold the role there instead.
    role = issue.get("role") or issue.get("file")
    where = (files.get(role) or {}).get("name") or issue.get("file") or "settings"
    if issue.get("line") is not None:
        where = f"{where}:{issue['line']}"
    return f"{where}: {issue.get('code')} ({issue.get('severity')}): {issue.get('message')}"


# --- what `autotune upload` sends where --------------------------------------------------------

DATASET_SUFFIXES = (".jsonl", ".tuning.json")


class UploadPlanError(ValueError):
    pass


def plan_uploads(paths: list[Path], prefix: str, name: str | None = None) -> list[tuple[Path, str]]:
    """(local file, object name) for every file given or found in a folder given, in the order to
    upload them: media and other files first (the validator checks that referenced media exist),
    then datasets, then manifests last (a manifest starts the work on the files it names).

    A file keeps its name under `prefix`; a folder keeps its own name and the relative path of
    every file inside it (`media/` -> PREFIX/media/red.png), as `gcloud storage cp -r` does.
    Hidden files and folders (.DS_Store, .git) inside a folder are left out."""
    if name is not None and (len(paths) != 1 or paths[0].is_dir()):
        raise UploadPlanError("--name names one object: give exactly one file with it")
    planned: dict[str, Path] = {}
    for path in paths:
        if not path.exists():
            raise UploadPlanError(f"{path}: no such file or folder")
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise UploadPlanError(f"{path}: the folder holds no file to upload")
            pairs = [
                (p, f"{prefix}{path.resolve().name}/{p.relative_to(path).as_posix()}")
                for p in found
            ]
        else:
            pairs = [(path, name if name is not None else f"{prefix}{path.name}")]
        for local, object_name in pairs:
            if object_name in planned and planned[object_name].resolve() != local.resolve():
                raise UploadPlanError(
                    f"{planned[object_name]} and {local} would both be uploaded as {object_name}"
                )
            planned[object_name] = local

    def rank(item: tuple[str, Path]) -> tuple[int, str]:
        object_name = item[0]
        if object_name.endswith(".tuning.json"):
            return 2, object_name
        return (1 if object_name.endswith(".jsonl") else 0), object_name

    return [(local, object_name) for object_name, local in sorted(planned.items(), key=rank)]


def object_prefix(given: str | None, incoming_prefix: str) -> str:
    """The folder objects go to: the incoming prefix by default; "" or "/" is the bucket's root."""
    if given is None:
        return incoming_prefix
    given = given.strip().lstrip("/")
    return given if not given or given.endswith("/") else given + "/"
