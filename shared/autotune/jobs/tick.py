"""The status tick: publish what crashes left in outboxes, record job changes, take over dead
claims, fill free slots, release stale ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import msgspec

from autotune import structured_log
from autotune.jobs.decisions import (
    promote,
    quarantine,
    record_duplicate_cancelled,
    record_failure,
    record_job_snapshot,
    release_stale_slot,
    take_over,
)
from autotune.jobs.documents import Change, JobOutcome, Slots
from autotune.jobs.job_spec import KEY_LABEL, JobSpecError, build_job_spec
from autotune.jobs.lifecycle import (
    ACTIVE_JOB_STATES,
    ENDED_STATES,
    VERTEX_TO_LEDGER,
    JobSnapshot,
    LedgerRecord,
    LedgerState,
    claim_expired,
    parse_timestamp,
)
from autotune.jobs.outbox import lease_leftovers
from autotune.jobs.pipeline import Pipeline, publish_announced, update_record
from autotune.jobs.ports import ErrorKind, TuningServiceError, UnwritableRecord
from autotune.jobs.request import TuningRequest
from autotune.jobs.submit import adopt_or_create_job, pinned_copy_problem


@dataclass
class TickSummary:
    published: int = 0
    observed: int = 0
    changed: int = 0
    taken_over: int = 0
    promoted: int = 0
    duplicates_cancelled: int = 0
    quarantined: int = 0
    errors: list[str] = field(default_factory=list)


def status_tick(pipeline: Pipeline) -> TickSummary:
    """One poll: publish leftovers, record job changes, take over dead claims, fill free slots.
    A record whose step fails for a reason of its own (it cannot be written, say) is quarantined
    and the tick goes on with the others."""
    ledger, summary = pipeline.ledger, TickSummary()
    for record in ledger.with_outbox():
        _isolated(pipeline, summary, record, _publish_leftovers)
    for record in ledger.records(ACTIVE_JOB_STATES):
        summary.observed += 1
        if record.job_name:
            _isolated(pipeline, summary, record, _observe_job)
    for record in ledger.records({LedgerState.SUBMITTING}):
        _isolated(pipeline, summary, record, _take_over_expired)
    _fill_free_slots(pipeline, summary)
    _release_stale_slots(pipeline)
    return summary


def _cancel_duplicate_jobs(pipeline: Pipeline, record: LedgerRecord, summary: TickSummary) -> int:
    """Cancel every job other than the record's own that carries its label: a create whose answer
    was lost, then a lookup that did not show it yet, made two. Each is recorded and announced."""
    parent = record.job_name.split("/tuningJobs/")[0] if record.job_name else ""
    try:
        jobs = pipeline.service.jobs_with_label(parent, KEY_LABEL, record.idempotency_key)
    except TuningServiceError as exc:
        summary.errors.append(f"{record.dataset_uri}: looking for a second job: {exc.message}")
        return 0
    cancelled = 0
    for job in jobs:
        if (
            job.name == record.job_name
            or job.name in record.duplicate_jobs
            or VERTEX_TO_LEDGER.get(job.state) in ENDED_STATES
        ):
            continue
        structured_log.error(
            "status: a second tuning job carries this dataset's label; cancelling it",
            dataset=record.dataset_uri,
            job=job.name,
            kept=record.job_name,
        )
        try:
            pipeline.service.cancel(job.name)
        except TuningServiceError as exc:
            summary.errors.append(f"{job.name}: cancelling a second job: {exc.message}")
            continue
        now = pipeline.clock()
        change = update_record(
            pipeline,
            record.idempotency_key,
            partial(record_duplicate_cancelled, job_name=job.name, now=now),
        )
        publish_announced(pipeline, change)
        cancelled += 1
    return cancelled


def _isolated(
    pipeline: Pipeline, summary: TickSummary, record: LedgerRecord, step: Callable[..., object]
) -> object:
    try:
        return step(pipeline, summary, record)
    except TuningServiceError:
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc)[:500]}"
        summary.errors.append(f"{record.dataset_uri}: {error}")
        if not isinstance(exc, UnwritableRecord):
            # An outage is not the record's fault: it is tried again next tick, untouched.
            structured_log.error(
                "status: a ledger record's step failed; the tick goes on",
                dataset=record.dataset_uri,
                idempotency_key=record.idempotency_key,
                state=record.state,
                error=error,
            )
            return None
        structured_log.error(
            "status: the ledger cannot write this record; quarantining it",
            dataset=record.dataset_uri,
            idempotency_key=record.idempotency_key,
            state=record.state,
            error=error,
        )
        try:
            now = pipeline.clock()
            change = update_record(
                pipeline,
                record.idempotency_key,
                lambda r, s: quarantine(r, s, error=error, now=now),
            )
            publish_announced(pipeline, change)
            summary.quarantined += 1 if change else 0
        except Exception as again:
            summary.errors.append(
                f"{record.dataset_uri}: quarantine failed too: {type(again).__name__}: {str(again)[:300]}"
            )
        return None


def _publish_leftovers(pipeline: Pipeline, summary: TickSummary, record: LedgerRecord) -> None:
    now = pipeline.clock()
    if lease_leftovers(record, Slots(), now=now) is None:
        return  # too fresh (its mover is publishing it right now) or leased by another tick
    change = pipeline.ledger.update(
        record.idempotency_key, lambda r, s: lease_leftovers(r, s, now=now)
    )
    publish_announced(pipeline, change)
    summary.published += len(change.announced) if change else 0


def _observe_job(pipeline: Pipeline, summary: TickSummary, record: LedgerRecord) -> None:
    if not record.job_name:
        return  # the tick only observes records that name their job
    try:
        job = pipeline.service.get(record.job_name)
    except TuningServiceError as exc:
        if exc.kind != ErrorKind.NOT_FOUND:
            summary.errors.append(f"{record.job_name}: {exc.message}")
            return
        job = JobSnapshot(
            name=record.job_name,
            state="JOB_STATE_FAILED",
            error=f"the tuning job no longer exists: {exc.message}",
        )
    now = pipeline.clock()
    if job.state not in VERTEX_TO_LEDGER and job.state != record.job_state:
        # Recorded as seen, no move: the service added a state this code does not know yet.
        structured_log.warning(
            "status: the tuning service reports a job state autotune does not know; recorded as is, still polling",
            job=job.name,
            job_state=job.state,
            ledger_state=record.state,
        )
    if (
        record.duplicate_watch_until is not None
        and parse_timestamp(record.duplicate_watch_until) > now
    ):
        summary.duplicates_cancelled += _cancel_duplicate_jobs(pipeline, record, summary)
    if record_job_snapshot(record, Slots(), job=job, now=now) is None:
        return  # nothing new: no transaction, no contention on the slots document
    change = update_record(
        pipeline, record.idempotency_key, lambda r, s: record_job_snapshot(r, s, job=job, now=now)
    )
    if change is not None and change.record is not None and change.record.state != record.state:
        summary.changed += 1
        structured_log.info(
            f"status: {record.state} -> {change.record.state}",
            dataset=record.dataset_uri,
            job=job.name,
            error=change.record.error,
        )
    publish_announced(pipeline, change)


def _take_over_expired(pipeline: Pipeline, summary: TickSummary, record: LedgerRecord) -> None:
    if not claim_expired(record, pipeline.clock()):
        return
    change = update_record(
        pipeline,
        record.idempotency_key,
        # the claim counts from the clock read in the transaction (see submit_request)
        lambda r, s: take_over(r, s, now=pipeline.clock(), claim_seconds=pipeline.claim_seconds),
    )
    if change is None:
        return
    publish_announced(pipeline, change)
    if change.outcome == JobOutcome.SUBMIT and change.record is not None:
        summary.taken_over += 1
        _submit_claimed(pipeline, change.record, summary)


def _fill_free_slots(pipeline: Pipeline, summary: TickSummary) -> None:
    tried: set[str] = set()
    while True:
        slots = pipeline.ledger.slots()
        head = slots.head()
        if head is None or head in tried or not slots.free(pipeline.max_jobs):
            return
        tried.add(head)
        record = pipeline.ledger.get(head)
        if record is None:
            continue  # a stale entry: released below
        if _isolated(pipeline, summary, record, _promote) == JobOutcome.QUEUED:
            return  # the service's own quota is full: try again next tick


def _promote(pipeline: Pipeline, summary: TickSummary, record: LedgerRecord) -> JobOutcome | None:
    change = update_record(
        pipeline,
        record.idempotency_key,
        lambda r, s: promote(
            r,
            s,
            now=pipeline.clock(),  # in the transaction, as for every claim (see submit_request)
            max_jobs=pipeline.max_jobs,
            claim_seconds=pipeline.claim_seconds,
        ),
    )
    if change is None or change.outcome != JobOutcome.SUBMIT or change.record is None:
        return None  # another tick promoted it, it waits out a 429, or the entry is stale (released below)
    summary.promoted += 1
    structured_log.info(
        "status: promoting the oldest queued dataset", dataset=change.record.dataset_uri
    )
    return _submit_claimed(pipeline, change.record, summary)


def _submit_claimed(pipeline: Pipeline, record: LedgerRecord, summary: TickSummary) -> JobOutcome:
    try:
        request = msgspec.convert(record.request, TuningRequest)
        spec = build_job_spec(
            request,
            project=pipeline.project,
            catalog=pipeline.catalog,
            service_account=pipeline.service_account,
            dataset_bucket=pipeline.dataset_bucket,
        )
    except (msgspec.ValidationError, JobSpecError) as exc:
        now, error = pipeline.clock(), str(exc)
        change = update_record(
            pipeline,
            record.idempotency_key,
            lambda r, s: record_failure(r, s, error=error, now=now),
        )
        publish_announced(pipeline, change)
        return JobOutcome.FAILED
    moved = pinned_copy_problem(pipeline, request)
    if (
        moved is not None
    ):  # written over while the dataset waited: never tune bytes nobody validated
        now = pipeline.clock()
        change = update_record(
            pipeline,
            record.idempotency_key,
            lambda r, s: record_failure(r, s, error=moved, now=now),
        )
        publish_announced(pipeline, change)
        return JobOutcome.FAILED
    try:
        return adopt_or_create_job(pipeline, record, spec)
    except TuningServiceError as exc:
        summary.errors.append(f"{record.dataset_uri}: {exc.message}")
        return JobOutcome.RELEASED


def _release_stale_slots(pipeline: Pipeline) -> None:
    slots = pipeline.ledger.slots()
    for key in [*slots.active, *slots.queued]:
        if release_stale_slot(pipeline.ledger.get(key), key, slots) is not None:
            # Only the slots change (no record, so no event to announce).
            pipeline.ledger.update_or_absent(key, _stale_slot_release(key))


def _stale_slot_release(key: str) -> Callable[[LedgerRecord | None, Slots], Change | None]:
    return lambda record, slots: release_stale_slot(record, key, slots)
