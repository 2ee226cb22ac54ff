"""Exactly one tuning job per dataset version, at most `max_concurrent_jobs` at a time.

The decisions are pure functions of the ledger documents they read (`decide_*`, `promote`,
`observe`, ...): each returns the documents to write and what happened. The ledger adapter runs
each one inside a transaction that read those documents, so two deliveries of one request, or
two overlapping status ticks, can never both win the same move. The orchestration below
(`submit`, `status_tick`) sees the ledger, the tuning service and the event bus only through
the small protocols here; the Google clients live in adapters/.

Exactly once, step by step:
1. claim: the record (document id = idempotency key) is created ACCEPTED and moved, in the same
   transaction as the project's one `slots` document, to SUBMITTING (a slot and a claim that
   expires) or QUEUED (no free slot, or others already waiting: FIFO). An existing record
   makes the delivery a no-op, unless it is SUBMITTING with an expired claim (its submitter
   died): then this delivery takes it over.
2. adopt or create: the Vertex job carries the key in a label; before creating, the jobs with
   that label are listed and an existing one is adopted (a crash between create and step 3).
3. record: SUBMITTING -> SUBMITTED with the job name, in a transaction.
Every move writes its event into the record's outbox in the same transaction. The caller that
made the move publishes the events its own move added (never those of an earlier move still in
the outbox: their own mover is publishing them) and removes them from the outbox. What a crash
left behind is published by a status tick once it is OUTBOX_GRACE_SECONDS old, under a lease
taken in a transaction, so two overlapping ticks do not both publish it. Only a crash between
publishing and removing gives a second copy, with the same ce-id: subscribers drop it.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec

from autotune import structured_log
from autotune.dataset_intake import NAME_LIMIT_BYTES, text_problem
from autotune.events import EventPayload, EventType, TuningEvent, make_event
from autotune.job_lifecycle import (
    ACTIVE_JOB_STATES,
    ENDED_STATES,
    RETRY_ALLOWED_AFTER,
    VERTEX_TO_LEDGER,
    JobSnapshot,
    LedgerRecord,
    LedgerState,
    claim_expired,
    claim_expiry,
    event_from_dict,
    event_to_dict,
    move,
    new_record,
    observed,
    parse_timestamp,
    timestamp,
)
from autotune.tuning_request import TuningRequest, decode_request

# Vertex job label carrying the idempotency key (40 lowercase hex). An underscore, not a dash: the
# key also appears in list filters (labels.KEY="VALUE"), where a dash could read as an operator.
KEY_LABEL = "autotune_key"
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
OUTBOX_GRACE_SECONDS = 30.0  # events still unpublished after this were left by a crash
# A create that timed out or answered 5xx may still be making its job on the service: nobody
# looks for the job (and creates one when none shows) before this long after the unanswered call.
CREATE_SETTLE_SECONDS = 300.0
# After a submission that followed an unanswered attempt, how long the status tick keeps asking
# the service for a second job with the dataset's label (a new job can be missing from a list).
DUPLICATE_WATCH_SECONDS = 900.0


# --- the documents a decision reads and writes -------------------------------------------------


class Slots(msgspec.Struct, frozen=True, kw_only=True):
    """The project's one `slots` document: who holds a job slot, who waits (key -> order)."""

    active: dict[str, str] = {}  # idempotency key -> since
    queued: dict[str, str] = {}  # idempotency key -> queue order (upload order)

    def free(self, max_jobs: int) -> bool:
        return len(self.active) < max_jobs

    def head(self) -> str | None:
        if not self.queued:
            return None
        return min(self.queued.items(), key=lambda item: (item[1], item[0]))[0]

    def holding(self, key: str, since: str) -> Slots:
        return Slots(active={**self.active, key: since}, queued={k: v for k, v in self.queued.items() if k != key})

    def waiting(self, key: str, order: str) -> Slots:
        return Slots(active={k: v for k, v in self.active.items() if k != key}, queued={**self.queued, key: order})

    def without(self, key: str) -> Slots:
        return Slots(
            active={k: v for k, v in self.active.items() if k != key}, queued={k: v for k, v in self.queued.items() if k != key}
        )


class Outcome(enum.StrEnum):
    DUPLICATE = "duplicate"  # this delivery has nothing to do
    SKIPPED = "skipped"  # same content already tuned
    QUEUED = "queued"
    SUBMIT = "submit"  # this caller holds the claim: adopt or create the job now
    SUBMITTED = "submitted"
    FAILED = "failed"
    RELEASED = "released"  # transient failure: claim given up for a retry
    CONFLICT = "conflict"  # the record already names another job
    CHANGED = "changed"
    CANCELLED = "cancelled"
    REFUSED = "refused"  # not a request autotune validated (or out of limits): no record, an event


@dataclass(frozen=True)
class ClaimView:
    """What the claim transaction reads: the record, the content index entry, its owner, the slots."""

    record: LedgerRecord | None
    content_owner: LedgerRecord | None
    slots: Slots


@dataclass(frozen=True)
class Change:
    """What a decision writes (None: leave as is) and what it means for the caller."""

    outcome: Outcome
    record: LedgerRecord | None = None
    slots: Slots | None = None
    content_owner_key: str | None = None  # set the content index entry to this key
    announced: tuple[dict[str, Any], ...] = ()  # the outbox events this change added: its caller publishes them


