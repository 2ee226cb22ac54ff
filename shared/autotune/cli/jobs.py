"""The ledger from the command line: `autotune jobs`, `autotune status`, `autotune cancel`.

They read the running local stack's addresses from its state (.autotune/), like `autotune
watch`; with no local stack running they use the process environment (AUTOTUNE_* variables
and the usual Google credentials), so the same commands work against a Google Cloud deployment.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from autotune.cli.app import app
from autotune.cli.terminal import echo, fail, terminal_text

if TYPE_CHECKING:
    from autotune.jobs.lifecycle import LedgerRecord
    from autotune.jobs.pipeline import Pipeline

StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="The local stack's state directory (default: .autotune/)."),
]
WHY_MIN_WIDTH = 20  # columns the reason keeps before the dataset name gives way
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command()
def jobs(as_json: JsonOption = False, state_dir: StateDirOption = None) -> None:
    """Every upload: the ledger's datasets (state, job, why), then the uploads it does not hold
    (rejected with their error count and report, ignored, awaiting their verdict)."""
    from autotune.cli.uploads import connect_bucket, fate_json, fate_state, fate_why

    bucket = connect_bucket(state_dir)
    records = bucket.records()
    others = [f for f in bucket.fates(records) if f.record is None]
    if as_json:
        echo(
            json.dumps([record_json(r) for r in records] + [fate_json(f) for f in others], indent=2)
        )
        return
    if not records and not others:
        echo("nothing uploaded yet: the ledger is empty and the bucket holds no upload.")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    rows: list[tuple[str, ...]] = []
    for r in records:
        rows.append(
            (
                f"{_object_name(r.dataset_uri)}#{r.generation[-6:]}",
                str(r.state),
                r.model or "",
                _job_id(r.job_name),
                r.updated_at[5:19].replace("T", " "),
                r.error or r.reason or "",
            )
        )
    for f in others:
        updated = f.updated.strftime("%m-%d %H:%M:%S") if f.updated else ""
        rows.append(
            (
                f"{f.object_name}#{f.generation[-6:]}",
                fate_state(f),
                f.model or "",
                "",
                updated,
                fate_why(f),
            )
        )
    # Text cells: no rich markup read into a name ("[bold]..."), control characters escaped.
    rows = [tuple(terminal_text(cell, newlines=False) for cell in row) for row in rows]
    # One line per upload at the terminal's width (80 columns when piped, or COLUMNS). The
    # dataset name is what `status` and `report` take, so it goes whole while it can: the
    # updated time, then the model give way first (both are in `status`), then the name is cut
    # from the left, keeping its end (the file name, which `status` also takes, as far as the
    # width allows: at 80 columns a long file name loses its start too), and the reason takes
    # what is left, cut with an ellipsis. `--json` has everything whole.
    console = Console()
    columns = ["dataset", "state", "model", "job", "updated (UTC)", "why"]
    widths = {c: max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(columns)}
    cells = {c: [row[i] for row in rows] for i, c in enumerate(columns)}

    def spare() -> int:  # what the dataset name and the reason share
        shown = [c for c in columns if c not in ("dataset", "why")]
        return console.width - sum(widths[c] for c in shown) - 2 * (len(columns) - 1)

    for optional in ("updated (UTC)", "model"):
        if spare() - widths["dataset"] >= WHY_MIN_WIDTH:
            break
        columns.remove(optional)
    room = spare()
    widths["dataset"] = min(widths["dataset"], max(room - WHY_MIN_WIDTH, room // 2))
    widths["why"] = max(min(widths["why"], room - widths["dataset"]), len("why"))
    cells["dataset"] = [_cut_left(name, widths["dataset"]) for name in cells["dataset"]]
    table = Table(box=None, pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="ellipsis", width=widths[column])
    for i in range(len(rows)):
        table.add_row(*(Text(cells[column][i]) for column in columns))
    console.print(table)


@app.command()
def status(
    dataset_or_job: Annotated[
        str,
        typer.Argument(
            help="gs://BUCKET/OBJECT, an object name, a job name or id, or a ledger key."
        ),
    ],
    as_json: JsonOption = False,
    state_dir: StateDirOption = None,
) -> None:
    """Everything known about one upload (its latest version) or one job: the ledger's record, or
    the verdict, error count and report of an upload the ledger does not hold."""
    from autotune.cli.uploads import connect_bucket, describe_fate, fate_json
    from autotune.upload_fates import matches, newest_first

    bucket = connect_bucket(state_dir)
    records = bucket.records()
    fates = newest_first(f for f in bucket.fates(records) if matches(f, dataset_or_job))
    # The newest upload of that name may be one the ledger does not hold (rejected, not yet
    # validated); an ignored file only answers when the ledger knows nothing by that name (a
    # manifest's training file in parts/ is ignored as an upload, yet in the ledger).
    if (
        fates
        and fates[0].record is None
        and (fates[0].verdict != "ignored" or not find_records(records, dataset_or_job))
    ):
        echo(json.dumps(fate_json(fates[0]), indent=2) if as_json else describe_fate(fates[0]))
        return
    record = fates[0].record if fates and fates[0].record else _one(records, dataset_or_job)
    if as_json:
        echo(json.dumps(record_json(record), indent=2))
        return
    echo(describe_record(record))


@app.command()
def cancel(
    job: Annotated[
        str,
        typer.Argument(
            help="A job name or id, gs://BUCKET/OBJECT, an object name, or a ledger key."
        ),
    ],
    state_dir: StateDirOption = None,
) -> None:
    """Cancel a dataset's tuning: a queued one leaves the queue; a running job is cancelled on Vertex AI
    and the next status tick records CANCELLED."""
    from autotune.jobs.cancel import cancel as cancel_tuning
    from autotune.jobs.documents import JobOutcome
    from autotune.jobs.ports import TuningServiceError

    pipeline = _pipeline(state_dir)
    record = _one(pipeline.ledger.records(), job)
    try:
        outcome = cancel_tuning(pipeline, record.idempotency_key)
    except (ValueError, TuningServiceError) as exc:
        raise fail(f"cannot cancel {record.dataset_uri}: {exc}") from None
    if outcome != JobOutcome.CANCELLED:  # it left the queue between the read and the cancel
        now = pipeline.ledger.get(record.idempotency_key)
        raise fail(
            f"cannot cancel {record.dataset_uri}: it left the queue while being cancelled"
            f" (now {now.state if now else 'gone'}); run the command again to cancel its job"
        )
    if record.job_name and str(record.state) != "QUEUED":
        echo(
            f"cancel requested for {record.job_name} ({record.dataset_uri}); the next status tick records CANCELLED."
        )
    else:
        echo(
            f"cancelled {record.dataset_uri} (generation {record.generation}) before it was submitted."
        )


def find_records(records: Iterable[LedgerRecord], query: str) -> list[LedgerRecord]:
    """Records matching a ledger key, a job name or id, a gs:// URI, an object name or a file name;
    newest first."""
    query = query.strip()
    matches = []
    for r in records:
        object_name = _object_name(r.dataset_uri)
        if (
            query
            in {
                r.idempotency_key,
                r.job_name,
                r.dataset_uri,
                object_name,
                f"{r.dataset_uri}#{r.generation}",
            }
            or (r.job_name and query.isdigit() and r.job_name.endswith(f"/tuningJobs/{query}"))
            or object_name.rsplit("/", 1)[-1] == query
        ):
            matches.append(r)
    return sorted(matches, key=lambda r: r.created_at, reverse=True)


def record_json(record: LedgerRecord) -> dict:
    import msgspec

    data = msgspec.to_builtins(record)
    data.pop("outbox", None)
    return data


def describe_record(r: LedgerRecord) -> str:
    value_text = lambda value: terminal_text(value, newlines=False)  # noqa: E731
    lines = [f"{value_text(r.dataset_uri)} (generation {value_text(r.generation)}): {r.state}"]
    for label, value in (
        ("model", r.model),
        ("region", r.region),
        ("job", r.job_name),
        ("job state", r.job_state),
        ("tuned model", r.tuned_model),
        ("endpoint", r.endpoint),
        ("error", r.error),
        ("reason", r.reason),
        ("duplicate of", r.duplicate_of),
        ("report", r.report_uri),
        ("attempts", r.attempts or None),
        ("ledger key", r.idempotency_key),
    ):
        if value not in (None, ""):
            lines.append(f"  {label + ':':<13} {value_text(value)}")
    stats = r.tuning_data_stats or {}
    if stats:
        lines.append(
            f"  {'data stats:':<13} {stats.get('tuningDatasetExampleCount', '?')} examples, "
            f"{stats.get('totalBillableTokenCount', '?')} billable tokens"
        )
    lines.append("  history:")
    for step in r.history:
        lines.append(
            f"    {step.at}  {step.state}"
            + (f"  ({value_text(step.reason)})" if step.reason else "")
        )
    return "\n".join(lines)


def _one(records: Iterable[LedgerRecord], query: str) -> LedgerRecord:
    matches = find_records(records, query)
    if not matches:
        raise fail(f"no upload or ledger record matches {query!r} (try `autotune jobs`)")
    return matches[0]


def _object_name(uri: str) -> str:
    return uri.split("/", 3)[-1] if uri.startswith("gs://") else uri


def _cut_left(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[len(text) - width + 1 :]


def _job_id(job_name: str | None) -> str:
    return job_name.rsplit("/", 1)[-1] if job_name else ""


def _pipeline(state_dir: Path | None) -> Pipeline:
    """The job pipeline of the running local stack, else of the environment (Google Cloud)."""
    import os

    from autotune.adapters.jobs import connect_pipeline
    from autotune.config import PipelineConfig
    from autotune_local.checkout import config_file
    from autotune_local.clients import google_clients
    from autotune_local.processes import is_running
    from autotune_local.stack import DEFAULT_STATE_DIR, read_state, recorded_processes

    directory = (state_dir or DEFAULT_STATE_DIR).resolve()
    state = read_state(directory)
    if state and any(is_running(p) for p in recorded_processes(directory)):
        env = dict(state["env"])
        return connect_pipeline(
            PipelineConfig.from_env(env), clients=google_clients(env), environ=env
        )
    if "AUTOTUNE_PROJECT" not in os.environ:
        raise fail(
            "no local stack is running (start one with `autotune up --detach`) and AUTOTUNE_PROJECT is not set for Google Cloud"
        )
    return connect_pipeline(PipelineConfig.from_env(config_file=config_file()))
