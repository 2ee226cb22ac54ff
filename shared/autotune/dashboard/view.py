"""The dashboard's data from plain values (pure): uploads and their fates, the ledger's records and
slots, the events seen. The page and its JSON endpoint show exactly this.

Fates come from `autotune.upload_fates` (the same matching of reports to ledger records that
`autotune jobs` uses); the state column is the ledger's state or the fate's (`fate_state`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from autotune.config import PipelineConfig
from autotune.events import TuningEvent
from autotune.intake.objects import HTML_REPORT_SUFFIX, html_report_name
from autotune.intake.reconciliation import ListedObject
from autotune.jobs.documents import Slots
from autotune.jobs.lifecycle import ENDED_STATES, LedgerRecord, LedgerState, parse_timestamp
from autotune.upload_fates import REJECTED, UploadFate, upload_fates, with_report

REPORT_ROUTE = "/report"


@dataclass(frozen=True)
class Listing:
    """One reading of the bucket and the ledger."""

    uploads: list[ListedObject]
    reports: list[ListedObject]
    records: list[LedgerRecord]
    slots: Slots


def reports_to_read(listing: Listing, config: PipelineConfig) -> list[str]:
    """Report objects whose contents the page needs (the verdict and error count of uploads the
    ledger does not hold), as `autotune jobs` reads them."""
    fates = upload_fates(listing.uploads, listing.reports, listing.records, config)
    return [
        f.report_name
        for f in fates
        if f.report_name and (f.verdict in (REJECTED, "") or f.record is None)
    ]


def report_link(report_name: str) -> str:
    """The dashboard's own read-only route to a stored report (any object name, escaped for a URL)."""
    return f"{REPORT_ROUTE}?{urlencode({'name': report_name}, quote_via=quote)}"


def console_link(bucket: str, name: str) -> str:
    """The object's page in the Google Cloud console."""
    return f"https://console.cloud.google.com/storage/browser/_details/{quote(bucket)}/{quote(name)};tab=live_object"


def build_view(
    listing: Listing,
    reports: Mapping[str, Mapping | None],
    config: PipelineConfig,
    *,
    events: Iterable[TuningEvent] = (),
    events_note: str = "",
    now: datetime,
    on_google_cloud: bool = False,
) -> dict[str, Any]:
    """The whole page as JSON-ready values: every upload newest first, the queue, the slots, the events."""
    from autotune.cli.uploads import fate_state

    fates = [
        with_report(f, reports.get(f.report_name)) if f.report_name else f
        for f in upload_fates(listing.uploads, listing.reports, listing.records, config)
    ]
    uploaded_at = {(u.stored.name, u.stored.generation): u.updated for u in listing.uploads}
    html_reports = {
        r.stored.name for r in listing.reports if r.stored.name.endswith(HTML_REPORT_SUFFIX)
    }
    queue = queue_positions(listing.slots)
    shown = {id(f.record) for f in fates if f.record is not None}
    rows = [
        _fate_row(f, fate_state(f), uploaded_at, html_reports, queue, on_google_cloud)
        for f in fates
    ]
    # Records whose report is not listed (deleted, or under another prefix) still have their row.
    rows += [_record_row(r, queue) for r in listing.records if id(r) not in shown]
    rows.sort(
        key=lambda row: (
            row["times"]["uploaded"] or row["times"]["verdict"] or row["times"]["accepted"] or ""
        ),
        reverse=True,
    )
    by_key = {r.idempotency_key: r for r in listing.records}

    def holder(
        key: str,
    ) -> dict[str, Any]:  # a slot's or a queue place's dataset (None if its record is gone)
        record = by_key.get(key)
        return {
            "key": key,
            "dataset_uri": record.dataset_uri if record else None,
            "generation": record.generation if record else None,
            "state": str(record.state) if record else None,
            "job_name": record.job_name if record else None,
        }

    queued = [
        {"position": position, **holder(key)}
        for key, position in sorted(queue.items(), key=lambda item: item[1])
    ]
    active = [
        {"since": since, **holder(key)}
        for key, since in sorted(listing.slots.active.items(), key=lambda item: item[1])
    ]
    return {
        "project": config.project,
        "bucket": config.bucket,
        "generated_at": _iso(now),
        "slots": {
            "used": len(listing.slots.active),
            "quota": config.max_concurrent_jobs,
            "active": active,
        },
        "queue": queued,
        "uploads": rows,
        "counts": _counts(rows),
        "events": [_event_row(e) for e in sorted(events, key=lambda e: e.time, reverse=True)],
        "events_note": events_note,
    }


def queue_positions(slots: Slots) -> dict[str, int]:
    """Ledger key -> place in the FIFO queue (1 is next), in the order `Slots.head` takes them."""
    ordered = sorted(slots.queued.items(), key=lambda item: (item[1], item[0]))
    return {key: i for i, (key, _) in enumerate(ordered, start=1)}


