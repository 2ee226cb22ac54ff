"""The pure decisions of the job pipeline.

Each is a function of the ledger documents it reads (the record, the slots) and returns the
documents to write and what happened (a Change); the ledger adapter runs it inside a
transaction that read those documents, so two deliveries of one request, or two overlapping
status ticks, can never both win the same move."""

from __future__ import annotations

from datetime import datetime

import msgspec

from autotune.events import EventPayload, EventType, make_event
from autotune.jobs.documents import Change, ClaimView, JobOutcome, Slots
from autotune.jobs.job_spec import queue_order
from autotune.jobs.lifecycle import (
    ACTIVE_JOB_STATES,
    ENDED_STATES,
    RETRY_ALLOWED_AFTER,
    JobSnapshot,
    LedgerRecord,
    LedgerState,
    apply_job_snapshot,
    claim_expired,
    claim_expiry,
    move,
    new_record,
    parse_timestamp,
    timestamp,
)
from autotune.jobs.request import TuningRequest

CLAIM_SECONDS = 300.0  # a submitter that has not recorded its job by then is presumed dead
# Submit attempts without an answer (crash, 5xx, timeout) before the record fails. The first
# retries are immediate (Pub/Sub's own backoff spaces them); later ones wait longer and longer
# (30 s doubling, at most 15 min) so an outage of the service of about half an hour is ridden out.
MAX_FAILED_ATTEMPTS = 10
IMMEDIATE_RETRIES = 4
# After a 429 the head of the queue waits 5 s, then 10, 20, ... at most 10 min, between tries
# (the quota is used outside autotune, for who knows how long).
QUOTA_PAUSE_SECONDS = 5.0
QUOTA_PAUSE_MAX_SECONDS = 600.0
# A create that timed out or answered 5xx may still be making its job on the service: nobody
# looks for the job (and creates one when none shows) before this long after the unanswered call.
CREATE_SETTLE_SECONDS = 300.0
# After a submission that followed an unanswered attempt, how long the status tick keeps asking
# the service for a second job with the dataset's label (a new job can be missing from a list).
DUPLICATE_WATCH_SECONDS = 900.0


def decide_claim(
    view: ClaimView,
    request: TuningRequest,
    *,
    now: datetime,
    max_jobs: int,
    claim_seconds: float = CLAIM_SECONDS,
    spec_error: str | None = None,
) -> Change:
    record = view.record
    if record is not None:
        if claim_expired(record, now):
            return take_over(record, view.slots, now=now, claim_seconds=claim_seconds)
        return Change(JobOutcome.DUPLICATE)
    key = request.idempotency_key
    fresh = new_record(
        idempotency_key=key,
        content_key=request.content_key,
        dataset_uri=request.training.uri,
        generation=request.training.generation,
        now=now,
        report_uri=request.report_uri,
        request=msgspec.to_builtins(request),
        model=request.settings.model,
        region=request.settings.region,
        queue_order=queue_order(request),
        forced=request.force,
    )
    owner = view.content_owner
    # The content's earlier tuning, when this is another dataset version with the same content.
    repeats = owner if owner is not None and owner.idempotency_key != key else None
    if repeats is not None and repeats.state not in RETRY_ALLOWED_AFTER and not request.force:
        reason = (
            f"same bytes and settings as {repeats.dataset_uri} generation {repeats.generation} "
            f"(ledger {repeats.idempotency_key}, {repeats.state}"
            + (f", job {repeats.job_name}" if repeats.job_name else "")
            + "): not tuned again; upload with metadata autotune-force: true to tune anyway"
        )
        skipped = move(
            fresh,
            LedgerState.SKIPPED,
            now,
            reason=reason,
            duplicate_of=repeats.idempotency_key,
            job_name=repeats.job_name,
        )
        return Change(JobOutcome.SKIPPED, record=skipped)
    if spec_error is not None:
        failed = move(
            fresh, LedgerState.FAILED, now, reason="cannot be submitted", error=spec_error
        )
        return Change(
            JobOutcome.FAILED, record=failed, content_owner_key=key if owner is None else None
        )
    retune: str | None = None  # why this content is tuned again, told in the queued/submitted event
    if repeats is not None and request.force:
        retune = f"autotune-force: true: tuned again although {repeats.dataset_uri} generation {repeats.generation} has the same bytes and settings"
    elif repeats is not None:
        retune = f"tuned again: the earlier tuning of the same content ({repeats.dataset_uri} generation {repeats.generation}) ended {repeats.state}"
    fresh = msgspec.structs.replace(fresh, retune_reason=retune)
    if view.slots.free(max_jobs) and not view.slots.queued:
        claimed = move(
            fresh,
            LedgerState.SUBMITTING,
            now,
            reason=retune,
            attempts=1,
            claim_expires_at=claim_expiry(now, claim_seconds),
        )
        return Change(
            JobOutcome.SUBMIT,
            record=claimed,
            slots=view.slots.holding(key, timestamp(now)),
            content_owner_key=key,
        )
    why = (
        f"{len(view.slots.active)} of {max_jobs} job slots in use, {len(view.slots.queued)} waiting"
    )
    queued = move(fresh, LedgerState.QUEUED, now, reason=f"{retune}; {why}" if retune else why)
    return Change(
        JobOutcome.QUEUED,
        record=queued,
        slots=view.slots.waiting(key, fresh.queue_order),
        content_owner_key=key,
    )


