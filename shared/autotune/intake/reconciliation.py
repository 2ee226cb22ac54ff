"""Uploads whose messages were lost, found from the bucket and the ledger, and taken in again.

The pipeline moves a dataset from the bucket to the ledger with two messages: the storage
notification (to validate) and the tuning request (to submit). Once the ledger holds the dataset,
the ledger drives it to its end; before that, a lost message loses the dataset. Google Cloud's
Pub/Sub keeps messages until acknowledged, but a validation dead-lettered after its retries, or
the local Pub/Sub emulator restarted (it keeps nothing), loses one. So, at most once every
`reconcile_every_seconds`, the status tick compares what is in the bucket with what was done:

- an upload under the incoming prefix with no report: its notification never reached validate
  (or validate never finished): validate it now;
- an upload whose report says accepted while no ledger record names that report: its tuning
  request was never claimed: validate it again, which publishes the same request again.

Only uploads older than `reconcile_after_seconds` are looked at (younger ones may still be on
their way), and none older than RECONCILE_WINDOW (bounding the work of each pass). Taking an
upload in twice is harmless: intake writes the same report, publishes a request with the same
idempotency key (submit claims it once) and events with the same ce-id.

An upload intake fails on (it raises) is remembered with its error and how many times in a row
it failed that way. It is then tried only after the uploads that never failed, and not before a
pause that doubles with each failure (one period, two, four, ... at most a day): so poison can
never starve a genuinely lost upload, and a failure that was only an outage heals by itself.
The second failure the same way is logged once, as an error; the later ones only count.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from autotune import structured_log
from autotune.config import PipelineConfig
from autotune.intake.decisions import UploadDecision
from autotune.intake.objects import (
    REPORT_VALID_METADATA,
    StoredObject,
    classify,
    name_too_long,
    report_object_name,
)
from autotune.intake.ports import IntakeDeps
from autotune.intake.upload import process_upload
from autotune.jobs.lifecycle import timestamp

RECONCILE_WINDOW = timedelta(days=7)  # Pub/Sub's longest message retention: older is history
RECONCILE_TURN = "reconcile"
# Uploads taken in per pass, oldest first; the rest wait for the next pass. Each may mean reading
# a large file, and the pass runs inside a status tick, which has a deadline.
MAX_UPLOADS_PER_PASS = 20


@dataclass(frozen=True)
class ListedObject:
    """One object of a bucket listing."""

    stored: StoredObject
    updated: datetime


class BucketLister(Protocol):
    def list_objects(self, prefix: str) -> Iterator[ListedObject]: ...


class ReconcileLedger(Protocol):
    def report_uris_since(
        self, since: str
    ) -> Collection[str]: ...  # report URIs of records created since
    def take_turn(
        self, name: str, now: datetime, every_seconds: float
    ) -> bool: ...  # True at most once per period
    # Uploads intake failed on: "gs://bucket/name#generation" -> the last failure.
    def intake_failures(self) -> Mapping[str, IntakeFailure]: ...
    def record_intake_failure(self, upload: str, error: str, now: datetime) -> IntakeFailure: ...
    # When this ledger began (recorded by the first caller): a report accepted before it cannot
    # have been claimed in it, so its absence from the ledger says nothing.
    def started_at(self, now: datetime) -> datetime: ...


@dataclass(frozen=True)
class IntakeFailure:
    error: str
    times: int  # in a row with this error
    at: datetime  # the last one

    def due(self, now: datetime, every_seconds: float) -> bool:
        pause = min(
            MAX_FAILURE_PAUSE.total_seconds(), max(every_seconds, 1.0) * 2 ** (self.times - 1)
        )
        return now >= self.at + timedelta(seconds=pause)


MAX_FAILURE_PAUSE = timedelta(days=1)


@dataclass(frozen=True)
class LostUpload:
    upload: StoredObject
    why: str


def find_lost_uploads(
    uploads: Iterable[ListedObject],
    reports: Mapping[str, ListedObject],
    claimed_reports: Collection[str],
    *,
    config: PipelineConfig,
    now: datetime,
    ledger_started: datetime | None = None,
) -> list[LostUpload]:
    """The uploads to take in again, oldest first (pure): `reports` by object name,
    `claimed_reports` the report URIs the ledger holds, `ledger_started` when that ledger began
    (an accepted report older than the ledger is history: a ledger that lost its records, like a
    restarted local emulator, must not resubmit datasets that were cancelled or skipped)."""
    settle = timedelta(seconds=config.reconcile_after_seconds)
    lost: list[tuple[datetime, LostUpload]] = []
    for listed in uploads:
        upload = listed.stored
        age = now - listed.updated
        if age < settle or age > RECONCILE_WINDOW:
            continue
        if (
            upload.bucket != config.bucket
            or classify(upload.name, config.incoming_prefix)[0] == "ignored"
        ):
            continue
        report_name = report_object_name(config.reports_prefix, upload.name, upload.generation)
        if name_too_long(upload.uri, report_name):
            continue  # intake rejects it without a report, every time: nothing to recover
        report = reports.get(report_name)
        if report is None:
            lost.append(
                (
                    listed.updated,
                    LostUpload(upload, "no report: its storage notification was never handled"),
                )
            )
            continue
        accepted = report.stored.metadata.get(REPORT_VALID_METADATA) == "true"
        report_uri = f"gs://{upload.bucket}/{report_name}"
        if ledger_started is not None and report.updated < ledger_started:
            continue
        if accepted and report_uri not in claimed_reports and now - report.updated >= settle:
            lost.append(
                (
                    listed.updated,
                    LostUpload(upload, "accepted, but its tuning request was never claimed"),
                )
            )
    return [found for _, found in sorted(lost, key=lambda pair: (pair[0], pair[1].upload.name))]


@dataclass
class ReconcileSummary:
    uploads_listed: int = 0
    lost: int = 0
    waiting: int = 0  # failed before, pausing before the next try
    deferred: int = 0  # lost, left to the next pass (MAX_UPLOADS_PER_PASS)
    outcomes: dict[str, int] = field(default_factory=dict)  # intake decision -> count
    errors: list[str] = field(default_factory=list)


def reconcile(
    config: PipelineConfig,
    intake: IntakeDeps,
    lister: BucketLister,
    ledger: ReconcileLedger,
    *,
    now: datetime,
    on_outcome: Callable[[LostUpload, UploadDecision], None] = lambda lost, outcome: None,
) -> ReconcileSummary:
    """One pass: list, compare, and run intake on each lost upload (errors are counted, not raised:
    the next pass tries again)."""
    summary = ReconcileSummary()
    uploads = list(lister.list_objects(config.incoming_prefix))
    summary.uploads_listed = len(uploads)
    reports = {listed.stored.name: listed for listed in lister.list_objects(config.reports_prefix)}
    claimed = ledger.report_uris_since(timestamp(now - RECONCILE_WINDOW - timedelta(days=1)))
    lost_uploads = find_lost_uploads(
        uploads, reports, claimed, config=config, now=now, ledger_started=ledger.started_at(now)
    )
    failures = ledger.intake_failures() if lost_uploads else {}
    fresh = [lost for lost in lost_uploads if upload_id(lost.upload) not in failures]
    retried = [
        lost
        for lost in lost_uploads
        if upload_id(lost.upload) in failures
        and failures[upload_id(lost.upload)].due(now, config.reconcile_every_seconds)
    ]
    summary.waiting = len(lost_uploads) - len(fresh) - len(retried)
    lost_uploads = fresh + retried  # never-failed first: poison cannot take their places
    summary.deferred = max(0, len(lost_uploads) - MAX_UPLOADS_PER_PASS)
    for lost in lost_uploads[:MAX_UPLOADS_PER_PASS]:
        summary.lost += 1
        try:
            outcome = process_upload(lost.upload, config, intake)
        except Exception as exc:
            error = f"{type(exc).__name__}: {str(exc)[:500]}"
            summary.errors.append(f"{ascii(lost.upload.uri)}: {error}")
            failure = ledger.record_intake_failure(upload_id(lost.upload), error, now)
            if failure.times == 2:
                structured_log.error(
                    "reconciliation: an upload failed intake the same way twice; it is tried again "
                    "after the uploads that never failed, with doubling pauses",
                    upload=upload_id(lost.upload),
                    error=error,
                )
            continue
        summary.outcomes[outcome.decision] = summary.outcomes.get(outcome.decision, 0) + 1
        on_outcome(lost, outcome)
    return summary


def upload_id(upload: StoredObject) -> str:
    return f"{ascii(upload.uri)[1:-1]}#{upload.generation}"


def reconcile_if_due(
    config: PipelineConfig,
    ledger: ReconcileLedger,
    connect: Callable[[], tuple[IntakeDeps, BucketLister]],
    *,
    now: datetime,
    on_outcome: Callable[[LostUpload, UploadDecision], None] = lambda lost, outcome: None,
) -> ReconcileSummary | None:
    """A pass if reconciliation is on and no other instance ran one in the last period."""
    if config.reconcile_every_seconds <= 0 or not ledger.take_turn(
        RECONCILE_TURN, now, config.reconcile_every_seconds
    ):
        return None
    intake, lister = connect()
    return reconcile(config, intake, lister, ledger, now=now, on_outcome=on_outcome)