# --- the protocols the orchestration sees -----------------------------------------------------


class Ledger(Protocol):
    def claim(self, key: str, content_key: str, decide: Callable[[ClaimView], Change]) -> Change: ...

    def update(
        self, key: str, decide: Callable[[LedgerRecord, Slots], Change | None], *, missing_ok: bool = False
    ) -> Change | None:
        """Run `decide` on the record and the slots in one transaction; write what it returns.
        A missing record skips `decide` (returns None) unless `missing_ok`, which passes None."""

    def get(self, key: str) -> LedgerRecord | None: ...

    def records(self, states: Collection[LedgerState] | None = None) -> list[LedgerRecord]: ...

    def with_outbox(self) -> list[LedgerRecord]: ...

    def clear_outbox(self, key: str, event_ids: Collection[str]) -> None: ...

    def slots(self) -> Slots: ...


class UnwritableRecord(Exception):
    """The ledger refused to write a record for what it holds (e.g. over Firestore's 1 MiB entity
    limit): retrying can never help; the status tick quarantines it."""


class ErrorKind(enum.StrEnum):
    QUOTA = "quota"  # 429 RESOURCE_EXHAUSTED: wait in the queue
    PERMANENT = "permanent"  # 400 and the like: the request will never work
    TRANSIENT = "transient"  # 5xx, timeouts: try again later
    NOT_FOUND = "not_found"