def take_over(
    record: LedgerRecord, slots: Slots, *, now: datetime, claim_seconds: float = CLAIM_SECONDS
) -> Change:
    """A SUBMITTING record whose claim expired: its last attempt died without an answer."""
    if not claim_expired(record, now):
        return Change(JobOutcome.DUPLICATE)
    failed_attempts = record.failed_attempts + 1
    # Attempts exhausted: the record still holds its slot, and gives up only once the service
    # answers a lookup with no job carrying its label (adopt_or_create_job); a job found is adopted.
    last_look = failed_attempts >= MAX_FAILED_ATTEMPTS
    claimed = move(
        record,
        LedgerState.SUBMITTING,
        now,
        reason=f"took over an expired claim (attempt {record.attempts + 1})"
        + ("; last look before giving up" if last_look else ""),
        attempts=record.attempts + 1,
        failed_attempts=failed_attempts,
        claim_expires_at=claim_expiry(now, claim_seconds),
    )
    return Change(
        JobOutcome.SUBMIT,
        record=claimed,
        slots=slots.holding(record.idempotency_key, timestamp(now)),
    )


def holds_claim(record: LedgerRecord, attempt: int) -> bool:
    """Whether the claim taken as `attempt` is still its taker's: the record is SUBMITTING and
    nobody has taken it over since (every claim, take-over and promotion counts one attempt)."""
    return record.state == LedgerState.SUBMITTING and record.attempts == attempt


def confirm_claim(
    record: LedgerRecord,
    slots: Slots,
    *,
    attempt: int,
    now: datetime,
    claim_seconds: float = CLAIM_SECONDS,
) -> Change | None:
    """Right before a create: the claim is still held (else None: the caller must not create,
    someone else holds the dataset now), and renewed, so the create has a whole claim's time
    before anyone may take over and look for its job. Without this fence a holder slowed down
    past its claim (a lookup retried, a loaded machine) would create after a take-over had
    looked, found nothing and created: two jobs."""
    if not holds_claim(record, attempt) or record.job_name is not None:
        return None
    renewed = msgspec.structs.replace(
        record, claim_expires_at=claim_expiry(now, claim_seconds), updated_at=timestamp(now)
    )
    return Change(JobOutcome.SUBMIT, record=renewed)


def promote(
    record: LedgerRecord,
    slots: Slots,
    *,
    now: datetime,
    max_jobs: int,
    claim_seconds: float = CLAIM_SECONDS,
) -> Change | None:
    """The oldest QUEUED record takes a free slot."""
    key = record.idempotency_key
    if (
        record.state != LedgerState.QUEUED
        or not slots.free(max_jobs)
        or slots.head() != key
        or waiting_for_quota(record, now)
    ):
        return None
    claimed = move(
        record,
        LedgerState.SUBMITTING,
        now,
        reason="a job slot is free",
        attempts=record.attempts + 1,
        claim_expires_at=claim_expiry(now, claim_seconds),
    )
    return Change(JobOutcome.SUBMIT, record=claimed, slots=slots.holding(key, timestamp(now)))


def waiting_for_quota(record: LedgerRecord, now: datetime) -> bool:
    return record.not_before is not None and parse_timestamp(record.not_before) > now


def record_submitted(
    record: LedgerRecord,
    slots: Slots,
    *,
    job: JobSnapshot,
    adopted: bool,
    now: datetime,
    watch_seconds: float = DUPLICATE_WATCH_SECONDS,
) -> Change | None:
    if record.state == LedgerState.SUBMITTING:
        reason = "adopted the job found by its label" if adopted else "job created"
        if record.retune_reason:
            reason = f"{reason}; {record.retune_reason}"
        # An earlier attempt went unanswered: it may have made a job the lookup did not show yet.
        unsure = record.failed_attempts > 0 or record.create_unanswered
        watch = claim_expiry(now, watch_seconds) if unsure else None
        done = move(
            record,
            LedgerState.SUBMITTED,
            now,
            reason=reason,
            job_name=job.name,
            job_state=job.state,
            duplicate_watch_until=watch,
        )
        return Change(JobOutcome.SUBMITTED, record=done)
    if record.job_name == job.name:
        return None  # already recorded by another attempt
    return Change(JobOutcome.CONFLICT)


def record_quota_wait(
    record: LedgerRecord, slots: Slots, *, message: str, now: datetime
) -> Change | None:
    """Back in the queue (at its old place) after a 429, tried again after a growing pause; the
    `queued` event is published for the first 429 only, not for every retry of a long wait."""
    if record.state != LedgerState.SUBMITTING:
        return None
    waits = record.quota_waits + 1
    pause = min(QUOTA_PAUSE_MAX_SECONDS, QUOTA_PAUSE_SECONDS * 2 ** (waits - 1))
    queued = move(
        record,
        LedgerState.QUEUED,
        now,
        reason=f"the tuning service's quota is full (429): {message}",
        announce=waits == 1,
        quota_waits=waits,
        # A 429 is an answer: the service is up, so earlier failures without one no longer add
        # up towards giving the dataset up (MAX_FAILED_ATTEMPTS counts an outage, not a lifetime).
        failed_attempts=0,
        not_before=claim_expiry(now, pause),
    )
    return Change(
        JobOutcome.QUEUED,
        record=queued,
        slots=slots.waiting(record.idempotency_key, record.queue_order),
    )


