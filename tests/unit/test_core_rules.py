"""Rules of the submit and status core that mutation testing (`make mutation`) found no test
for: each test here fails when its rule is deleted or inverted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from job_doubles import (
    make_request,
    memory_pipeline,
)

from autotune.events import EventPayload, EventType, TuningEvent
from autotune.jobs.decisions import (
    MAX_FAILED_ATTEMPTS,
    QUARANTINE_HISTORY,
    cancel_queued,
    decide_claim,
    promote,
    quarantine,
    record_duplicate_cancelled,
    record_failure,
    record_quota_wait,
    release_claim,
    take_over,
)
from autotune.jobs.documents import ClaimView, JobOutcome, Slots
from autotune.jobs.lifecycle import (
    LedgerRecord,
    LedgerState,
    claim_expiry,
    move,
    new_record,
    timestamp,
)
from autotune.jobs.outbox import lease_leftovers
from autotune.jobs.ports import TuningServiceError
from autotune.jobs.submit import refusal_event, submit_request
from autotune.jobs.tick import status_tick

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def world():
    pipeline, ledger, service, bus, clock = memory_pipeline()
    return pipeline, ledger, service


def test_a_new_dataset_queues_behind_a_waiting_one_even_when_a_slot_is_free():
    # First in, first out: a free slot belongs to the head of the queue (the tick promotes it),
    # not to whoever arrives while the head waits (for a quota pause, say).
    waiting = Slots(queued={"older": "00000000000000000001"})
    change = decide_claim(
        ClaimView(record=None, content_owner=None, slots=waiting),
        make_request(),
        now=NOW,
        max_jobs=2,
    )
    assert change.outcome is JobOutcome.QUEUED
    assert change.record is not None and change.record.state is LedgerState.QUEUED
    assert change.slots is not None and change.slots.active == {}
    assert set(change.slots.queued) == {"older", make_request().idempotency_key}


def test_with_an_empty_queue_and_a_free_slot_a_new_dataset_is_submitted_at_once():
    change = decide_claim(
        ClaimView(record=None, content_owner=None, slots=Slots()),
        make_request(),
        now=NOW,
        max_jobs=1,
    )
    assert change.outcome is JobOutcome.SUBMIT and change.slots is not None
    assert (
        list(change.slots.active) == [make_request().idempotency_key] and change.slots.queued == {}
    )


@pytest.mark.parametrize("held", ["active", "queued"])
def test_a_tick_frees_a_slot_or_queue_place_whose_record_is_gone(world, held):
    pipeline, ledger, service = world
    # A record deleted by hand (or lost with an emulator restart) left its place in the slots.
    ledger.slot_doc = Slots(**{held: {"gone": "2026-11-25T11:00:00.000000Z"}})
    status_tick(pipeline)
    assert ledger.slots() == Slots()
    # The place is usable again: the next dataset goes straight to the service.
    assert submit_request(pipeline, make_request()) == JobOutcome.SUBMITTED
    assert len(service.created) == 1


def test_a_tick_frees_the_slot_of_a_record_that_ended_without_giving_it_back(world):
    pipeline, ledger, _ = world
    request = make_request()
    assert submit_request(pipeline, request) == JobOutcome.SUBMITTED
    record = ledger.get(request.idempotency_key)
    assert record is not None
    # The record ended, but the slots document still counts it (a crash between the two writes
    # of an older version, say): the tick notices and frees the slot.
    ledger.docs[request.idempotency_key] = msgspec.structs.replace(
        record, state=LedgerState.FAILED, job_name=None
    )
    assert ledger.slots().active
    status_tick(pipeline)
    assert ledger.slots() == Slots()


# --- the pure decisions, each pinned to the whole change it makes ------------------------------

LATER = datetime(2026, 11, 25, 12, 5, tzinfo=UTC)


def queued(key: str = "k1", **fields: Any) -> LedgerRecord:
    accepted = new_record(
        idempotency_key=key,
        content_key=f"c-{key}",
        dataset_uri=f"gs://b/{key}.jsonl",
        generation="7",
        now=NOW,
        model="gemini-2.5-flash",
        queue_order="0001",
    )
    return move(
        accepted, LedgerState.QUEUED, NOW, reason="1 of 1 job slots in use, 0 waiting", **fields
    )


def test_promote_moves_the_head_of_the_queue_into_a_free_slot_with_a_new_claim():
    record = queued(attempts=2)
    change = promote(record, Slots(queued={"k1": "0001"}), now=LATER, max_jobs=1, claim_seconds=60)
    assert change is not None and change.outcome is JobOutcome.SUBMIT
    moved = change.record
    assert moved is not None and moved.state is LedgerState.SUBMITTING
    assert moved.attempts == 3 and moved.claim_expires_at == claim_expiry(LATER, 60)
    assert moved.history[-1].reason == "a job slot is free" and moved.reason == "a job slot is free"
    assert change.slots == Slots(active={"k1": timestamp(LATER)})


@pytest.mark.parametrize("why_not", ["not queued", "no free slot", "not the head", "quota pause"])
def test_promote_leaves_a_record_that_may_not_take_the_slot(why_not):
    record = queued()
    slots = Slots(queued={"k1": "0001"})
    if why_not == "not queued":
        record = move(record, LedgerState.CANCELLED, NOW)
    elif why_not == "no free slot":
        slots = Slots(active={"other": timestamp(NOW)}, queued={"k1": "0001"})
    elif why_not == "not the head":
        slots = Slots(queued={"k1": "0001", "k0": "0000"})
    else:
        record = queued(not_before=timestamp(LATER))
    assert promote(record, slots, now=NOW, max_jobs=1) is None


def test_cancel_queued_ends_the_record_with_why_and_frees_its_queue_place():
    change = cancel_queued(queued(), Slots(queued={"k1": "0001", "k2": "0002"}), now=LATER)
    assert change is not None and change.outcome is JobOutcome.CANCELLED
    assert change.record is not None and change.record.state is LedgerState.CANCELLED
    assert change.record.history[-1].reason == "cancelled while queued"
    assert change.record.error == "cancelled by the user before it was submitted"
    assert change.slots == Slots(queued={"k2": "0002"})
    assert cancel_queued(change.record, Slots(), now=LATER) is None


def test_record_failure_keeps_the_reason_given_or_says_the_service_refused():
    told = record_failure(queued(), Slots(queued={"k1": "0001"}), error="400 bad", now=LATER)
    assert told is not None and told.outcome is JobOutcome.FAILED and told.slots == Slots()
    assert (
        told.record is not None
        and told.record.state is LedgerState.FAILED
        and told.record.error == "400 bad"
    )
    assert told.record.history[-1].reason == "the tuning service refused the job"
    own = record_failure(queued(), Slots(), error="e", now=LATER, reason="cannot be submitted")
    assert (
        own is not None
        and own.record is not None
        and own.record.history[-1].reason == "cannot be submitted"
    )
    assert record_failure(told.record, Slots(), error="again", now=LATER) is None


def _leftover(event_id: str, time: str) -> TuningEvent:
    payload = EventPayload(dataset_uri="gs://b/incoming/d.jsonl", generation="1")
    return TuningEvent(type=EventType.JOB_RUNNING, payload=payload, time=time, id=event_id)


def test_lease_leftovers_takes_events_at_least_the_grace_old_and_leases_them_for_as_long():
    old = _leftover("e1", timestamp(NOW))
    fresh = _leftover("e2", "2026-11-25T12:04:31.000000Z")
    record = queued()
    record = msgspec.structs.replace(record, outbox=(old, fresh))
    change = lease_leftovers(
        record, Slots(), now=LATER, grace_seconds=300
    )  # NOW is exactly the grace before LATER
    assert change is not None and change.outcome is JobOutcome.CHANGED
    assert change.announced == (old,)
    assert change.record == msgspec.structs.replace(
        record, outbox_lease_until=timestamp(LATER + (LATER - NOW))
    )
    # While the lease runs no other tick takes them; at its end they are free to take again.
    leased = change.record
    assert leased is not None
    assert lease_leftovers(leased, Slots(), now=LATER, grace_seconds=300) is None
    again = lease_leftovers(leased, Slots(), now=LATER + (LATER - NOW), grace_seconds=300)
    assert again is not None and again.announced == (old, fresh)
    yesterday = _leftover("e3", "yesterday")
    unreadable = msgspec.structs.replace(record, outbox=(yesterday,))
    taken = lease_leftovers(unreadable, Slots(), now=LATER, grace_seconds=300)
    assert taken is not None and taken.announced == (yesterday,)


def test_quarantine_fails_a_record_slimmed_to_what_can_be_written_and_frees_its_slot():
    record = queued(
        request={"big": "x" * 10},
        tuning_data_stats={"n": 1},
        outbox=(_leftover("e", timestamp(NOW)),),
        error="old",
        retune_reason="r",
    )
    long_history = msgspec.structs.replace(record, history=record.history * 20)
    change = quarantine(long_history, Slots(queued={"k1": "0001"}), error="E" * 600, now=LATER)
    assert change is not None and change.outcome is JobOutcome.FAILED and change.slots == Slots()
    failed = change.record
    assert failed is not None and failed.state is LedgerState.FAILED
    why = f"quarantined: the ledger could not write this record ({'E' * 500})"
    assert failed.error == why and failed.history[-1].reason == why
    assert (
        failed.request is None and failed.tuning_data_stats is None and failed.retune_reason is None
    )
    assert len(failed.history) == QUARANTINE_HISTORY + 1
    assert [e.type for e in failed.outbox] == [EventType.JOB_FAILED]
    assert quarantine(failed, Slots(), error="again", now=LATER) is None


def test_record_duplicate_cancelled_remembers_the_job_once_and_announces_it():
    record = msgspec.structs.replace(queued(), job_name="projects/p/locations/l/tuningJobs/1")
    change = record_duplicate_cancelled(
        record, Slots(), job_name="projects/p/locations/l/tuningJobs/2", now=LATER
    )
    assert change is not None and change.outcome is JobOutcome.CHANGED and change.slots is None
    updated = change.record
    assert updated is not None and updated.duplicate_jobs == (
        "projects/p/locations/l/tuningJobs/2",
    )
    assert updated.updated_at == timestamp(LATER)
    [event] = updated.outbox[len(record.outbox) :]
    assert event.type == EventType.JOB_DUPLICATE_CANCELLED and event.time == "2026-11-25T12:05:00Z"
    assert event.payload.job_name == "projects/p/locations/l/tuningJobs/2"
    assert event.payload.reason is not None
    assert event.payload.reason.endswith("the dataset keeps projects/p/locations/l/tuningJobs/1")
    assert (
        record_duplicate_cancelled(
            updated, Slots(), job_name="projects/p/locations/l/tuningJobs/2", now=LATER
        )
        is None
    )


def test_slots_count_free_places_and_name_the_head_in_upload_order_then_key():
    assert Slots(active={"a": "t"}).free(2) and not Slots(active={"a": "t", "b": "t"}).free(2)
    assert Slots().head() is None
    assert Slots(queued={"b": "0002", "c": "0001", "a": "0002"}).head() == "c"
    assert Slots(queued={"b": "0002", "a": "0002"}).head() == "a"


def test_slots_moves_take_a_key_out_of_where_it_was():
    both = Slots(active={"k": "t0", "x": "t1"}, queued={"k": "0001", "y": "0002"})
    assert both.holding("k", "t9") == Slots(active={"k": "t9", "x": "t1"}, queued={"y": "0002"})
    assert both.waiting("k", "0005") == Slots(active={"x": "t1"}, queued={"k": "0005", "y": "0002"})
    assert both.without("k") == Slots(active={"x": "t1"}, queued={"y": "0002"})


def submitting(
    *, attempts: int = 1, failed_attempts: int = 0, expires: datetime = NOW
) -> LedgerRecord:
    return msgspec.structs.replace(
        move(
            queued(),
            LedgerState.SUBMITTING,
            NOW,
            attempts=attempts,
            claim_expires_at=timestamp(expires),
        ),
        failed_attempts=failed_attempts,
    )


def test_take_over_of_an_expired_claim_counts_the_attempt_and_holds_the_slot_again():
    change = take_over(
        submitting(attempts=2), Slots(active={"k1": timestamp(NOW)}), now=LATER, claim_seconds=60
    )
    assert change.outcome is JobOutcome.SUBMIT and change.slots == Slots(
        active={"k1": timestamp(LATER)}
    )
    claimed = change.record
    assert claimed is not None and claimed.state is LedgerState.SUBMITTING
    assert (claimed.attempts, claimed.failed_attempts) == (3, 1)
    assert claimed.claim_expires_at == claim_expiry(LATER, 60)
    assert claimed.history[-1].reason == "took over an expired claim (attempt 3)"


def test_the_last_take_over_says_it_is_the_last_look():
    before_last = take_over(submitting(failed_attempts=MAX_FAILED_ATTEMPTS - 2), Slots(), now=LATER)
    last = take_over(submitting(failed_attempts=MAX_FAILED_ATTEMPTS - 1), Slots(), now=LATER)
    assert (
        before_last.record is not None
        and before_last.record.history[-1].reason == "took over an expired claim (attempt 2)"
    )
    assert last.record is not None
    assert (
        last.record.history[-1].reason
        == "took over an expired claim (attempt 2); last look before giving up"
    )


def test_a_claim_that_has_not_expired_is_not_taken_over():
    change = take_over(submitting(expires=LATER), Slots(), now=NOW)
    assert change.outcome is JobOutcome.DUPLICATE and change.record is None and change.slots is None


def test_a_quota_wait_returns_the_dataset_to_its_old_queue_place_counting_the_waits():
    record = submitting()
    change = record_quota_wait(
        msgspec.structs.replace(record, quota_waits=1),
        Slots(active={"k1": "t"}),
        message="429",
        now=LATER,
    )
    assert change is not None and change.outcome is JobOutcome.QUEUED
    assert change.slots == Slots(queued={"k1": "0001"})
    assert change.record is not None and change.record.quota_waits == 2


def test_a_released_claim_keeps_the_slot_and_remembers_a_create_without_an_answer():
    change = release_claim(submitting(), Slots(), error="timeout", now=LATER, min_pause=0.5)
    assert change is not None and change.outcome is JobOutcome.RELEASED and change.slots is None
    released = change.record
    assert (
        released is not None
        and released.create_unanswered
        and released.updated_at == timestamp(LATER)
    )
    assert released.claim_expires_at == claim_expiry(LATER, 0.5) and released.error == "timeout"
    quick = release_claim(submitting(), Slots(), error="reset", now=LATER)
    assert quick is not None and quick.record is not None and not quick.record.create_unanswered


def test_a_refusal_event_tells_the_request_as_it_came_when_it_can_travel():
    request = make_request()
    event = refusal_event(request, "the report says rejected", LATER)
    assert event.type.value == "autotune.job.v1.refused" and event.time == "2026-11-25T12:05:00Z"
    payload = event.payload
    assert (payload.dataset_uri, payload.generation, payload.idempotency_key) == (
        request.training.uri,
        request.training.generation,
        request.idempotency_key,
    )
    assert (payload.report_uri, payload.model, payload.error) == (
        request.report_uri,
        request.settings.model,
        "the report says rejected",
    )
    # One id per refusal reason: a redelivery repeats it, another reason is another event.
    assert refusal_event(request, "the report says rejected", NOW).id == event.id
    assert refusal_event(request, "another reason", LATER).id != event.id


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("uri", 924),
        ("generation", 40),
        ("key", 64),
        ("report", 1024),
        ("model", 128),
        ("error", 2048),
    ],
)
def test_a_refusal_event_bounds_each_field_whatever_the_request_held(field, limit):
    request = make_request()
    just_fits, too_long, control = "a" * limit, "a" * (limit + 1), "bad\x00name"

    def event_with(text: str):
        training = request.training
        if field == "uri":  # the uri is gs://bucket/object: the object takes the rest
            prefix = f"gs://{training.bucket}/"
            training = msgspec.structs.replace(
                training, object=text[len(prefix) :] if text.startswith("a") else text
            )
            text = prefix + training.object if text.startswith("a") else prefix + text
        changed = {
            "uri": lambda: msgspec.structs.replace(request, training=training),
            "generation": lambda: msgspec.structs.replace(
                request, training=msgspec.structs.replace(training, generation=text)
            ),
            "key": lambda: msgspec.structs.replace(request, idempotency_key=text),
            "report": lambda: msgspec.structs.replace(request, report_uri=text),
            "model": lambda: msgspec.structs.replace(
                request, settings=msgspec.structs.replace(request.settings, model=text)
            ),
            "error": lambda: request,
        }[field]()
        payload = refusal_event(changed, text if field == "error" else "refused", LATER).payload
        told = {
            "uri": payload.dataset_uri,
            "generation": payload.generation,
            "key": payload.idempotency_key,
            "report": payload.report_uri,
            "model": payload.model,
            "error": payload.error,
        }[field]
        return text, told

    sent, told = event_with(just_fits)
    assert told == sent  # at the limit: as it came
    sent, told = event_with(too_long)
    assert told is not None and len(told) == limit and told == ascii(sent)[:limit]
    sent, told = event_with(control)
    assert told == ascii(sent)[:limit] and "\x00" not in (told or "")


# --- what a tick reports ---------------------------------------------------------------------


def test_a_tick_counts_the_leftover_events_it_publishes_across_records(world):
    pipeline, ledger, _ = world

    class DeadBus:
        def publish_event(self, event):
            raise ConnectionError("bus down")

    alive, pipeline.publisher = pipeline.publisher, DeadBus()
    for request in (
        make_request("incoming/a.jsonl", sha256="a" * 64),
        make_request("incoming/b.jsonl", sha256="b" * 64),
    ):
        with pytest.raises(ConnectionError):
            submit_request(pipeline, request)
    pipeline.publisher = alive
    pipeline.clock.advance(31)
    summary = status_tick(pipeline)
    assert summary.published == 2 and sorted(alive.types()) == ["queued", "submitted"]
    assert status_tick(pipeline).published == 0


def test_a_tick_counts_promotions_and_take_overs(world):
    pipeline, ledger, service = world
    first, second = (
        make_request("incoming/a.jsonl", sha256="a" * 64),
        make_request("incoming/b.jsonl", sha256="b" * 64),
    )
    assert (
        submit_request(pipeline, first) == JobOutcome.SUBMITTED
        and submit_request(pipeline, second) == JobOutcome.QUEUED
    )
    first_record = ledger.get(first.idempotency_key)
    assert first_record is not None and first_record.job_name is not None
    service.succeed(first_record.job_name)
    summary = status_tick(pipeline)
    assert (summary.observed, summary.promoted, summary.taken_over) == (1, 1, 0)
    promoted = ledger.get(second.idempotency_key)
    assert promoted is not None and promoted.state is LedgerState.SUBMITTED
    assert status_tick(pipeline).promoted == 0

    third = make_request("incoming/c.jsonl", sha256="c" * 64)
    service.answers_lost = 1  # the create makes its job, but its answer is lost
    second_record = ledger.get(second.idempotency_key)
    assert second_record is not None and second_record.job_name is not None
    service.succeed(second_record.job_name)
    status_tick(pipeline)
    with pytest.raises(TuningServiceError):  # raised so Pub/Sub delivers the request again
        submit_request(pipeline, third)
    pipeline.clock.advance(3600)
    summary = status_tick(pipeline)
    assert summary.taken_over == 1
    adopted = ledger.get(third.idempotency_key)
    assert (
        adopted is not None and adopted.state is LedgerState.SUBMITTED and len(service.created) == 3
    )


# --- the claim decision, pinned to what it records ----------------------------------------------


def owner_record(
    state: LedgerState, job_name: str | None = "projects/p/locations/l/tuningJobs/9"
) -> LedgerRecord:
    earlier = make_request("incoming/first.jsonl", generation="5")
    record = new_record(
        idempotency_key=earlier.idempotency_key,
        content_key=earlier.content_key,
        dataset_uri=earlier.training.uri,
        generation="5",
        now=NOW,
    )
    return msgspec.structs.replace(record, state=state, job_name=job_name)


def claim(
    owner: LedgerRecord | None = None,
    slots: Slots | None = None,
    *,
    force: bool = False,
    spec_error: str | None = None,
):
    request = make_request(force=force)
    view = ClaimView(record=None, content_owner=owner, slots=Slots() if slots is None else slots)
    return request, decide_claim(
        view, request, now=LATER, max_jobs=1, claim_seconds=60, spec_error=spec_error
    )


def test_a_first_claim_records_the_request_and_takes_the_slot():
    request, change = claim()
    assert (
        change.outcome is JobOutcome.SUBMIT and change.content_owner_key == request.idempotency_key
    )
    assert change.slots == Slots(active={request.idempotency_key: timestamp(LATER)})
    record = change.record
    assert record is not None and record.state is LedgerState.SUBMITTING
    assert (record.attempts, record.claim_expires_at, record.retune_reason) == (
        1,
        claim_expiry(LATER, 60),
        None,
    )
    assert (record.dataset_uri, record.generation, record.report_uri) == (
        request.training.uri,
        "1764000000000001",
        request.report_uri,
    )
    assert (record.model, record.region, record.forced) == (
        "gemini-2.5-flash",
        "us-central1",
        False,
    )
    assert (
        record.request == msgspec.to_builtins(request)
        and record.queue_order == "00001764000000000001"
    )
    assert record.content_key == request.content_key
    assert [t.state for t in record.history] == [LedgerState.ACCEPTED, LedgerState.SUBMITTING]


@pytest.mark.parametrize("job_name", ["projects/p/locations/l/tuningJobs/9", None])
def test_content_tuned_before_is_skipped_with_the_earlier_tuning_named(job_name):
    owner = owner_record(LedgerState.SUCCEEDED, job_name)
    request, change = claim(owner)
    assert (
        change.outcome is JobOutcome.SKIPPED
        and change.slots is None
        and change.content_owner_key is None
    )
    skipped = change.record
    assert skipped is not None and skipped.state is LedgerState.SKIPPED
    assert (skipped.duplicate_of, skipped.job_name) == (owner.idempotency_key, job_name)
    job = f", job {job_name}" if job_name else ""
    assert skipped.reason == (
        f"same bytes and settings as gs://bkt/incoming/first.jsonl generation 5 (ledger {owner.idempotency_key}, SUCCEEDED{job}): "
        "not tuned again; upload with metadata autotune-force: true to tune anyway"
    )


def test_forced_and_retried_content_is_tuned_again_and_says_why():
    _, forced = claim(owner_record(LedgerState.SUCCEEDED), force=True)
    assert (
        forced.outcome is JobOutcome.SUBMIT and forced.record is not None and forced.record.forced
    )
    assert (
        forced.record.retune_reason
        == forced.record.reason
        == (
            "autotune-force: true: tuned again although gs://bkt/incoming/first.jsonl generation 5 has the same bytes and settings"
        )
    )
    _, retried = claim(owner_record(LedgerState.FAILED))
    assert retried.record is not None and retried.record.retune_reason == (
        "tuned again: the earlier tuning of the same content (gs://bkt/incoming/first.jsonl generation 5) ended FAILED"
    )


def test_a_queued_claim_says_why_it_waits_after_why_it_is_tuned_again():
    busy = Slots(active={"other": timestamp(NOW)})
    request, plain = claim(slots=busy)
    assert plain.outcome is JobOutcome.QUEUED and plain.record is not None
    assert (
        plain.content_owner_key == request.idempotency_key
    )  # a queued dataset owns its content already
    assert plain.record.reason == "1 of 1 job slots in use, 0 waiting"
    _, retried = claim(owner_record(LedgerState.CANCELLED), slots=busy)
    assert retried.record is not None and retried.record.reason == (
        "tuned again: the earlier tuning of the same content (gs://bkt/incoming/first.jsonl generation 5) ended CANCELLED; "
        "1 of 1 job slots in use, 0 waiting"
    )


def test_a_request_that_makes_no_job_fails_and_owns_its_content_only_when_nothing_did():
    request, fresh = claim(spec_error="adapter size 3 is not offered")
    assert (
        fresh.outcome is JobOutcome.FAILED
        and fresh.slots is None
        and fresh.content_owner_key == request.idempotency_key
    )
    assert fresh.record is not None and fresh.record.state is LedgerState.FAILED
    assert (fresh.record.reason, fresh.record.error) == (
        "cannot be submitted",
        "adapter size 3 is not offered",
    )
    _, again = claim(owner_record(LedgerState.FAILED), spec_error="adapter size 3 is not offered")
    assert again.outcome is JobOutcome.FAILED and again.content_owner_key is None


def test_a_claim_on_a_live_record_is_a_duplicate_and_on_a_dead_one_a_take_over():
    request = make_request()
    live = submitting(expires=LATER)
    view = ClaimView(record=live, content_owner=None, slots=Slots())
    assert decide_claim(view, request, now=NOW, max_jobs=1) == decide_claim(
        view, request, now=NOW, max_jobs=1
    )
    assert decide_claim(view, request, now=NOW, max_jobs=1).outcome is JobOutcome.DUPLICATE
    taken = decide_claim(view, request, now=LATER, max_jobs=1, claim_seconds=60)
    assert (
        taken.outcome is JobOutcome.SUBMIT
        and taken.record is not None
        and taken.record.claim_expires_at == claim_expiry(LATER, 60)
    )
