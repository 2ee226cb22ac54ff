"""The life of one dataset version in the ledger: its states, the moves allowed between them,
and the job event each move announces. Pure: plain values in, plain values out.

    ACCEPTED ──► SUBMITTING ──► SUBMITTED ──► RUNNING ──► SUCCEEDED
       │  ▲          │  ▲            │            │──────► FAILED
       │  └─ QUEUED ◄┘  └ (take-over)└────────────┴──────► CANCELLED
       └──► SKIPPED (same bytes and settings already tuned)

A record holds one of the project's job slots while SUBMITTING, SUBMITTED or RUNNING, and waits
in the FIFO queue while QUEUED. Every move is written in a ledger transaction together with the
events it announces (the record's outbox), so a move happens once and its events are published
at least once with a stable ce-id: subscribers drop copies by id.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from autotune.events import EventPayload, EventType, TuningEvent, make_event


class LedgerState(enum.StrEnum):
    ACCEPTED = "ACCEPTED"
    QUEUED = "QUEUED"
    SUBMITTING = "SUBMITTING"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


# The one list of allowed moves. SUBMITTING -> SUBMITTING is a take-over of an expired claim.
TRANSITIONS: dict[LedgerState, frozenset[LedgerState]] = {
    LedgerState.ACCEPTED: frozenset(
        {LedgerState.SUBMITTING, LedgerState.QUEUED, LedgerState.SKIPPED, LedgerState.FAILED}
    ),
    LedgerState.QUEUED: frozenset(
        {LedgerState.SUBMITTING, LedgerState.CANCELLED, LedgerState.FAILED}
    ),
    LedgerState.SUBMITTING: frozenset(
        {LedgerState.SUBMITTING, LedgerState.SUBMITTED, LedgerState.QUEUED, LedgerState.FAILED}
    ),
    LedgerState.SUBMITTED: frozenset(
        {LedgerState.RUNNING, LedgerState.SUCCEEDED, LedgerState.FAILED, LedgerState.CANCELLED}
    ),
    LedgerState.RUNNING: frozenset(
        {LedgerState.SUCCEEDED, LedgerState.FAILED, LedgerState.CANCELLED}
    ),
    LedgerState.SUCCEEDED: frozenset(),
    LedgerState.FAILED: frozenset(),
    LedgerState.CANCELLED: frozenset(),
    LedgerState.SKIPPED: frozenset(),
}
SLOT_STATES = frozenset(
    {LedgerState.SUBMITTING, LedgerState.SUBMITTED, LedgerState.RUNNING}
)  # count against max_concurrent_jobs
ACTIVE_JOB_STATES = frozenset(
    {LedgerState.SUBMITTED, LedgerState.RUNNING}
)  # a Vertex job exists and has not ended
ENDED_STATES = frozenset(state for state, targets in TRANSITIONS.items() if not targets)
# A re-upload of content whose first tuning ended like this is tuned again (the user retries).
RETRY_ALLOWED_AFTER = frozenset({LedgerState.FAILED, LedgerState.CANCELLED})

# The job event each arrival announces (None: an internal step, nothing to tell).
EVENT_ON_ENTRY: dict[LedgerState, EventType | None] = {
    LedgerState.ACCEPTED: None,
    LedgerState.QUEUED: EventType.JOB_QUEUED,
    LedgerState.SUBMITTING: None,
    LedgerState.SUBMITTED: EventType.JOB_SUBMITTED,
    LedgerState.RUNNING: EventType.JOB_RUNNING,
    LedgerState.SUCCEEDED: EventType.JOB_SUCCEEDED,
    LedgerState.FAILED: EventType.JOB_FAILED,
    LedgerState.CANCELLED: EventType.JOB_CANCELLED,
    LedgerState.SKIPPED: EventType.JOB_SKIPPED,
}

# Vertex AI JobState name -> the ledger state it means for a submitted job.
# QUEUED/PENDING: the service has the job but it has not started (ledger SUBMITTED).
# CANCELLING and PAUSED still hold the service's quota: no move until they settle.
# EXPIRED is an end the user must hear about: FAILED with that reason.
VERTEX_TO_LEDGER: dict[str, LedgerState | None] = {
    "JOB_STATE_UNSPECIFIED": None,
    "JOB_STATE_QUEUED": LedgerState.SUBMITTED,
    "JOB_STATE_PENDING": LedgerState.SUBMITTED,
    "JOB_STATE_RUNNING": LedgerState.RUNNING,
    "JOB_STATE_SUCCEEDED": LedgerState.SUCCEEDED,
    "JOB_STATE_FAILED": LedgerState.FAILED,
    "JOB_STATE_CANCELLING": None,
    "JOB_STATE_CANCELLED": LedgerState.CANCELLED,
    "JOB_STATE_PAUSED": None,
    "JOB_STATE_EXPIRED": LedgerState.FAILED,
    "JOB_STATE_UPDATING": None,
    "JOB_STATE_PARTIALLY_SUCCEEDED": LedgerState.SUCCEEDED,
}


# supervisedTuningDataStats as the ledger keeps it: counts and token totals only. The service's
# stats also hold userDatasetExamples (training text) and per-bucket tables that can grow past
# Firestore's 1 MiB document limit; neither belongs in a ledger record.
STATS_COUNTS = (
    "tuningDatasetExampleCount",
    "totalTuningCharacterCount",
    "totalBillableCharacterCount",
    "totalBillableTokenCount",
    "tuningStepCount",
    "totalTruncatedExampleCount",
)
STATS_DISTRIBUTIONS = (
    "userInputTokenDistribution",
    "userOutputTokenDistribution",
    "userMessagePerExampleDistribution",
)
DISTRIBUTION_FIELDS = ("sum", "billableSum", "min", "max", "mean", "median", "p5", "p95")
# Lists the summary keeps only the length of (a dropped example's reason may quote it).
STATS_LIST_COUNTS = {
    "truncatedExampleIndices": "truncatedExampleIndexCount",
    "droppedExampleReasons": "droppedExampleCount",
}
_NUMBER_TEXT_LIMIT = 32


def stats_summary(stats: Any) -> dict[str, Any]:
    """A bounded summary of supervisedTuningDataStats (REST JSON shape): the counts, token
    totals and distribution figures, the number of truncated and dropped examples; never example
    text, never a list. Applying it to its own output changes nothing."""
    if not isinstance(stats, dict):
        return {}
    summary: dict[str, Any] = {}
    for key in STATS_COUNTS:
        if _is_number(stats.get(key)):
            summary[key] = stats[key]
    for key in STATS_DISTRIBUTIONS:
        distribution = stats.get(key)
        if isinstance(distribution, dict):
            figures = {
                name: distribution[name]
                for name in DISTRIBUTION_FIELDS
                if _is_number(distribution.get(name))
            }
            if figures:
                summary[key] = figures
    for key, count_key in STATS_LIST_COUNTS.items():
        if isinstance(stats.get(key), list) and stats[key]:
            summary[count_key] = len(stats[key])
        elif _is_number(stats.get(count_key)):
            summary[count_key] = stats[count_key]
    return summary


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str) and len(value) <= _NUMBER_TEXT_LIMIT:
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


class IllegalTransition(ValueError):
    """A move the table above does not allow; the message names both states and the record."""


class Transition(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    state: LedgerState
    at: str  # RFC 3339
    reason: str | None = None


class LedgerRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One dataset version in the ledger (document id: the request's idempotency key)."""

    idempotency_key: str
    content_key: str
    dataset_uri: str
    generation: str
    state: LedgerState
    history: tuple[Transition, ...] = ()  # every move, with its time
    created_at: str
    updated_at: str
    report_uri: str | None = None
    request: dict[str, Any] | None = None  # the TuningRequest as received
    model: str | None = None
    region: str | None = None
    queue_order: str = ""  # FIFO position while QUEUED: upload order, kept across re-queues
    attempts: int = 0  # times the record entered SUBMITTING
    failed_attempts: int = 0  # submit attempts that ended without an answer (crash, 5xx)
    claim_expires_at: str | None = (
        None  # while SUBMITTING: after this another submitter may take over
    )
    quota_waits: int = 0  # times the tuning service answered 429 to this dataset's create
    not_before: str | None = None  # while QUEUED after a 429: not tried again before this
    job_name: str | None = None
    job_state: str | None = None  # the Vertex JobState last seen
    tuned_model: str | None = None
    endpoint: str | None = None
    tuning_data_stats: dict[str, Any] | None = None
    error: str | None = None
    reason: str | None = None  # why the last move happened
    duplicate_of: str | None = None  # SKIPPED: the idempotency key of the tuning it repeats
    forced: bool = False
    retune_reason: str | None = (
        None  # why content seen before is tuned again (forced, or it failed)
    )
    # Events written with the move, not yet published; stored as the event's JSON object, as
    # published (what msgspec encodes a TuningEvent to), so every stored record loads as it was.
    outbox: tuple[TuningEvent, ...] = ()
    # While a status tick publishes what a crashed mover left in the outbox: no other tick does.
    outbox_lease_until: str | None = None
    # After a submission that followed an attempt without an answer, the service is asked until
    # then for a second job with the dataset's label (one the list did not show yet): cancelled.
    duplicate_watch_until: str | None = None
    create_unanswered: bool = False  # a create of this record timed out or answered 5xx
    duplicate_jobs: tuple[str, ...] = ()  # the second jobs found and cancelled

    @property
    def holds_slot(self) -> bool:
        return self.state in SLOT_STATES


