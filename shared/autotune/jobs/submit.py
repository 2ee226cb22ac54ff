"""Submit: one tuning request claimed in the ledger, then its Vertex job adopted or created and
recorded (see autotune.jobs for the exactly-once steps).

Two ways in: `submit_message` (the submit function: the message's bytes, decoded here) and
`submit_request` (a decoded request). Both end in `adopt_or_create_job`, which the status tick
also calls for a record it claimed itself (a promoted or taken-over one)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime

from autotune import structured_log
from autotune.events import EventPayload, EventType, TuningEvent, make_event
from autotune.intake.manifest import text_problem
from autotune.intake.objects import NAME_LIMIT_BYTES
from autotune.jobs.decisions import (
    MAX_FAILED_ATTEMPTS,
    confirm_claim,
    decide_claim,
    holds_claim,
    record_failure,
    record_quota_wait,
    record_submitted,
    release_claim,
)
from autotune.jobs.documents import Change, JobOutcome, Slots
from autotune.jobs.job_spec import KEY_LABEL, JobSpec, JobSpecError, build_job_spec
from autotune.jobs.lifecycle import LedgerRecord
from autotune.jobs.outbox import with_announced
from autotune.jobs.pipeline import Pipeline, publish_announced, update_record
from autotune.jobs.ports import ErrorKind, TuningService, TuningServiceError
from autotune.jobs.request import TuningRequest, decode_request


def submit_message(pipeline: Pipeline, data: bytes, *, message_id: str = "") -> JobOutcome:
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
    return submit_request(pipeline, request)


def submit_request(pipeline: Pipeline, request: TuningRequest) -> JobOutcome:
    """Refuse a request the bucket's records do not back, else claim it (or queue, skip, fail it)
    and, holding the claim, adopt or create its job."""
    refusal = request_refusal_now(pipeline, request)
    if refusal is not None:
        structured_log.error(
            "submit: tuning request refused, no job",
            dataset=ascii(request.training.uri[:1100]),
            idempotency_key=ascii(request.idempotency_key[:80]),
            reason=refusal,
        )
        pipeline.publisher.publish_event(refusal_event(request, refusal, pipeline.clock()))
        return JobOutcome.REFUSED
    spec_error = None
    spec = None
    try:
        spec = build_job_spec(
            request,
            project=pipeline.project,
            catalog=pipeline.catalog,
            service_account=pipeline.service_account,
            dataset_bucket=pipeline.dataset_bucket,
        )
    except JobSpecError as exc:
        spec_error = str(exc)
    # Every claim's expiry counts from the clock read inside its transaction, after the reads:
    # a transaction can wait long on another's locks (the Firestore emulator keeps a dead
    # client's for a minute), and a claim counted from before the wait could be expired when
    # it is written, so taken over while its holder goes on.
    change = pipeline.ledger.claim(
        request.idempotency_key,
        request.content_key,
        lambda view: with_announced(
            decide_claim(
                view,
                request,
                now=pipeline.clock(),
                max_jobs=pipeline.max_jobs,
                claim_seconds=pipeline.claim_seconds,
                spec_error=spec_error,
            ),
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
    if change.outcome != JobOutcome.SUBMIT or change.record is None:
        return change.outcome
    if (
        spec is None
    ):  # a take-over of a record whose settings no longer make a job (catalog changed)
        failed = update_record(
            pipeline,
            request.idempotency_key,
            lambda r, s: record_failure(r, s, error=str(spec_error), now=pipeline.clock()),
        )
        publish_announced(pipeline, failed)
        return JobOutcome.FAILED
    return adopt_or_create_job(pipeline, change.record, spec)


_CLAIM_MESSAGES = {
    JobOutcome.DUPLICATE: "submit: duplicate delivery, nothing to do",
    JobOutcome.SKIPPED: "submit: same bytes and settings already tuned, skipped",
    JobOutcome.QUEUED: "submit: no free job slot, queued",
    JobOutcome.SUBMIT: "submit: claimed, adopting or creating the job",
    JobOutcome.FAILED: "submit: cannot be submitted",
}


def request_refusal_now(pipeline: Pipeline, request: TuningRequest) -> str | None:
    """Why the pipeline's records do not back `request` (see autotune.jobs.request_checks), or None."""
    if pipeline.datasets is None:
        return None
    from autotune.jobs.request_checks import (
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
        current_generations={
            name: pipeline.datasets.generation_of(name) for name in pinned_names(request)
        }
        if safe
        else {},
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


def adopt_or_create_job(pipeline: Pipeline, claimed: LedgerRecord, spec: JobSpec) -> JobOutcome:
    """Adopt the job labelled with the record's key or create it, then record it. The caller
    holds the claim `claimed` (the record as its claim wrote it): a create happens only once
    the ledger confirms that claim is still the caller's."""
    service = pipeline.service
    key, attempt = claimed.idempotency_key, claimed.attempts
    # Whether an earlier attempt of this record may have made a job (crash or no answer after
    # its create): then nothing but the service's answer to a lookup frees the slot.
    unsure = claimed.failed_attempts > 0 or claimed.create_unanswered
    last_look = claimed.failed_attempts >= MAX_FAILED_ATTEMPTS
    creating = False
    try:
        job = service.find_by_label(spec.parent, KEY_LABEL, key)
        adopted = job is not None
        if job is None and last_look:
            error = (
                f"gave up after {claimed.failed_attempts} submit attempts without an answer; the tuning service holds no job "
                f"labelled {KEY_LABEL}={key}"
                + (f"; last error: {claimed.error}" if claimed.error else "")
            )
            change = update_record(
                pipeline,
                key,
                lambda r, s: record_failure(
                    r, s, error=error, now=pipeline.clock(), reason="submit attempts exhausted"
                ),
            )
            structured_log.error(
                "submit: gave up, no job carries the dataset's label",
                idempotency_key=key,
                error=error,
            )
            publish_announced(pipeline, change)
            return change.outcome if change else JobOutcome.DUPLICATE
        if job is None:
            confirmed = update_record(
                pipeline,
                key,
                lambda r, s: confirm_claim(
                    r,
                    s,
                    attempt=attempt,
                    now=pipeline.clock(),
                    claim_seconds=pipeline.claim_seconds,
                ),
            )
            if confirmed is None:
                structured_log.warning(
                    "submit: the claim passed to another submitter before the create; no job made here",
                    idempotency_key=key,
                    attempt=attempt,
                )
                return JobOutcome.DUPLICATE
            creating = True
            job = service.create(spec.parent, spec.body)
    except TuningServiceError as exc:
        return _after_service_error(
            pipeline, key, exc, attempt=attempt, creating=creating, unsure=unsure
        )
    change = update_record(
        pipeline,
        key,
        lambda record, slots: record_submitted(
            record,
            slots,
            job=job,
            adopted=adopted,
            now=pipeline.clock(),
            watch_seconds=pipeline.duplicate_watch_seconds,
        ),
    )
    if change is None:
        return JobOutcome.DUPLICATE
    if change.outcome == JobOutcome.CONFLICT:
        structured_log.error(
            "submit: the ledger already names another job for this dataset",
            idempotency_key=key,
            job=job.name,
        )
        if not adopted:
            _cancel_quietly(service, job.name)
        return JobOutcome.CONFLICT
    structured_log.info("submit: job recorded", idempotency_key=key, job=job.name, adopted=adopted)
    publish_announced(pipeline, change)
    return JobOutcome.SUBMITTED


Decision = Callable[[LedgerRecord, Slots], Change | None]


def _while_held(attempt: int, decide: Decision) -> Decision:
    """`decide`, applied only while the claim taken as `attempt` is still held. Once someone else
    has taken the dataset over, the answer this holder got (a 429, a refusal, no answer) is no
    longer its to record: the new holder may be creating its job at this moment, and queueing,
    failing or releasing the record under it would cancel that job or open the claim to a third."""

    def decide_while_held(record: LedgerRecord, slots: Slots) -> Change | None:
        return decide(record, slots) if holds_claim(record, attempt) else None

    return decide_while_held


def _after_service_error(
    pipeline: Pipeline,
    key: str,
    exc: TuningServiceError,
    *,
    attempt: int,
    creating: bool = False,
    unsure: bool = False,
) -> JobOutcome:
    """`attempt`: the claim this answer was got under. `creating`: the error answered the create
    (else the label lookup before it). `unsure`: an earlier attempt may have made a job. Only a
    create's own answer can queue or fail the record (freeing its slot); a lookup's error while a
    job may exist is a retry, whatever it says."""
    now = pipeline.clock()
    log_fields = {
        "idempotency_key": key,
        "error": exc.message,
        "code": exc.code,
        "kind": str(exc.kind),
        "creating": creating,
    }
    definite = creating or not unsure
    if exc.kind == ErrorKind.QUOTA and creating:
        change = update_record(
            pipeline,
            key,
            _while_held(
                attempt, lambda r, s: record_quota_wait(r, s, message=exc.message, now=now)
            ),
        )
        if change is None:
            return _answer_left_to_the_new_holder(attempt, log_fields)
        structured_log.warning("submit: tuning service quota full, dataset queued", **log_fields)
    elif exc.kind in {ErrorKind.PERMANENT, ErrorKind.NOT_FOUND} and definite:
        change = update_record(
            pipeline,
            key,
            _while_held(attempt, lambda r, s: record_failure(r, s, error=exc.message, now=now)),
        )
        if change is None:
            return _answer_left_to_the_new_holder(attempt, log_fields)
        structured_log.error("submit: tuning service refused the job", **log_fields)
    else:
        # A create without an answer (timeout, 5xx) may have made the job, or still be making it:
        # no lookup, and so no second create, before it has had time to show.
        settle = (
            pipeline.create_settle_seconds if creating and exc.kind == ErrorKind.TRANSIENT else 0.0
        )
        update_record(
            pipeline,
            key,
            _while_held(
                attempt,
                lambda r, s: release_claim(
                    r, s, error=exc.message, now=pipeline.clock(), min_pause=settle
                ),
            ),
        )
        structured_log.warning(
            "submit: tuning service error, will retry", settle_seconds=settle, **log_fields
        )
        raise exc
    publish_announced(pipeline, change)
    return change.outcome


def _answer_left_to_the_new_holder(attempt: int, log_fields: Mapping[str, object]) -> JobOutcome:
    structured_log.warning(
        "submit: the claim passed to another submitter; this attempt's answer is not recorded",
        attempt=attempt,
        **log_fields,
    )
    return JobOutcome.DUPLICATE


def _cancel_quietly(service: TuningService, name: str) -> None:
    try:
        service.cancel(name)
    except TuningServiceError as exc:
        structured_log.error("could not cancel a duplicate job", job=name, error=exc.message)


def pinned_copy_problem(pipeline: Pipeline, request: TuningRequest) -> str | None:
    from autotune.jobs.request_checks import pinned_names, pinned_problem

    if pipeline.datasets is None or not pinned_names(request):
        return None  # a record from before pinned copies (or a pipeline without the bucket): nothing to compare
    generations = {name: pipeline.datasets.generation_of(name) for name in pinned_names(request)}
    return pinned_problem(request, pipeline.reports_prefix, generations)
