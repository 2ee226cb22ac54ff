"""`autotune validate` itself, without the command-line framework: the argument parser the
`autotune` entry point uses for this one command, and the run both it and the typer command
(`autotune.cli.validate`, for `--help` and the command list) share.

Why a parser of its own: typer builds each parameter through pydantic, which costs about a
quarter of a second at every start; `autotune validate` is the command people run on large
files in loops and in CI, and its whole-process time is what is benchmarked against a bare
decode loop (bench/validator_bench.py). tests/unit/test_cli_validate.py holds the two parsers
to the same options.

Exit 0 when valid (warnings allowed), 1 when invalid, 2 on a usage error (unknown model,
missing file, bad flag value, a models file that does not load). Settings come from
deploy/config.toml's tuning defaults (AUTOTUNE_DEFAULT_* override them), then the flags. A
retired model is not a usage error: the report is produced (invalid, with model_retired) so it
shows everything else a current model would need too.

With --json, stdout always holds exactly one JSON document: the report, or on a usage error
{"valid": false, "usage_error": {"code": ..., "message": ...}}.

--html FILE also writes the page the validate function stores beside each JSON report
(autotune.report_page); a FILE that cannot be written is a usage error, found before any line
is read where it can be.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

from autotune.terminal_text import terminal_text

PROGRESS_MIN_BYTES = 64 * 1024 * 1024


class UsageError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ValidateArgs(NamedTuple):  # a NamedTuple, not a dataclass: `dataclasses` costs 5 ms a start
    train: Path
    validation: Path | None = None
    model: str | None = None
    # Numbers stay text until run(): a bad value is then a usage error this command reports
    # itself (as JSON with --json), not a parser message on stderr.
    epochs: str | None = None
    adapter_size: str | None = None
    learning_rate_multiplier: str | None = None
    region: str | None = None
    check_files: bool = False
    as_json: bool = False
    html: Path | None = None  # also write the report as an HTML page here


# (flag, help) of every option; the typer command declares the same ones.
OPTIONS = {
    "--validation": "Validation JSONL file.",
    "--model": "Base model (see `autotune models`; default: deploy/config.toml).",
    "--epochs": "Training epochs (default: deploy/config.toml).",
    "--adapter-size": "Adapter size (default: the model's).",
    "--learning-rate-multiplier": "Learning-rate multiplier.",
    "--region": "Region the job will run in (default: deploy/config.toml).",
    "--html": "Also write the report as a self-contained HTML page to this file.",
}
FLAGS = {
    "--check-files": "Check that every gs:// file the data references exists (needs Cloud Storage access).",
    "--json": "Print the report as one JSON document.",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print and exit 2 on its own
        raise UsageError("invalid_arguments", message)


def parse_argv(argv: list[str]) -> ValidateArgs:
    parser = _Parser(prog="autotune validate", add_help=False, allow_abbrev=False)
    parser.add_argument("train", metavar="TRAIN")
    for flag, help_text in OPTIONS.items():
        parser.add_argument(flag, help=help_text)
    for flag, help_text in FLAGS.items():
        parser.add_argument(flag, action="store_true", help=help_text)
    ns = parser.parse_args(argv)
    return ValidateArgs(
        train=Path(ns.train),
        validation=None if ns.validation is None else Path(ns.validation),
        model=ns.model,
        epochs=ns.epochs,
        adapter_size=ns.adapter_size,
        learning_rate_multiplier=ns.learning_rate_multiplier,
        region=ns.region,
        check_files=ns.check_files,
        as_json=ns.json,
        html=None if ns.html is None else Path(ns.html),
    )


def main_argv(argv: list[str]) -> int:
    """`autotune validate ARGS` as the entry point runs it; returns the exit status."""
    as_json = "--json" in argv
    try:
        return run(parse_argv(argv))
    except UsageError as exc:
        return report_usage_error(exc, as_json)


def report_usage_error(exc: UsageError, as_json: bool) -> int:
    sys.stderr.write(terminal_text(f"Error: {exc.message}") + "\n")
    if as_json:
        sys.stdout.write(
            json.dumps({"valid": False, "usage_error": {"code": exc.code, "message": exc.message}})
            + "\n"
        )
        sys.stdout.flush()
    return 2


def run(args: ValidateArgs) -> int:
    """Check a tuning dataset for a model and its settings; name every bad line. Raises
    UsageError; returns 0 (valid) or 1 (invalid)."""
    from autotune.catalog import CatalogError, load_catalog
    from autotune.config import ConfigError, PipelineConfig
    from autotune.settings import TuningSettings
    from autotune.validation import DatasetSource, file_chunks, validate_dataset
    from autotune.validation.codes import ErrorCode
    from autotune.validation.settings_rules import check_settings
    from autotune.validation.verdicts import Verdicts
    from autotune_local.checkout import config_file

    train, validation = args.train, args.validation
    for flag, path in (("TRAIN", train), ("--validation", validation)):
        if path is not None and not path.is_file():
            raise UsageError("file_not_readable", f"{flag}: {path} is not a readable file")
    if args.html is not None:
        _check_writable(args.html)
    try:
        config = PipelineConfig.from_env(config_file=config_file())
        config.export_models_file()
        catalog = load_catalog()
    except (ConfigError, CatalogError) as exc:
        raise UsageError("invalid_configuration", str(exc)) from None
    settings = TuningSettings.from_defaults(config.defaults).overridden_by(
        {
            "model": args.model,
            "epochs": _number(args.epochs, int),
            "adapter_size": _number(args.adapter_size, int),
            "learning_rate_multiplier": _number(args.learning_rate_multiplier, float),
            "region": args.region,
        }
    )
    problems: list[tuple[str, str]] = []
    model = catalog.get(settings.model)
    verdicts = Verdicts(catalog, model)

    def collect(code: ErrorCode, field: str, message: str) -> None:
        # A retired model is a finding of the report, not a usage error (see the module doc); so
        # is a setting refused only by an unconfirmed catalog fact (a warning in the report).
        if verdicts.severity(code) == "error" and code is not ErrorCode.MODEL_RETIRED:
            problems.append((code.value, message))

    check_settings(settings, model, list(catalog.models), collect)
    if problems:
        raise UsageError(
            problems[0][0], "\n".join(f"{code}: {message}" for code, message in problems)
        )

    media = _media_inspector() if args.check_files else None
    total = sum(p.stat().st_size for p in (train, validation) if p is not None)
    with _progress(total) as progress:
        report = validate_dataset(
            DatasetSource(str(train), file_chunks(str(train)), train.stat().st_size),
            settings=settings,
            validation=None
            if validation is None
            else DatasetSource(
                str(validation), file_chunks(str(validation)), validation.stat().st_size
            ),
            media=media,
            progress=progress,
            prices=config.prices,
        )
    if args.html is not None:
        _write_page(args.html, report.to_dict(), train)
    if args.as_json:
        sys.stdout.buffer.write(report.to_json() + b"\n")
    else:
        sys.stdout.write(terminal_text(render_text(report)) + "\n")
    sys.stdout.flush()
    return 0 if report.valid else 1


def _check_writable(path: Path) -> None:
    # Before validating, so a long run does not end on a path it could never write.
    if path.is_dir():
        raise UsageError(
            "html_not_writable",
            f"--html: {path} is a directory; give a file name such as report.html",
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError("html_not_writable", f"--html: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(
            "html_not_writable", f"--html: {path} cannot be written (permission denied)"
        )


def _write_page(path: Path, report: dict, train: Path) -> None:
    from autotune.report_page import render_report_page

    page = render_report_page(report, upload=str(train))
    try:
        path.write_bytes(page.encode("utf-8", "backslashreplace"))
    except OSError as exc:
        raise UsageError(
            "html_not_writable", f"--html: cannot write {path}: {exc.strerror or exc}"
        ) from None


def _number(text: str | None, kind: type) -> object:
    """The flag's number, or its text unchanged for check_settings to name as invalid."""
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        return text


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
    out.append(
        f"  cost: {cost['billable_tokens']:,} billable tokens ({cost['training_tokens']:,} x {cost['epochs']} epochs), "
        f"{estimate_text(cost)}"
    )
    names = {role: summary.name for role, summary in report.files.items()}
    by_code: dict[str, list] = {}
    for issue in report.errors:
        by_code.setdefault(issue.code, []).append(issue)
    for code, issues in by_code.items():
        total = report.counts.get(code, len(issues))
        out.append("")
        # One code may hold errors and warnings (a limit resting on an unconfirmed fact for one media kind).
        out.append(f"{code} ({'/'.join(sorted({i.severity for i in issues}))}, {total:,})")
        for issue in issues:
            where = names.get(issue.file, "settings") if issue.file else "settings"
            if issue.line is not None:
                where = f"{where}:{issue.line}"
            field = f" [{issue.field}]" if issue.field and issue.line is not None else ""
            out.append(f"  {where}: {code}: {issue.message}{field}")
        if total > len(issues):
            out.append(f"  ... and {total - len(issues):,} more")
    return "\n".join(out)


def estimate_text(cost: dict) -> str:
    """The estimate in dollars and where its price came from, or that the price is unknown and
    how to set it (the note says which)."""
    if cost.get("estimated_cost") is None:
        return str(cost.get("note") or "price unknown")
    amount = cost["estimated_cost"]
    shown = "under $0.01" if 0 < billable_cost(cost) < 0.005 else f"${amount:,.2f}"
    return f"about {shown}; {cost['note']}"


def billable_cost(cost: dict) -> float:
    price = cost.get("price_per_million_training_tokens") or 0
    return cost.get("billable_tokens", 0) / 1e6 * price


def _media_inspector():
    from autotune.adapters.media import GcsMediaInspector

    try:
        from google.cloud import storage

        project = (
            os.environ.get("AUTOTUNE_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT") or None
        )
        return GcsMediaInspector(storage.Client(project=project))
    except Exception as exc:  # no credentials, no project: a usage problem, not a crash
        raise UsageError(
            "no_storage_access",
            f"--check-files needs Cloud Storage access (or STORAGE_EMULATOR_HOST): {exc}",
        ) from None


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
            "validating",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(file=sys.stderr),
            transient=True,
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