class TuningServiceError(Exception):
    def __init__(self, kind: ErrorKind, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.code = kind, message, code
        self.retry_after: float | None = None  # seconds, from the error's google.rpc.RetryInfo


class TuningService(Protocol):
    def find_by_label(self, parent: str, key: str, value: str) -> JobSnapshot | None: ...

    def jobs_with_label(self, parent: str, key: str, value: str) -> list[JobSnapshot]: ...

    def create(self, parent: str, job: Mapping[str, Any]) -> JobSnapshot: ...

    def get(self, name: str) -> JobSnapshot: ...

    def cancel(self, name: str) -> None: ...


class EventPublisher(Protocol):
    def publish_event(self, event: TuningEvent) -> object: ...


class ValidatedDatasets(Protocol):
    """The dataset bucket as submit re-checks it (autotune.request_checks)."""

    def read_report(self, name: str) -> bytes | None: ...

    def generation_of(self, name: str) -> str | None: ...


class ModelCatalog(Protocol):
    """The catalog facts submit needs (autotune.catalog provides them)."""

    def regions(self, model: str) -> Collection[str] | None: ...  # None: unknown model

    def adapter_sizes(self, model: str) -> Collection[int]: ...

    def default_adapter_size(self, model: str) -> int | None: ...

    def adapter_size_enum(self, size: int) -> str: ...


class ProjectCatalog:
    """ModelCatalog over autotune.catalog (models.toml)."""

    def regions(self, model: str) -> Collection[str] | None:
        from autotune import catalog

        spec = catalog.get_model(model)
        return None if spec is None else spec.regions

    def adapter_sizes(self, model: str) -> Collection[int]:
        from autotune import catalog

        spec = catalog.get_model(model)
        return () if spec is None else spec.adapter_sizes

    def default_adapter_size(self, model: str) -> int | None:
        from autotune import catalog

        spec = catalog.get_model(model)
        return None if spec is None else spec.default_adapter_size

    def adapter_size_enum(self, size: int) -> str:
        from autotune import catalog

        return catalog.adapter_size_enum_name(size)


# --- classifying service errors -----------------------------------------------------------------

_PERMANENT_STATUSES = {
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "OUT_OF_RANGE",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "ALREADY_EXISTS",
    "UNIMPLEMENTED",
}
_PERMANENT_CODES = {400, 401, 403, 409, 412, 501}


def classify_error(http_code: int | None, status: str | None = None) -> ErrorKind:
    """Quota, permanent or transient, from an HTTP code and/or a google.rpc status name."""
    if http_code == 429 or status == "RESOURCE_EXHAUSTED":
        return ErrorKind.QUOTA
    if http_code == 404 or status == "NOT_FOUND":
        return ErrorKind.NOT_FOUND
    if status in _PERMANENT_STATUSES or http_code in _PERMANENT_CODES:
        return ErrorKind.PERMANENT
    return ErrorKind.TRANSIENT  # 5xx, 408, timeouts, connection errors, anything unknown: retry


# --- building the Vertex AI request ---------------------------------------------------------------


class JobSpecError(ValueError):
    """The request cannot become a Vertex job (model or region); the message says why."""


@dataclass(frozen=True)
class JobSpec:
    parent: str  # projects/P/locations/REGION
    body: dict[str, Any]  # TuningJob in REST JSON (camelCase, enum names)


def build_job_spec(
    request: TuningRequest, *, project: str, catalog: ModelCatalog, service_account: str = "", dataset_bucket: str = ""
) -> JobSpec:
    settings = request.settings
    # Only validate publishes requests, always for files of the dataset bucket: one naming another
    # bucket was not validated by us, and the job would read data we never checked.
    for ref in (request.training, request.validation):
        if dataset_bucket and ref is not None and ref.bucket != dataset_bucket:
            raise JobSpecError(f"{ref.uri} is not in the dataset bucket {dataset_bucket}; only datasets autotune validated are tuned")
    model = settings.model
    regions = catalog.regions(model)
    if regions is None:
        raise JobSpecError(f"model {model!r} is not in the catalog of tunable models")
    if settings.region not in regions:
        raise JobSpecError(f"model {model} cannot be tuned in region {settings.region}; it can in: {', '.join(sorted(regions))}")
    if not isinstance(settings.epochs, int) or settings.epochs < 1:
        raise JobSpecError(f"epochs must be a positive integer, got {settings.epochs!r}")
    if not isinstance(settings.learning_rate_multiplier, float | int) or settings.learning_rate_multiplier <= 0:
        raise JobSpecError(f"learning_rate_multiplier must be positive, got {settings.learning_rate_multiplier!r}")
    hyper: dict[str, Any] = {"epochCount": str(settings.epochs), "learningRateMultiplier": float(settings.learning_rate_multiplier)}
    size = settings.adapter_size if settings.adapter_size is not None else catalog.default_adapter_size(model)
    if size is not None:
        if not isinstance(size, int) or size not in catalog.adapter_sizes(model):
            allowed = ", ".join(str(s) for s in sorted(catalog.adapter_sizes(model))) or "none"
            raise JobSpecError(f"adapter size {size!r} is not allowed for {model}; allowed: {allowed}")
        hyper["adapterSize"] = catalog.adapter_size_enum(size)
    # The pinned copies: exactly the bytes the report covers, whatever became of the uploaded names.
    spec: dict[str, Any] = {"trainingDatasetUri": request.training.training_uri, "hyperParameters": hyper}
    if request.validation is not None:
        spec["validationDatasetUri"] = request.validation.training_uri
    body: dict[str, Any] = {
        "baseModel": model,
        "supervisedTuningSpec": spec,
        "tunedModelDisplayName": display_name(request),
        "description": f"autotune: {request.training.uri} generation {request.training.generation}",
        "labels": {KEY_LABEL: request.idempotency_key},
    }
    if service_account:
        body["serviceAccount"] = service_account
    return JobSpec(parent=f"projects/{project}/locations/{settings.region}", body=body)


def display_name(request: TuningRequest) -> str:
    name = request.settings.display_name or request.training.object.rsplit("/", 1)[-1].removesuffix(".jsonl")
    return name[:128]


def queue_order(request: TuningRequest) -> str:
    """Upload order of the object that started the work (a manifest, or the dataset itself), not of
    an older training file a manifest names: a Cloud Storage generation is the upload time in
    microseconds."""
    generation = request.trigger_generation or request.training.generation
    return f"{int(generation):020d}" if generation.isdigit() else request.requested_at


# --- decisions (pure) ---------------------------------------------------------------------------


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
        return Change(Outcome.DUPLICATE)
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
    repeats = owner is not None and owner.idempotency_key != key
    if repeats and owner.state not in RETRY_ALLOWED_AFTER and not request.force:
        reason = (
            f"same bytes and settings as {owner.dataset_uri} generation {owner.generation} "
            f"(ledger {owner.idempotency_key}, {owner.state}"
            + (f", job {owner.job_name}" if owner.job_name else "")
            + "): not tuned again; upload with metadata autotune-force: true to tune anyway"
        )
        skipped = move(fresh, LedgerState.SKIPPED, now, reason=reason, duplicate_of=owner.idempotency_key, job_name=owner.job_name)
        return Change(Outcome.SKIPPED, record=skipped)
    if spec_error is not None:
        failed = move(fresh, LedgerState.FAILED, now, reason="cannot be submitted", error=spec_error)
        return Change(Outcome.FAILED, record=failed, content_owner_key=key if owner is None else None)
    reason = None  # why this content is tuned again, told in the queued/submitted event
    if repeats and request.force:
        reason = f"autotune-force: true: tuned again although {owner.dataset_uri} generation {owner.generation} has the same bytes and settings"
    elif repeats:
        reason = f"tuned again: the earlier tuning of the same content ({owner.dataset_uri} generation {owner.generation}) ended {owner.state}"
    fresh = msgspec.structs.replace(fresh, retune_reason=reason)
    if view.slots.free(max_jobs) and not view.slots.queued:
        claimed = move(
            fresh, LedgerState.SUBMITTING, now, reason=reason, attempts=1, claim_expires_at=claim_expiry(now, claim_seconds)
        )
        return Change(Outcome.SUBMIT, record=claimed, slots=view.slots.holding(key, timestamp(now)), content_owner_key=key)
    why = f"{len(view.slots.active)} of {max_jobs} job slots in use, {len(view.slots.queued)} waiting"
    queued = move(fresh, LedgerState.QUEUED, now, reason=f"{reason}; {why}" if reason else why)
    return Change(Outcome.QUEUED, record=queued, slots=view.slots.waiting(key, fresh.queue_order), content_owner_key=key)


def take_over(record: LedgerRecord, slots: Slots, *, now: datetime, claim_seconds: float = CLAIM_SECONDS) -> Change:
    """A SUBMITTING record whose claim expired: its last attempt died without an answer."""
    if not claim_expired(record, now):
        return Change(Outcome.DUPLICATE)
    failed_attempts = record.failed_attempts + 1
    # Attempts exhausted: the record still holds its slot, and gives up only once the service
    # answers a lookup with no job carrying its label (run_submission); a job found is adopted.
    last_look = failed_attempts >= MAX_FAILED_ATTEMPTS
    claimed = move(
        record,
        LedgerState.SUBMITTING,
        now,
        reason=f"took over an expired claim (attempt {record.attempts + 1})" + ("; last look before giving up" if last_look else ""),
        attempts=record.attempts + 1,
        failed_attempts=failed_attempts,
        claim_expires_at=claim_expiry(now, claim_seconds),
    )
    return Change(Outcome.SUBMIT, record=claimed, slots=slots.holding(record.idempotency_key, timestamp(now)))


def promote(record: LedgerRecord, slots: Slots, *, now: datetime, max_jobs: int, claim_seconds: float = CLAIM_SECONDS) -> Change | None:
    """The oldest QUEUED record takes a free slot."""
    key = record.idempotency_key
    if record.state != LedgerState.QUEUED or not slots.free(max_jobs) or slots.head() != key or waiting_for_quota(record, now):
        return None
    claimed = move(
        record,
        LedgerState.SUBMITTING,
        now,
        reason="a job slot is free",
        attempts=record.attempts + 1,
        claim_expires_at=claim_expiry(now, claim_seconds),
    )
    return Change(Outcome.SUBMIT, record=claimed, slots=slots.holding(key, timestamp(now)))


def waiting_for_quota(record: LedgerRecord, now: datetime) -> bool:
    return record.not_before is not None and parse_timestamp(record.not_before) > now


def record_submitted(
    record: LedgerRecord, slots: Slots, *, job: JobSnapshot, adopted: bool, now: datetime, watch_seconds: float = DUPLICATE_WATCH_SECONDS
) -> Change | None:
    if record.state == LedgerState.SUBMITTING:
        reason = "adopted the job found by its label" if adopted else "job created"
        if record.retune_reason:
            reason = f"{reason}; {record.retune_reason}"
        # An earlier attempt went unanswered: it may have made a job the lookup did not show yet.
        unsure = record.failed_attempts > 0 or record.create_unanswered
        watch = claim_expiry(now, watch_seconds) if unsure else None
        done = move(record, LedgerState.SUBMITTED, now, reason=reason, job_name=job.name, job_state=job.state, duplicate_watch_until=watch)
        return Change(Outcome.SUBMITTED, record=done)
    if record.job_name == job.name:
        return None  # already recorded by another attempt
    return Change(Outcome.CONFLICT)


def record_quota_wait(record: LedgerRecord, slots: Slots, *, message: str, now: datetime) -> Change | None:
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
    return Change(Outcome.QUEUED, record=queued, slots=slots.waiting(record.idempotency_key, record.queue_order))


def record_failure(
    record: LedgerRecord, slots: Slots, *, error: str, now: datetime, reason: str = "the tuning service refused the job"
) -> Change | None:
    if record.state not in {LedgerState.SUBMITTING, LedgerState.QUEUED, LedgerState.ACCEPTED}:
        return None
    failed = move(record, LedgerState.FAILED, now, reason=reason, error=error)
    return Change(Outcome.FAILED, record=failed, slots=slots.without(record.idempotency_key))


def release_claim(record: LedgerRecord, slots: Slots, *, error: str, now: datetime, min_pause: float = 0.0) -> Change | None:
    """A transient failure: keep the slot; the next delivery or tick takes over (after a pause
    once the immediate retries are used up, and never before `min_pause`: a create without an
    answer may still be making its job)."""
    if record.state != LedgerState.SUBMITTING:
        return None
    pause = 0.0 if record.failed_attempts < IMMEDIATE_RETRIES else min(900.0, 30.0 * 2 ** (record.failed_attempts - IMMEDIATE_RETRIES))
    released = msgspec.structs.replace(
        record,
        claim_expires_at=claim_expiry(now, max(pause, min_pause)),
        error=error,
        updated_at=timestamp(now),
        create_unanswered=record.create_unanswered or min_pause > 0,
    )
    return Change(Outcome.RELEASED, record=released)


def observe(record: LedgerRecord, slots: Slots, *, job: JobSnapshot, now: datetime) -> Change | None:
    if record.state not in ACTIVE_JOB_STATES or record.job_name != job.name:
        return None
    seen = observed(record, job, now)
    if seen is None:
        return None
    if seen.holds_slot:
        return Change(Outcome.CHANGED, record=seen)
    return Change(Outcome.CHANGED, record=seen, slots=slots.without(record.idempotency_key))


def cancel_queued(record: LedgerRecord, slots: Slots, *, now: datetime) -> Change | None:
    if record.state != LedgerState.QUEUED:
        return None
    cancelled = move(record, LedgerState.CANCELLED, now, reason="cancelled while queued", error="cancelled by the user before it was submitted")
    return Change(Outcome.CANCELLED, record=cancelled, slots=slots.without(record.idempotency_key))


def release_stale_slot(record: LedgerRecord | None, key: str, slots: Slots) -> Change | None:
    """A slot or queue entry whose record no longer holds it (a missing or ended record)."""
    holds = record is not None and (record.holds_slot if key in slots.active else record.state == LedgerState.QUEUED)
    if holds or (key not in slots.active and key not in slots.queued):
        return None
    return Change(Outcome.CHANGED, slots=slots.without(key))


QUARANTINE_HISTORY = 20  # transitions a quarantined record keeps (the latest)


def quarantine(record: LedgerRecord, slots: Slots, *, error: str, now: datetime) -> Change | None:
    """A record the ledger could not write (too large, say): FAILED, announced, and slimmed to
    what can be written (no request, no tuning data stats, its latest history), so the next tick
    never meets it again and the others move on."""
    if record.state in ENDED_STATES:
        return None
    slim = msgspec.structs.replace(
        record, request=None, tuning_data_stats=None, outbox=(), outbox_lease_until=None,
        history=record.history[-QUARANTINE_HISTORY:], error=None, reason=None, retune_reason=None,
    )
    why = f"quarantined: the ledger could not write this record ({error[:500]})"
    failed = move(slim, LedgerState.FAILED, now, reason=why, error=why)
    return Change(Outcome.FAILED, record=failed, slots=slots.without(record.idempotency_key))


# --- orchestration ------------------------------------------------------------------------------


@dataclass
class Pipeline:
    """Everything submit and status need, passed in (adapters in production, doubles in tests)."""

    ledger: Ledger
    service: TuningService
    publisher: EventPublisher
    catalog: ModelCatalog
    project: str
    max_jobs: int = 1
    service_account: str = ""
    claim_seconds: float = CLAIM_SECONDS
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    dataset_bucket: str = ""  # requests for files elsewhere are refused ("" checks nothing)
    create_settle_seconds: float = CREATE_SETTLE_SECONDS
    duplicate_watch_seconds: float = DUPLICATE_WATCH_SECONDS
    # Set: a request is acted on only if the bucket's reports and pinned copies agree with it.
    datasets: ValidatedDatasets | None = None
    reports_prefix: str = "reports/"


def submit_message(pipeline: Pipeline, data: bytes, *, message_id: str = "") -> Outcome:
    """Handle one tuning-requests message. Raises to have Pub/Sub deliver it again (5xx) or,
    for a message that is not a TuningRequest, to send it to the dead-letter topic."""
    try:
        request = decode_request(data)
    except ValueError as exc:
        structured_log.error(
            "tuning request rejected: not a valid TuningRequest; it will go to the dead-letter topic",
            reason=str(exc),
            message_id=message_id,
            size=len(data),
        )
        raise
    return submit(pipeline, request)


def submit(pipeline: Pipeline, request: TuningRequest) -> Outcome:
    refusal = request_refusal_now(pipeline, request)
    if refusal is not None:
        structured_log.error("submit: tuning request refused, no job", dataset=ascii(request.training.uri[:1100]),
                             idempotency_key=ascii(request.idempotency_key[:80]), reason=refusal)
        pipeline.publisher.publish_event(refusal_event(request, refusal, pipeline.clock()))
        return Outcome.REFUSED
    spec_error = None
    spec = None
    try:
        spec = build_job_spec(
            request, project=pipeline.project, catalog=pipeline.catalog, service_account=pipeline.service_account,
            dataset_bucket=pipeline.dataset_bucket,
        )
    except JobSpecError as exc:
        spec_error = str(exc)
    now = pipeline.clock()
    change = pipeline.ledger.claim(
        request.idempotency_key,
        request.content_key,
        lambda view: with_announced(
            decide_claim(view, request, now=now, max_jobs=pipeline.max_jobs, claim_seconds=pipeline.claim_seconds, spec_error=spec_error),
            view.record,
        ),
    )
    structured_log.info(
        _CLAIM_MESSAGES.get(change.outcome, f"submit: {change.outcome}"),
        dataset=request.training.uri,
        idempotency_key=request.idempotency_key,
        state=change.record.state if change.record else None,
        reason=change.record.reason if change.record else None,
    )
    publish_announced(pipeline, change)
    if change.outcome != Outcome.SUBMIT:
        return change.outcome
    if spec is None:  # a take-over of a record whose settings no longer make a job (catalog changed)
        failed = _update(pipeline, request.idempotency_key, lambda r, s: record_failure(r, s, error=str(spec_error), now=now))
        publish_announced(pipeline, failed)
        return Outcome.FAILED
    return run_submission(pipeline, request.idempotency_key, spec)


_CLAIM_MESSAGES = {
    Outcome.DUPLICATE: "submit: duplicate delivery, nothing to do",
    Outcome.SKIPPED: "submit: same bytes and settings already tuned, skipped",
    Outcome.QUEUED: "submit: no free job slot, queued",
    Outcome.SUBMIT: "submit: claimed, adopting or creating the job",
    Outcome.FAILED: "submit: cannot be submitted",
}


def request_refusal_now(pipeline: Pipeline, request: TuningRequest) -> str | None:
    """Why the pipeline's records do not back `request` (see autotune.request_checks), or None."""
    if pipeline.datasets is None:
        return None
    from autotune.request_checks import (
        catalog_settings_errors,
        expected_report_name,
        object_name_problem,
        pinned_names,
        request_refusal,
    )

    report_name = expected_report_name(request, pipeline.reports_prefix)
    safe = all(object_name_problem(name) is None for name in (report_name, *pinned_names(request)))
    return request_refusal(
        request,
        bucket=pipeline.dataset_bucket,
        reports_prefix=pipeline.reports_prefix,
        report=pipeline.datasets.read_report(report_name) if safe else None,
        current_generations={name: pipeline.datasets.generation_of(name) for name in pinned_names(request)} if safe else {},
        settings_errors=catalog_settings_errors,
    )


def refusal_event(request: TuningRequest, refusal: str, now: datetime) -> TuningEvent:
    """A job.refused event whose every field is bounded and encodable, whatever the request held."""
    def bounded(text: str | None, limit: int) -> str | None:
        if text is None:
            return None
        return text if text_problem(text, limit=limit) is None else ascii(text)[:limit]

    payload = EventPayload(
        dataset_uri=bounded(request.training.uri, NAME_LIMIT_BYTES - 100) or "",
        generation=bounded(request.training.generation, 40) or "",
        idempotency_key=bounded(request.idempotency_key, 64),
        report_uri=bounded(request.report_uri, NAME_LIMIT_BYTES),
        model=bounded(request.settings.model, 128),
        error=bounded(refusal, 2048),
    )
    digest = hashlib.sha256(refusal.encode("utf-8", "backslashreplace")).hexdigest()[:16]
    return make_event(EventType.JOB_REFUSED, payload, discriminator=f"refused:{digest}", now=now)


def run_submission(pipeline: Pipeline, key: str, spec: JobSpec) -> Outcome:
    """Adopt the job labelled with `key` or create it, then record it. The caller holds the claim."""
    ledger, service = pipeline.ledger, pipeline.service
    claimed = ledger.get(key)
    # Whether an earlier attempt of this record may have made a job (crash or no answer after
    # its create): then nothing but the service's answer to a lookup frees the slot.
    unsure = claimed is not None and (claimed.failed_attempts > 0 or claimed.create_unanswered)
    last_look = claimed is not None and claimed.failed_attempts >= MAX_FAILED_ATTEMPTS
    creating = False
    try:
        job = service.find_by_label(spec.parent, KEY_LABEL, key)
        adopted = job is not None
        if job is None and last_look:
            error = (
                f"gave up after {claimed.failed_attempts} submit attempts without an answer; the tuning service holds no job "
                f"labelled {KEY_LABEL}={key}" + (f"; last error: {claimed.error}" if claimed.error else "")
            )
            change = _update(pipeline, key, lambda r, s: record_failure(r, s, error=error, now=pipeline.clock(), reason="submit attempts exhausted"))
            structured_log.error("submit: gave up, no job carries the dataset's label", idempotency_key=key, error=error)
            publish_announced(pipeline, change)
            return change.outcome if change else Outcome.DUPLICATE
        if job is None:
            creating = True
            job = service.create(spec.parent, spec.body)
    except TuningServiceError as exc:
        return _after_service_error(pipeline, key, exc, creating=creating, unsure=unsure)
    change = _update(
        pipeline,
        key,
        lambda record, slots: record_submitted(
            record, slots, job=job, adopted=adopted, now=pipeline.clock(), watch_seconds=pipeline.duplicate_watch_seconds
        ),
    )
    if change is None:
        return Outcome.DUPLICATE
    if change.outcome == Outcome.CONFLICT:
        structured_log.error("submit: the ledger already names another job for this dataset", idempotency_key=key, job=job.name)
        if not adopted:
            _cancel_quietly(service, job.name)
        return Outcome.CONFLICT
    structured_log.info("submit: job recorded", idempotency_key=key, job=job.name, adopted=adopted)
    publish_announced(pipeline, change)
    return Outcome.SUBMITTED


def _after_service_error(pipeline: Pipeline, key: str, exc: TuningServiceError, *, creating: bool = False, unsure: bool = False) -> Outcome:
    """`creating`: the error answered the create (else the label lookup before it). `unsure`: an
    earlier attempt may have made a job. Only a create's own answer can queue or fail the record
    (freeing its slot); a lookup's error while a job may exist is a retry, whatever it says."""
    now = pipeline.clock()
    log_fields = {"idempotency_key": key, "error": exc.message, "code": exc.code, "kind": str(exc.kind), "creating": creating}
    definite = creating or not unsure
    if exc.kind == ErrorKind.QUOTA and creating:
        change = _update(pipeline, key, lambda r, s: record_quota_wait(r, s, message=exc.message, now=now))
        structured_log.warning("submit: tuning service quota full, dataset queued", **log_fields)
    elif exc.kind in {ErrorKind.PERMANENT, ErrorKind.NOT_FOUND} and definite:
        change = _update(pipeline, key, lambda r, s: record_failure(r, s, error=exc.message, now=now))
        structured_log.error("submit: tuning service refused the job", **log_fields)
    else:
        # A create without an answer (timeout, 5xx) may have made the job, or still be making it:
        # no lookup, and so no second create, before it has had time to show.
        settle = pipeline.create_settle_seconds if creating and exc.kind == ErrorKind.TRANSIENT else 0.0
        _update(pipeline, key, lambda r, s: release_claim(r, s, error=exc.message, now=now, min_pause=settle))
        structured_log.warning("submit: tuning service error, will retry", settle_seconds=settle, **log_fields)
        raise exc
    publish_announced(pipeline, change)
    return change.outcome if change else Outcome.DUPLICATE


def with_announced(change: Change | None, before: LedgerRecord | None) -> Change | None:
    """`change`, told which events of its record's outbox it added (those not in `before`'s)."""
    if change is None or change.record is None or change.announced:
        return change
    earlier = {item.get("id") for item in before.outbox} if before is not None else set()
    added = tuple(item for item in change.record.outbox if item.get("id") not in earlier)
    return replace(change, announced=added) if added else change


def _update(pipeline: Pipeline, key: str, decide: Callable[[LedgerRecord, Slots], Change | None], *, missing_ok: bool = False) -> Change | None:
    """ledger.update, the change knowing which events it announces (decided in the transaction)."""
    return pipeline.ledger.update(key, lambda record, slots: with_announced(decide(record, slots), record), missing_ok=missing_ok)


def publish_announced(pipeline: Pipeline, change: Change | None) -> None:
    """Publish the events `change` added, then take them out of the outbox."""
    if change is None or change.record is None or not change.announced:
        return
    published = []
    for item in change.announced:
        event = event_from_dict(item)
        pipeline.publisher.publish_event(event)
        published.append(event.id)
    pipeline.ledger.clear_outbox(change.record.idempotency_key, published)


def lease_leftovers(record: LedgerRecord, slots: Slots, *, now: datetime, grace_seconds: float = OUTBOX_GRACE_SECONDS) -> Change | None:
    """The outbox events older than the grace (their mover died before publishing them), leased to
    this tick for as long again; None when there are none or another tick holds the lease."""
    if record.outbox_lease_until is not None and parse_timestamp(record.outbox_lease_until) > now:
        return None
    cutoff = now - timedelta(seconds=grace_seconds)
    leftovers = tuple(item for item in record.outbox if _event_time(item) <= cutoff)
    if not leftovers:
        return None
    leased = msgspec.structs.replace(record, outbox_lease_until=timestamp(now + timedelta(seconds=grace_seconds)))
    return Change(Outcome.CHANGED, record=leased, announced=leftovers)


def _event_time(item: Mapping[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(item.get("time", "")).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)  # no readable time: old enough


def _cancel_quietly(service: TuningService, name: str) -> None:
    try:
        service.cancel(name)
    except TuningServiceError as exc:
        structured_log.error("could not cancel a duplicate job", job=name, error=exc.message)


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
        if job.name == record.job_name or job.name in record.duplicate_jobs or VERTEX_TO_LEDGER.get(job.state) in ENDED_STATES:
            continue
        structured_log.error(
            "status: a second tuning job carries this dataset's label; cancelling it", dataset=record.dataset_uri, job=job.name,
            kept=record.job_name,
        )
        try:
            pipeline.service.cancel(job.name)
        except TuningServiceError as exc:
            summary.errors.append(f"{job.name}: cancelling a second job: {exc.message}")
            continue
        now = pipeline.clock()
        change = _update(pipeline, record.idempotency_key, lambda r, s, name=job.name: record_duplicate_cancelled(r, s, job_name=name, now=now))
        publish_announced(pipeline, change)
        cancelled += 1
    return cancelled


def record_duplicate_cancelled(record: LedgerRecord, slots: Slots, *, job_name: str, now: datetime) -> Change | None:
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
        record, duplicate_jobs=(*record.duplicate_jobs, job_name), updated_at=timestamp(now), outbox=(*record.outbox, event_to_dict(event))
    )
    return Change(Outcome.CHANGED, record=updated)


def _isolated(pipeline: Pipeline, summary: TickSummary, record: LedgerRecord, step: Callable[..., object]) -> object:
    try:
        return step(pipeline, summary, record)
    except TuningServiceError:
        raise
    except Exception as exc:  # noqa: BLE001 (one record's failure must not stop the tick for the others)
        error = f"{type(exc).__name__}: {str(exc)[:500]}"
        summary.errors.append(f"{record.dataset_uri}: {error}")
        if not isinstance(exc, UnwritableRecord):
            # An outage is not the record's fault: it is tried again next tick, untouched.
            structured_log.error("status: a ledger record's step failed; the tick goes on", dataset=record.dataset_uri,
                                 idempotency_key=record.idempotency_key, state=record.state, error=error)
            return None
        structured_log.error("status: the ledger cannot write this record; quarantining it", dataset=record.dataset_uri,
                             idempotency_key=record.idempotency_key, state=record.state, error=error)
        try:
            now = pipeline.clock()
            change = _update(pipeline, record.idempotency_key, lambda r, s: quarantine(r, s, error=error, now=now))
            publish_announced(pipeline, change)
            summary.quarantined += 1 if change else 0
        except Exception as again:  # noqa: BLE001
            summary.errors.append(f"{record.dataset_uri}: quarantine failed too: {type(again).__name__}: {str(again)[:300]}")
        return None


def _publish_leftovers(pipeline: Pipeline, summary: TickSummary, record: LedgerRecord) -> None:
    now = pipeline.clock()
    if lease_leftovers(record, Slots(), now=now) is None:
        return  # too fresh (its mover is publishing it right now) or leased by another tick
    change = pipeline.ledger.update(record.idempotency_key, lambda r, s: lease_leftovers(r, s, now=now))
    publish_announced(pipeline, change)
    summary.published += len(change.announced) if change else 0


def _observe_job(pipeline: Pipeline, summary: TickSummary, record: LedgerRecord) -> None:
    try:
        job = pipeline.service.get(record.job_name)
    except TuningServiceError as exc:
        if exc.kind != ErrorKind.NOT_FOUND:
            summary.errors.append(f"{record.job_name}: {exc.message}")
            return
        job = JobSnapshot(name=record.job_name, state="JOB_STATE_FAILED", error=f"the tuning job no longer exists: {exc.message}")
    now = pipeline.clock()
    if job.state not in VERTEX_TO_LEDGER and job.state != record.job_state:
        # Recorded as seen, no move: the service added a state this code does not know yet.
        structured_log.warning(
            "status: the tuning service reports a job state autotune does not know; recorded as is, still polling",
            job=job.name, job_state=job.state, ledger_state=record.state,
        )
    if record.duplicate_watch_until is not None and parse_timestamp(record.duplicate_watch_until) > now:
        summary.duplicates_cancelled += _cancel_duplicate_jobs(pipeline, record, summary)
    if observe(record, Slots(), job=job, now=now) is None:
        return  # nothing new: no transaction, no contention on the slots document
    change = _update(pipeline, record.idempotency_key, lambda r, s: observe(r, s, job=job, now=now))
    if change is not None and change.record is not None and change.record.state != record.state:
        summary.changed += 1
        structured_log.info(
            f"status: {record.state} -> {change.record.state}", dataset=record.dataset_uri, job=job.name, error=change.record.error
        )
    publish_announced(pipeline, change)


def _take_over_expired(pipeline: Pipeline, summary: TickSummary, record: LedgerRecord) -> None:
    now = pipeline.clock()
    if not claim_expired(record, now):
        return
    change = _update(pipeline, record.idempotency_key, lambda r, s: take_over(r, s, now=now, claim_seconds=pipeline.claim_seconds))
    if change is None:
        return
    publish_announced(pipeline, change)
    if change.outcome == Outcome.SUBMIT:
        summary.taken_over += 1
        _submit_from_ledger(pipeline, change.record, summary)


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
        if _isolated(pipeline, summary, record, _promote) == Outcome.QUEUED:
            return  # the service's own quota is full: try again next tick


def _promote(pipeline: Pipeline, summary: TickSummary, record: LedgerRecord) -> Outcome | None:
    now = pipeline.clock()
    change = _update(pipeline,
        record.idempotency_key, lambda r, s: promote(r, s, now=now, max_jobs=pipeline.max_jobs, claim_seconds=pipeline.claim_seconds)
    )
    if change is None or change.outcome != Outcome.SUBMIT:
        return None  # another tick promoted it, it waits out a 429, or the entry is stale (released below)
    summary.promoted += 1
    structured_log.info("status: promoting the oldest queued dataset", dataset=change.record.dataset_uri)
    return _submit_from_ledger(pipeline, change.record, summary)


def _submit_from_ledger(pipeline: Pipeline, record: LedgerRecord, summary: TickSummary) -> Outcome:
    try:
        request = msgspec.convert(record.request, TuningRequest)
        spec = build_job_spec(
            request, project=pipeline.project, catalog=pipeline.catalog, service_account=pipeline.service_account,
            dataset_bucket=pipeline.dataset_bucket,
        )
    except (msgspec.ValidationError, JobSpecError) as exc:
        now = pipeline.clock()
        change = _update(pipeline, record.idempotency_key, lambda r, s: record_failure(r, s, error=str(exc), now=now))
        publish_announced(pipeline, change)
        return Outcome.FAILED
    moved = pinned_copy_problem(pipeline, request)
    if moved is not None:  # written over while the dataset waited: never tune bytes nobody validated
        now = pipeline.clock()
        change = _update(pipeline, record.idempotency_key, lambda r, s: record_failure(r, s, error=moved, now=now))
        publish_announced(pipeline, change)
        return Outcome.FAILED
    try:
        return run_submission(pipeline, record.idempotency_key, spec)
    except TuningServiceError as exc:
        summary.errors.append(f"{record.dataset_uri}: {exc.message}")
        return Outcome.RELEASED


def pinned_copy_problem(pipeline: Pipeline, request: TuningRequest) -> str | None:
    from autotune.request_checks import pinned_names, pinned_problem

    if pipeline.datasets is None or not pinned_names(request):
        return None  # a record from before pinned copies (or a pipeline without the bucket): nothing to compare
    generations = {name: pipeline.datasets.generation_of(name) for name in pinned_names(request)}
    return pinned_problem(request, pipeline.reports_prefix, generations)


def _release_stale_slots(pipeline: Pipeline) -> None:
    slots = pipeline.ledger.slots()
    for key in [*slots.active, *slots.queued]:
        if release_stale_slot(pipeline.ledger.get(key), key, slots) is not None:
            _update(pipeline, key, lambda r, s, key=key: release_stale_slot(r, key, s), missing_ok=True)


def cancel(pipeline: Pipeline, key: str) -> Outcome:
    """Cancel a dataset's tuning: a queued one leaves the queue; a running job is cancelled on the
    service and the next status tick records CANCELLED."""
    record = pipeline.ledger.get(key)
    if record is None:
        raise LookupError(f"no ledger record {key}")
    if record.state == LedgerState.QUEUED:
        change = _update(pipeline, key, lambda r, s: cancel_queued(r, s, now=pipeline.clock()))
        publish_announced(pipeline, change)
        return Outcome.CANCELLED if change else Outcome.DUPLICATE
    if record.state in ACTIVE_JOB_STATES and record.job_name:
        pipeline.service.cancel(record.job_name)
        return Outcome.CANCELLED
    raise ValueError(f"{record.dataset_uri} is {record.state}: only a QUEUED, SUBMITTED or RUNNING dataset can be cancelled")