def record_failure(
    record: LedgerRecord,
    slots: Slots,
    *,
    error: str,
    now: datetime,
    reason: str = "the tuning service refused the job",
) -> Change | None:
    if record.state not in {LedgerState.SUBMITTING, LedgerState.QUEUED, LedgerState.ACCEPTED}:
        return None
    failed = move(record, LedgerState.FAILED, now, reason=reason, error=error)
    return Change(JobOutcome.FAILED, record=failed, slots=slots.without(record.idempotency_key))


def release_claim(
    record: LedgerRecord, slots: Slots, *, error: str, now: datetime, min_pause: float = 0.0
) -> Change | None:
    """A transient failure: keep the slot; the next delivery or tick takes over (after a pause
    once the immediate retries are used up, and never before `min_pause`: a create without an
    answer may still be making its job)."""
    if record.state != LedgerState.SUBMITTING:
        return None
    pause = (
        0.0
        if record.failed_attempts < IMMEDIATE_RETRIES
        else min(900.0, 30.0 * 2 ** (record.failed_attempts - IMMEDIATE_RETRIES))
    )
    released = msgspec.structs.replace(
        record,
        claim_expires_at=claim_expiry(now, max(pause, min_pause)),
        error=error,
        updated_at=timestamp(now),
        create_unanswered=record.create_unanswered or min_pause > 0,
    )
    return Change(JobOutcome.RELEASED, record=released)


def record_job_snapshot(
    record: LedgerRecord, slots: Slots, *, job: JobSnapshot, now: datetime
) -> Change | None:
    if record.state not in ACTIVE_JOB_STATES or record.job_name != job.name:
        return None
    seen = apply_job_snapshot(record, job, now)
    if seen is None:
        return None
    if seen.holds_slot:
        return Change(JobOutcome.CHANGED, record=seen)
    return Change(JobOutcome.CHANGED, record=seen, slots=slots.without(record.idempotency_key))


def cancel_queued(record: LedgerRecord, slots: Slots, *, now: datetime) -> Change | None:
    if record.state != LedgerState.QUEUED:
        return None
    cancelled = move(
        record,
        LedgerState.CANCELLED,
        now,
        reason="cancelled while queued",
        error="cancelled by the user before it was submitted",
    )
    return Change(
        JobOutcome.CANCELLED, record=cancelled, slots=slots.without(record.idempotency_key)
    )


def release_stale_slot(record: LedgerRecord | None, key: str, slots: Slots) -> Change | None:
    """A slot or queue entry whose record no longer holds it (a missing or ended record)."""
    holds = record is not None and (
        record.holds_slot if key in slots.active else record.state == LedgerState.QUEUED
    )
    if holds or (key not in slots.active and key not in slots.queued):
        return None
    return Change(JobOutcome.CHANGED, slots=slots.without(key))


QUARANTINE_HISTORY = 20  # transitions a quarantined record keeps (the latest)


def quarantine(record: LedgerRecord, slots: Slots, *, error: str, now: datetime) -> Change | None:
    """A record the ledger could not write (too large, say): FAILED, announced, and slimmed to
    what can be written (no request, no tuning data stats, its latest history), so the next tick
    never meets it again and the others move on."""
    if record.state in ENDED_STATES:
        return None
    slim = msgspec.structs.replace(
        record,
        request=None,
        tuning_data_stats=None,
        outbox=(),
        outbox_lease_until=None,
        history=record.history[-QUARANTINE_HISTORY:],
        error=None,
        reason=None,
        retune_reason=None,
    )
    why = f"quarantined: the ledger could not write this record ({error[:500]})"
    failed = move(slim, LedgerState.FAILED, now, reason=why, error=why)
    return Change(JobOutcome.FAILED, record=failed, slots=slots.without(record.idempotency_key))


def record_duplicate_cancelled(
    record: LedgerRecord, slots: Slots, *, job_name: str, now: datetime
) -> Change | None:
    if job_name in record.duplicate_jobs:
        return None
    event = make_event(
        EventType.JOB_DUPLICATE_CANCELLED,
        EventPayload(
            dataset_uri=record.dataset_uri,
            generation=record.generation,
            idempotency_key=record.idempotency_key,
            model=record.model,
            job_name=job_name,
            state=record.state.value,
            reason=f"a second tuning job carried this dataset's label and was cancelled; the dataset keeps {record.job_name}",
        ),
        now=now,
    )
    updated = msgspec.structs.replace(
        record,
        duplicate_jobs=(*record.duplicate_jobs, job_name),
        updated_at=timestamp(now),
        outbox=(*record.outbox, event),
    )
    return Change(JobOutcome.CHANGED, record=updated)
