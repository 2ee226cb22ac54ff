"""`autotune validate`: the validator on a laptop, same core as the validate function.

Exit 0 when valid (warnings allowed), 1 when invalid, 2 on a usage error (unknown model,
missing file, bad flag value). Settings come from deploy/config.toml's tuning defaults
(AUTOTUNE_DEFAULT_* override them), then the flags.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from autotune.cli.app import app
from autotune.cli.terminal import echo

PROGRESS_MIN_BYTES = 64 * 1024 * 1024


@app.command()
def validate(
    train: Annotated[
        Path, typer.Argument(metavar="TRAIN", help="Training JSONL file.", exists=True, dir_okay=False, readable=True)
    ],
    validation: Annotated[
        Path | None,
        typer.Option("--validation", help="Validation JSONL file.", exists=True, dir_okay=False, readable=True),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Base model (see `autotune models`; default: deploy/config.toml).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: deploy/config.toml).")] = None,
    adapter_size: Annotated[int | None, typer.Option(help="Adapter size (default: the model's).")] = None,
    learning_rate_multiplier: Annotated[float | None, typer.Option(help="Learning-rate multiplier.")] = None,
    region: Annotated[str | None, typer.Option(help="Region the job will run in (default: deploy/config.toml).")] = None,
    check_files: Annotated[
        bool, typer.Option("--check-files", help="Check that every gs:// file the data references exists (needs Cloud Storage access).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON document.")] = False,
) -> None:
    """Check a tuning dataset for a model and its settings; name every bad line."""
    from autotune.catalog import load_catalog
    from autotune.config import ConfigError, PipelineConfig
    from autotune.settings import TuningSettings
    from autotune.validation import DatasetSource, file_chunks, validate_dataset
    from autotune.validation.codes import ErrorCode
    from autotune.validation.settings_rules import check_settings

    try:
        config = PipelineConfig.from_env()
    except ConfigError as exc:
        _usage_error(str(exc))
    settings = TuningSettings.from_defaults(config.defaults).overridden_by(
        {
            "model": model,
            "epochs": epochs,
            "adapter_size": adapter_size,
            "learning_rate_multiplier": learning_rate_multiplier,
            "region": region,
        }
    )
    catalog = load_catalog()
    problems: list[str] = []

    def collect(code: ErrorCode, field: str, message: str) -> None:
        if code.severity == "error":
            problems.append(f"{code.value}: {message}")

    check_settings(settings, catalog.get(settings.model), list(catalog.models), collect)
    if problems:
        _usage_error("\n".join(problems))

    media = _media_inspector() if check_files else None
    sources = {"train": train, "validation": validation}
    total = sum(p.stat().st_size for p in sources.values() if p is not None)
    with _progress(total) as progress:
        report = validate_dataset(
            DatasetSource(str(train), file_chunks(str(train)), train.stat().st_size),
            settings=settings,
            validation=None
            if validation is None
            else DatasetSource(str(validation), file_chunks(str(validation)), validation.stat().st_size),
            media=media,
            progress=progress,
        )
    if as_json:
        sys.stdout.buffer.write(report.to_json() + b"\n")
        sys.stdout.flush()
    else:
        echo(render_text(report))
    raise typer.Exit(0 if report.valid else 1)


def render_text(report) -> str:
    """Verdict and summary first, then `file:line: code: message` grouped by code."""
    out: list[str] = []
    verdict = "VALID" if report.valid else "INVALID"
    cost = report.cost_estimate
    out.append(
        f"{verdict}: {report.example_count:,} training examples for {report.model}"
        f" ({report.error_count:,} errors, {report.warning_count:,} warnings)"
    )
    for role, summary in report.files.items():
        out.append(
            f"  {role}: {summary.name}  {summary.examples:,} examples, {summary.lines:,} lines, "
            f"{summary.size:,} bytes, sha256 {summary.sha256[:16]}"
        )
        tokens = report.stats.get(role, {}).get("tokens")
        if tokens and tokens["examples"]:
            out.append(
                f"    tokens per example: min {tokens['min']:,}, median {tokens['median']:,}, "
                f"p95 {tokens['p95']:,}, max {tokens['max']:,}; total {tokens['total']:,}"
            )
    out.append(f"  token method: {report.stats['method']}")
    price = cost["price_per_million_training_tokens"]
    money = (
        f"about {cost['currency']} {cost['estimated_cost']:,.2f} at {price:g} per 1M (read {cost['price_read_on']})"
        if price is not None
        else "price unknown"
    )
    out.append(
        f"  cost: {cost['billable_tokens']:,} billable tokens ({cost['training_tokens']:,} x {cost['epochs']} epochs), "
        f"{money}; {cost['note']}"
    )
    names = {role: summary.name for role, summary in report.files.items()}
    by_code: dict[str, list] = {}
    for issue in report.errors:
        by_code.setdefault(issue.code, []).append(issue)
    for code, issues in by_code.items():
        total = report.counts.get(code, len(issues))
        out.append("")
        out.append(f"{code} ({issues[0].severity}, {total:,})")
        for issue in issues:
            where = names.get(issue.file, "settings") if issue.file else "settings"
            if issue.line is not None:
                where = f"{where}:{issue.line}"
            field = f" [{issue.field}]" if issue.field and issue.line is not None else ""
            out.append(f"  {where}: {code}: {issue.message}{field}")
        if total > len(issues):
            out.append(f"  ... and {total - len(issues):,} more")
    return "\n".join(out)


def _usage_error(message: str) -> None:
    echo(f"Error: {message}", err=True)
    raise typer.Exit(2)


def _media_inspector():
    from autotune.adapters.media import GcsMediaInspector

    try:
        from google.cloud import storage

        project = os.environ.get("AUTOTUNE_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT") or None
        return GcsMediaInspector(storage.Client(project=project))
    except Exception as exc:  # no credentials, no project: a usage problem, not a crash
        _usage_error(f"--check-files needs Cloud Storage access (or STORAGE_EMULATOR_HOST): {exc}")


class _NoProgress:
    def __enter__(self):
        return None

    def __exit__(self, *exc) -> None:
        return None


class _BarProgress:
    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self._progress = Progress(
            "validating", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=Console(file=sys.stderr), transient=True,
        )
        self._total = total

    def __enter__(self):
        self._progress.start()
        task = self._progress.add_task("validate", total=self._total)
        return lambda done: self._progress.update(task, completed=done)

    def __exit__(self, *exc) -> None:
        self._progress.stop()


def _progress(total: int):
    if total >= PROGRESS_MIN_BYTES and sys.stderr.isatty():
        return _BarProgress(total)
    return _NoProgress()
