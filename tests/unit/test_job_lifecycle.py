"""The ledger state machine: allowed moves, events per arrival, Vertex state mapping."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from autotune.events import EventType
from autotune.job_lifecycle import (
    ENDED_STATES,
    EVENT_ON_ENTRY,
    TRANSITIONS,
    VERTEX_TO_LEDGER,
    IllegalTransition,
    JobSnapshot,
    LedgerRecord,
    LedgerState,
    claim_expired,
    event_from_dict,
    move,
    new_record,
    observed,
    parse_timestamp,
    timestamp,
)

S = LedgerState
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
JOB = "projects/p/locations/us-central1/tuningJobs/7"


def record(state: LedgerState = S.ACCEPTED, **fields) -> LedgerRecord:
    base = new_record(idempotency_key="k" * 40, content_key="c" * 40, dataset_uri="gs://b/incoming/d.jsonl", generation="5", now=NOW)
    path = {
        S.ACCEPTED: [],
        S.QUEUED: [S.QUEUED],
        S.SUBMITTING: [S.SUBMITTING],
        S.SUBMITTED: [S.SUBMITTING, S.SUBMITTED],
        S.RUNNING: [S.SUBMITTING, S.SUBMITTED, S.RUNNING],
    }[state]
    for step in path:
        base = move(base, step, NOW, job_name=JOB if step in {S.SUBMITTED, S.RUNNING} else None)
    return base.__class__(**{**{f: getattr(base, f) for f in base.__struct_fields__}, "outbox": (), **fields})


def test_every_state_has_a_transition_entry_and_an_event_entry():
    assert set(TRANSITIONS) == set(LedgerState)
    assert set(EVENT_ON_ENTRY) == set(LedgerState)
    assert {S.SUCCEEDED, S.FAILED, S.CANCELLED, S.SKIPPED} == ENDED_STATES


def test_ended_states_cannot_move():
    for state in ENDED_STATES:
        for target in LedgerState:
            assert target not in TRANSITIONS[state]


def test_illegal_move_names_the_states_and_the_record():
    with pytest.raises(IllegalTransition, match=r"gs://b/incoming/d.jsonl.*ACCEPTED -> SUCCEEDED"):
        move(record(), S.SUCCEEDED, NOW)


def test_move_records_history_and_puts_the_event_in_the_outbox():
    moved = move(record(), S.QUEUED, NOW + timedelta(seconds=1), reason="slots full")
    assert [t.state for t in moved.history] == [S.ACCEPTED, S.QUEUED]
    assert moved.history[-1].at == "2026-11-25T12:00:01.000000Z"
    assert moved.history[-1].reason == "slots full"
    [event] = [event_from_dict(item) for item in moved.outbox]
    assert event.type == EventType.JOB_QUEUED
    assert event.payload.state == "QUEUED"
    assert event.payload.reason == "slots full"


def test_internal_moves_publish_nothing():
    assert move(record(), S.SUBMITTING, NOW).outbox == ()


def test_event_ids_are_stable_and_tell_two_queued_arrivals_apart():
    first = move(record(), S.QUEUED, NOW)
    again = move(record(), S.QUEUED, NOW + timedelta(hours=1))
    assert first.outbox[0]["id"] == again.outbox[0]["id"]
    requeued = move(move(move(record(), S.QUEUED, NOW), S.SUBMITTING, NOW), S.QUEUED, NOW)
    assert requeued.outbox[0]["id"] != requeued.outbox[1]["id"]


def test_claim_expiry():
    claimed = move(record(), S.SUBMITTING, NOW, claim_expires_at=timestamp(NOW + timedelta(seconds=30)))
    assert not claim_expired(claimed, NOW + timedelta(seconds=29))
    assert claim_expired(claimed, NOW + timedelta(seconds=30))
    assert not claim_expired(record(S.QUEUED), NOW + timedelta(days=1))


def test_timestamps_sort_as_text_in_time_order():
    a, b = timestamp(NOW), timestamp(NOW + timedelta(microseconds=1))
    assert a < b and parse_timestamp(a) == NOW


@pytest.mark.parametrize(
    ("vertex", "expected"),
    [
        ("JOB_STATE_QUEUED", None),
        ("JOB_STATE_PENDING", None),
        ("JOB_STATE_RUNNING", S.RUNNING),
        ("JOB_STATE_CANCELLING", None),
        ("JOB_STATE_SUCCEEDED", S.SUCCEEDED),
        ("JOB_STATE_FAILED", S.FAILED),
        ("JOB_STATE_CANCELLED", S.CANCELLED),
        ("JOB_STATE_EXPIRED", S.FAILED),
    ],
)
def test_observed_maps_vertex_states_from_submitted(vertex, expected):
    seen = observed(record(S.SUBMITTED), JobSnapshot(name=JOB, state=vertex), NOW)
    if expected is None:
        assert seen is None or seen.state == S.SUBMITTED
    else:
        assert seen is not None and seen.state == expected


def test_every_vertex_state_is_mapped():
    from google.cloud.aiplatform_v1.types import JobState

    assert {s.name for s in JobState} <= set(VERTEX_TO_LEDGER)  # type: ignore[attr-defined]  # proto-plus enums iterate at run time


def test_succeeded_between_two_polls_announces_running_then_succeeded():
    job = JobSnapshot(
        name=JOB, state="JOB_STATE_SUCCEEDED", started=True, tuned_model="projects/p/locations/l/models/1@1", endpoint="projects/p/locations/l/endpoints/1",
        stats={"tuningDatasetExampleCount": "3"},
    )
    seen = observed(record(S.SUBMITTED), job, NOW)
    assert seen is not None
    events = [event_from_dict(item) for item in seen.outbox]
    assert [e.type for e in events] == [EventType.JOB_RUNNING, EventType.JOB_SUCCEEDED]
    assert events[1].payload.tuned_model == "projects/p/locations/l/models/1@1"
    assert events[1].payload.endpoint == "projects/p/locations/l/endpoints/1"
    assert seen.tuning_data_stats == {"tuningDatasetExampleCount": "3"}
    assert [t.state for t in seen.history][-2:] == [S.RUNNING, S.SUCCEEDED]


def test_failed_job_carries_its_error_into_the_event():
    seen = observed(record(S.RUNNING), JobSnapshot(name=JOB, state="JOB_STATE_FAILED", started=True, error="bad data at line 3"), NOW)
    assert seen is not None
    [event] = [event_from_dict(item) for item in seen.outbox]
    assert event.type == EventType.JOB_FAILED
    assert event.payload.error == "bad data at line 3"
    assert seen.error == "bad data at line 3"


def test_same_state_seen_again_changes_nothing():
    assert observed(record(S.RUNNING, job_state="JOB_STATE_RUNNING"), JobSnapshot(name=JOB, state="JOB_STATE_RUNNING"), NOW) is None


def test_new_stats_are_kept_without_an_event():
    seen = observed(
        record(S.RUNNING, job_state="JOB_STATE_RUNNING"), JobSnapshot(name=JOB, state="JOB_STATE_RUNNING", stats={"totalBillableTokenCount": "1"}), NOW
    )
    assert seen is not None
    assert seen.tuning_data_stats == {"totalBillableTokenCount": "1"} and seen.outbox == () and seen.state == S.RUNNING


LATER = NOW + timedelta(minutes=5)


def test_a_job_state_that_would_move_backwards_is_recorded_without_a_move():
    # A RUNNING record whose job reads PENDING again (the service's view lagging): the state
    # seen is kept, the record does not move back to SUBMITTED.
    seen = observed(record(S.RUNNING, job_state="JOB_STATE_RUNNING"), JobSnapshot(name=JOB, state="JOB_STATE_PENDING"), LATER)
    assert seen is not None and seen.state == S.RUNNING and seen.job_state == "JOB_STATE_PENDING"
    assert seen.updated_at == timestamp(LATER) and seen.outbox == ()


@pytest.mark.parametrize(
    ("job", "state", "reason", "error"),
    [
        (JobSnapshot(name=JOB, state="JOB_STATE_RUNNING"), S.RUNNING, "job started", None),
        (JobSnapshot(name=JOB, state="JOB_STATE_SUCCEEDED", tuned_model="m@1", endpoint="e"), S.SUCCEEDED, "job succeeded", None),
        (JobSnapshot(name=JOB, state="JOB_STATE_FAILED", error="bad line"), S.FAILED, "job failed", "bad line"),
        (JobSnapshot(name=JOB, state="JOB_STATE_FAILED"), S.FAILED, "job failed", "job failed without an error message"),
        (JobSnapshot(name=JOB, state="JOB_STATE_EXPIRED"), S.FAILED, "job failed", "job expired"),
        (JobSnapshot(name=JOB, state="JOB_STATE_CANCELLED"), S.CANCELLED, "job cancelled", None),
        (JobSnapshot(name=JOB, state="JOB_STATE_CANCELLED", error="by the user"), S.CANCELLED, "job cancelled", "by the user"),
    ],
)
def test_each_move_seen_on_the_service_says_why_in_the_history(job, state, reason, error):
    seen = observed(record(S.SUBMITTED), job, LATER)
    assert seen is not None and seen.state == state and seen.job_state == job.state
    assert seen.history[-1].reason == reason and seen.history[-1].at == timestamp(LATER)
    assert seen.error == error
    if state == S.SUCCEEDED:
        assert (seen.tuned_model, seen.endpoint) == ("m@1", "e")


def test_a_job_that_ran_between_two_polls_is_recorded_running_first_with_what_was_seen():
    job = JobSnapshot(name=JOB, state="JOB_STATE_FAILED", started=True, error="e", stats={"totalBillableTokenCount": "9"})
    seen = observed(record(S.SUBMITTED), job, LATER)
    assert seen is not None
    assert [(t.state, t.reason) for t in seen.history][-2:] == [(S.RUNNING, "job started"), (S.FAILED, "job failed")]
    running = event_from_dict(seen.outbox[0])
    assert running.type == EventType.JOB_RUNNING and running.payload.state == "RUNNING"


def test_each_event_names_its_dataset_and_tells_the_end_fields_only_at_the_end():
    base = msgspec.structs.replace(
        record(S.RUNNING), report_uri="gs://b/reports/d.jsonl/5.json", model="gemini-2.5-flash", tuned_model="m@1", endpoint="e",
        error="why",
    )
    for state in (S.SUCCEEDED, S.FAILED, S.CANCELLED):
        [event] = [event_from_dict(item) for item in move(base, state, LATER).outbox]
        payload = event.payload
        assert (payload.idempotency_key, payload.report_uri, payload.model) == ("k" * 40, "gs://b/reports/d.jsonl/5.json", "gemini-2.5-flash")
        assert (payload.tuned_model, payload.endpoint) == (("m@1", "e") if state == S.SUCCEEDED else (None, None))
        assert payload.error == (None if state == S.SUCCEEDED else "why")


def test_a_move_stamps_the_record_and_ends_a_claim_unless_it_is_a_claim():
    claimed = move(record(S.QUEUED), S.SUBMITTING, NOW, claim_expires_at="2026-11-25T12:05:00.000000Z")
    assert claimed.claim_expires_at == "2026-11-25T12:05:00.000000Z"
    taken_again = move(claimed, S.SUBMITTING, LATER)
    assert taken_again.claim_expires_at == "2026-11-25T12:05:00.000000Z" and taken_again.updated_at == timestamp(LATER)
    queued_again = move(claimed, S.QUEUED, LATER)
    assert queued_again.claim_expires_at is None and queued_again.updated_at == timestamp(LATER)
    assert queued_again.history[-1].at == timestamp(LATER)


def test_a_new_record_holds_what_it_was_given():
    fresh = new_record(idempotency_key="k", content_key="c", dataset_uri="gs://b/d.jsonl", generation="5", now=NOW, region="europe-west4",
                       forced=True, queue_order="0005")
    assert (fresh.content_key, fresh.region, fresh.forced, fresh.queue_order) == ("c", "europe-west4", True, "0005")
    assert fresh.history[0].at == timestamp(NOW)
    plain = new_record(idempotency_key="k", content_key="c", dataset_uri="gs://b/d.jsonl", generation="5", now=NOW)
    assert (plain.forced, plain.queue_order) == (False, timestamp(NOW))  # no order given: the upload time