def timestamp(now: datetime) -> str:
    """Fixed-width UTC RFC 3339, so text order is time order."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def claim_expiry(now: datetime, claim_seconds: float) -> str:
    return timestamp(now + timedelta(seconds=claim_seconds))


def claim_expired(record: LedgerRecord, now: datetime) -> bool:
    return record.state == LedgerState.SUBMITTING and (
        record.claim_expires_at is None or parse_timestamp(record.claim_expires_at) <= now
    )


def check_transition(record: LedgerRecord, target: LedgerState) -> None:
    if target not in TRANSITIONS[record.state]:
        raise IllegalTransition(
            f"ledger record {record.idempotency_key} ({record.dataset_uri}): {record.state} -> {target} is not allowed"
        )


def move(
    record: LedgerRecord,
    target: LedgerState,
    now: datetime,
    *,
    reason: str | None = None,
    announce: bool = True,
    **changes: Any,
) -> LedgerRecord:
    """`record` in `target`, its history extended and the arrival's event put in its outbox
    (unless `announce` is False: the same news was told already)."""
    check_transition(record, target)
    stamp = timestamp(now)
    history = (*record.history, Transition(state=target, at=stamp, reason=reason))
    if target != LedgerState.SUBMITTING:
        changes.setdefault("claim_expires_at", None)
    moved = msgspec.structs.replace(
        record, state=target, history=history, updated_at=stamp, reason=reason, **changes
    )
    event = event_for(moved, target, now) if announce else None
    if event is None:
        return moved
    return msgspec.structs.replace(moved, outbox=(*moved.outbox, event))


def event_for(record: LedgerRecord, state: LedgerState, now: datetime) -> TuningEvent | None:
    event_type = EVENT_ON_ENTRY[state]
    if event_type is None:
        return None
    payload = EventPayload(
        dataset_uri=record.dataset_uri,
        generation=record.generation,
        idempotency_key=record.idempotency_key,
        report_uri=record.report_uri,
        model=record.model,
        job_name=record.job_name,
        state=state.value,
        tuned_model=record.tuned_model if state == LedgerState.SUCCEEDED else None,
        endpoint=record.endpoint if state == LedgerState.SUCCEEDED else None,
        error=record.error if state in {LedgerState.FAILED, LedgerState.CANCELLED} else None,
        reason=record.reason,
    )
    # The position in the history tells apart two arrivals in one state (queued, then queued
    # again after a 429) and is the same when the event is rebuilt: a stable ce-id.
    return make_event(event_type, payload, discriminator=str(len(record.history)), now=now)


def new_record(
    *,
    idempotency_key: str,
    content_key: str,
    dataset_uri: str,
    generation: str,
    now: datetime,
    report_uri: str | None = None,
    request: dict[str, Any] | None = None,
    model: str | None = None,
    region: str | None = None,
    queue_order: str = "",
    forced: bool = False,
) -> LedgerRecord:
    stamp = timestamp(now)
    return LedgerRecord(
        idempotency_key=idempotency_key,
        content_key=content_key,
        dataset_uri=dataset_uri,
        generation=generation,
        state=LedgerState.ACCEPTED,
        history=(Transition(state=LedgerState.ACCEPTED, at=stamp),),
        created_at=stamp,
        updated_at=stamp,
        report_uri=report_uri,
        request=request,
        model=model,
        region=region,
        queue_order=queue_order or stamp,
        forced=forced,
    )


def apply_job_snapshot(
    record: LedgerRecord, job: JobSnapshot, now: datetime
) -> LedgerRecord | None:
    """The record after seeing its Vertex job in `job`, or None when nothing changed."""
    target = VERTEX_TO_LEDGER.get(job.state)
    changes: dict[str, Any] = {"job_state": job.state}
    stats = stats_summary(job.stats)
    if stats:
        changes["tuning_data_stats"] = stats
    if target is None or target == record.state or target not in TRANSITIONS[record.state]:
        if job.state != record.job_state or (stats and stats != record.tuning_data_stats):
            return msgspec.structs.replace(record, updated_at=timestamp(now), **changes)
        return None
    moved = record
    if (
        record.state == LedgerState.SUBMITTED
        and target in {LedgerState.SUCCEEDED, LedgerState.FAILED, LedgerState.CANCELLED}
        and job.started
    ):
        # The job ran between two polls: announce that too, so every subscriber sees it run.
        moved = move(moved, LedgerState.RUNNING, now, reason="job started", **changes)
    if target == LedgerState.SUCCEEDED:
        return move(
            moved,
            target,
            now,
            reason="job succeeded",
            tuned_model=job.tuned_model,
            endpoint=job.endpoint,
            **changes,
        )
    if target == LedgerState.FAILED:
        error = job.error or (
            "job expired"
            if job.state == "JOB_STATE_EXPIRED"
            else "job failed without an error message"
        )
        return move(moved, target, now, reason="job failed", error=error, **changes)
    if target == LedgerState.CANCELLED:
        return move(moved, target, now, reason="job cancelled", error=job.error or None, **changes)
    return move(moved, target, now, reason="job started", **changes)


class JobSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """What the tuning service says about one job, as plain values."""

    name: str
    state: str  # Vertex JobState name, e.g. JOB_STATE_RUNNING; a number the client library does not know, as digits
    labels: dict[str, str] = {}
    started: bool = False
    error: str = ""
    tuned_model: str = ""
    endpoint: str = ""
    stats: dict[str, Any] = {}  # supervisedTuningDataStats, summarised (stats_summary)
    create_time: str = ""
    end_time: str = ""