def record_times(record: LedgerRecord) -> dict[str, str | None]:
    """When the ledger saw the dataset accepted, its job submitted, and its end (the first arrival in each)."""

    def first(states: Iterable[LedgerState]) -> str | None:
        wanted = set(states)
        return next((step.at for step in record.history if step.state in wanted), None)

    return {
        "accepted": first([LedgerState.ACCEPTED]),
        "submitted": first([LedgerState.SUBMITTED]),
        "ended": first(ENDED_STATES),
    }


def _fate_row(
    fate: UploadFate,
    state: str,
    uploaded_at: Mapping,
    html_reports: set[str],
    queue: Mapping[str, int],
    on_google_cloud: bool,
) -> dict[str, Any]:
    record = fate.record
    uploaded = uploaded_at.get((fate.object_name, fate.generation))
    verdict_time = fate.updated if fate.report_name else None
    times = {
        "uploaded": _iso(uploaded) if uploaded else None,
        "verdict": _iso(verdict_time) if verdict_time else None,
        "accepted": None,
        "submitted": None,
        "ended": None,
    }
    if record is not None:
        times.update(record_times(record))
    html_name = html_report_name(fate.report_name) if fate.report_name else None
    row = {
        "object": fate.object_name,
        "generation": fate.generation,
        "uri": fate.uri,
        "state": state,
        "verdict": fate.verdict or None,
        "errors": fate.error_count,
        "warnings": fate.warning_count,
        "why": fate.why or None,
        "report_uri": fate.report_uri,
        "report_json": report_link(fate.report_name) if fate.report_name else None,
        "report_html": report_link(html_name) if html_name and html_name in html_reports else None,
        "report_console": console_link(fate.bucket, fate.report_name)
        if on_google_cloud and fate.report_name
        else None,
        "model": fate.model,
        "times": times,
        **_record_fields(record, queue),
    }
    if record is not None and row["model"] is None:
        row["model"] = record.model
    row["elapsed"] = _elapsed(times)
    return row


def _record_row(record: LedgerRecord, queue: Mapping[str, int]) -> dict[str, Any]:
    times = {"uploaded": None, "verdict": None, **record_times(record)}
    object_name = (
        record.dataset_uri.split("/", 3)[-1]
        if record.dataset_uri.startswith("gs://")
        else record.dataset_uri
    )
    return {
        "object": object_name,
        "generation": record.generation,
        "uri": record.dataset_uri,
        "state": str(record.state),
        "verdict": "accepted",
        "errors": None,
        "warnings": None,
        "why": None,
        "report_uri": record.report_uri,
        "report_json": None,
        "report_html": None,
        "report_console": None,
        "model": record.model,
        "times": times,
        **_record_fields(record, queue),
        "elapsed": _elapsed(times),
    }


def _record_fields(record: LedgerRecord | None, queue: Mapping[str, int]) -> dict[str, Any]:
    if record is None:
        return {
            "key": None,
            "queue_position": None,
            "job_name": None,
            "job_state": None,
            "tuned_model": None,
            "endpoint": None,
            "error": None,
            "reason": None,
        }
    return {
        "key": record.idempotency_key,
        "queue_position": queue.get(record.idempotency_key)
        if record.state == LedgerState.QUEUED
        else None,
        "job_name": record.job_name,
        "job_state": record.job_state,
        "tuned_model": record.tuned_model,
        "endpoint": record.endpoint,
        "error": record.error,
        "reason": record.reason,
    }


def _elapsed(times: Mapping[str, str | None]) -> dict[str, float | None]:
    """Seconds from the upload (or, when its time is unknown, the verdict) to each later step."""
    start = times.get("uploaded") or times.get("verdict")
    out: dict[str, float | None] = {}
    for step in ("verdict", "accepted", "submitted", "ended"):
        at = times.get(step)
        out[step] = round((_parse(at) - _parse(start)).total_seconds(), 1) if at and start else None
    return out


def _counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return dict(sorted(counts.items()))


def _event_row(event: TuningEvent) -> dict[str, Any]:
    payload = event.payload
    return {
        "id": event.id,
        "time": event.time,
        "type": event.type.value,
        "kind": _event_kind(event.type.value),
        "subject": event.subject,
        "generation": payload.generation,
        "state": payload.state,
        "job_name": payload.job_name,
        "error_count": payload.error_count,
        "detail": payload.error or payload.reason or None,
    }


def _event_kind(event_type: str) -> str:
    """autotune.job.v1.succeeded -> job.succeeded"""
    parts = event_type.split(".")
    return f"{parts[1]}.{parts[-1]}" if len(parts) >= 3 else event_type


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    try:
        return parse_timestamp(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
