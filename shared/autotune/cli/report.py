"""`autotune report NAME`: the validation report the pipeline stored for an upload.

The report is the one validate wrote next to the data (`reports/<object>/<generation>.json`),
read from the local stack's bucket or from the deployed project's (see cli/uploads.py). Exit 0
when a report was printed, 1 when there is none for NAME, 2 when the asked-for form (HTML) does
not exist.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from autotune.cli.app import app
from autotune.cli.terminal import echo


@app.command()
def report(
    name: Annotated[
        str,
        typer.Argument(
            help="gs://BUCKET/OBJECT[#GENERATION], an object or file name, a job name or id, or a ledger key."
        ),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the stored JSON report as it is.")
    ] = False,
    as_html: Annotated[
        bool,
        typer.Option("--html", help="Print the stored HTML report (where the pipeline wrote one)."),
    ] = False,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir", help="The local stack's state directory (default: .autotune/)."
        ),
    ] = None,
) -> None:
    """Print the validation report stored for an upload (its latest version unless NAME has #GENERATION)."""
    from google.api_core import exceptions as gexc

    from autotune.cli.terminal import fail
    from autotune.cli.uploads import connect_bucket

    bucket = connect_bucket(state_dir)
    try:
        _print_report(bucket, name, as_json=as_json, as_html=as_html)
    except gexc.GoogleAPIError as exc:
        raise fail(f"cannot read the reports in gs://{bucket.config.bucket}: {exc}") from None


def _print_report(bucket, name: str, *, as_json: bool, as_html: bool) -> None:
    from autotune.cli.jobs import find_records
    from autotune.cli.terminal import fail
    from autotune.intake.objects import html_report_name
    from autotune.upload_fates import matches, newest_first, parse_report_name

    records = bucket.records()
    fates = [
        f for f in bucket.fates(records, read_reports=False) if f.report_name and matches(f, name)
    ]
    report_name = newest_first(fates)[0].report_name if fates else None
    if report_name is None:
        # A job id, a ledger key, or the training file a manifest named: the ledger knows its report.
        record = next((r for r in find_records(records, name) if r.report_uri), None)
        prefix = f"gs://{bucket.config.bucket}/"
        if record is not None and record.report_uri and record.report_uri.startswith(prefix):
            report_name = record.report_uri[len(prefix) :]
    if report_name is None:
        raise fail(f"no stored report matches {name!r} (`autotune jobs` lists every upload)")
    uri = f"gs://{bucket.config.bucket}/{report_name}"
    if as_html:
        html_name = html_report_name(report_name)
        stored = bucket.store.stat(html_name)
        if stored is None:
            raise fail(
                f"no HTML report exists for {name!r} beside {uri} (it was validated before the pipeline "
                "wrote HTML pages); print it as text (no flag) or as JSON (--json)",
                2,
            )
        sys.stdout.buffer.write(bucket.store.read_bytes(html_name, stored.generation))
        return
    stored = bucket.store.stat(report_name)
    if stored is None:
        raise fail(f"the report {uri} is gone from the bucket")
    raw = bucket.store.read_bytes(report_name, stored.generation)
    if as_json:
        sys.stdout.buffer.write(raw.rstrip(b"\n") + b"\n")
        sys.stdout.flush()
        return
    import json

    try:
        document = json.loads(raw)
    except ValueError:
        raise fail(f"the report {uri} is not JSON") from None
    upload = parse_report_name(report_name, bucket.config.reports_prefix)
    echo(render_stored_report(document, uri, upload))


def render_stored_report(document: dict, report_uri: str, upload: tuple[str, str] | None) -> str:
    """Verdict and summary first, then every listed problem grouped by code, saying how many more
    the report counted than it lists."""
    from autotune.cli.uploads import issue_line
    from autotune.upload_fates import report_totals

    errors, warnings = report_totals(document)
    verdict = "VALID (accepted)" if document.get("valid") is True else "INVALID (rejected)"
    subject = f" gs://{report_uri.split('/')[2]}/{upload[0]}#{upload[1]}" if upload else ""
    out = [
        f"{verdict}:{subject} for {document.get('model') or 'an unknown model'} ({errors:,} errors, {warnings:,} warnings)"
    ]
    for role, summary in (document.get("files") or {}).items():
        if isinstance(summary, dict):
            out.append(
                f"  {role}: {summary.get('name')}  {summary.get('examples', 0):,} examples, {summary.get('lines', 0):,} lines, "
                f"{summary.get('size', 0):,} bytes"
            )
    cost = document.get("cost_estimate") or {}
    if cost.get("billable_tokens") is not None:
        from autotune.validate_command import estimate_text

        out.append(
            f"  billable tokens: {cost['billable_tokens']:,} (estimated; {cost.get('epochs', '?')} epochs); "
            f"cost: {estimate_text(cost)}"
        )
    out.append(f"  report: {report_uri}")
    by_code: dict[str, list[dict]] = {}
    for issue in document.get("errors") or []:
        if isinstance(issue, dict):
            by_code.setdefault(str(issue.get("code")), []).append(issue)
    counts = document.get("counts") or {}
    for code, issues in by_code.items():
        total = counts.get(code, len(issues))
        out.append("")
        out.append(
            f"{code} ({'/'.join(sorted({str(i.get('severity')) for i in issues}))}, {total:,})"
        )
        out.extend("  " + issue_line(issue, document) for issue in issues)
        if isinstance(total, int) and total > len(issues):
            out.append(
                f"  ... and {total - len(issues):,} more (counted, not listed in the report)"
            )
    return "\n".join(out)
