"""The ledger state machine: allowed moves, events per arrival, Vertex state mapping."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from autotune.events import EventType
from autotune.jobs.lifecycle import (
    ENDED_STATES,
    EVENT_ON_ENTRY,
    TRANSITIONS,
    VERTEX_TO_LEDGER,
    IllegalTransition,
    JobSnapshot,
    LedgerRecord,
    LedgerState,
    apply_job_snapshot,
    claim_expired,
    move,
    new_record,
    parse_timestamp,
    timestamp,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
JOB = "projects/p/locations/us-central1/tuningJobs/7"
LATER = NOW + timedelta(minutes=5)


def record(state: LedgerState = LedgerState.ACCEPTED, **fields) -> LedgerRecord:
    base = new_record(
        idempotency_key="k" * 40,
        content_key="c" * 40,
        dataset_uri="gs://b/incoming/d.jsonl",
        generation="5",
        now=NOW,
    )
    path = {
        LedgerState.ACCEPTED: [],
        LedgerState.QUEUED: [LedgerState.QUEUED],
        LedgerState.SUBMITTING: [LedgerState.SUBMITTING],
        LedgerState.SUBMITTED: [LedgerState.SUBMITTING, LedgerState.SUBMITTED],
        LedgerState.RUNNING: [LedgerState.SUBMITTING, LedgerState.SUBMITTED, LedgerState.RUNNING],
    }[state]
    for step in path:
        base = move(
            base,
            step,
            NOW,
            job_name=JOB if step in {LedgerState.SUBMITTED, LedgerState.RUNNING} else None,
        )
    return base.__class__(
        **{**{f: getattr(base, f) for f in base.__struct_fields__}, "outbox": (), **fields}
    )


def test_every_state_has_a_transition_entry_and_an_event_entry():
    assert set(TRANSITIONS) == set(LedgerState)
    assert set(EVENT_ON_ENTRY) == set(LedgerState)
    assert {
        LedgerState.SUCCEEDED,
        LedgerState.FAILED,
        LedgerState.CANCELLED,
        LedgerState.SKIPPED,
    } == ENDED_STATES


def test_ended_states_cannot_move():
    for state in ENDED_STATES:
        for target in LedgerState:
            assert target not in TRANSITIONS[state]


def test_illegal_move_names_the_states_and_the_record():
    with pytest.raises(IllegalTransition, match=r"gs://b/incoming/d.jsonl.*ACCEPTED -> SUCCEEDED"):
        move(record(), LedgerState.SUCCEEDED, NOW)


def test_move_records_history_and_puts_the_event_in_the_outbox():
    moved = move(record(), LedgerState.QUEUED, NOW + timedelta(seconds=1), reason="slots full")
    assert [t.state for t in moved.history] == [LedgerState.ACCEPTED, LedgerState.QUEUED]
    assert moved.history[-1].at == "2026-11-25T12:00:01.000000Z"
    assert moved.history[-1].reason == "slots full"
    [event] = moved.outbox
    assert event.type == EventType.JOB_QUEUED
    assert event.payload.state == "QUEUED"
    assert event.payload.reason == "slots full"


def test_internal_moves_publish_nothing():
    assert move(record(), LedgerState.SUBMITTING, NOW).outbox == ()


def test_event_ids_are_stable_and_tell_two_queued_arrivals_apart():
    first = move(record(), LedgerState.QUEUED, NOW)
    again = move(record(), LedgerState.QUEUED, NOW + timedelta(hours=1))
    assert first.outbox[0].id == again.outbox[0].id
    requeued = move(
        move(move(record(), LedgerState.QUEUED, NOW), LedgerState.SUBMITTING, NOW),
        LedgerState.QUEUED,
        NOW,
    )
    assert requeued.outbox[0].id != requeued.outbox[1].id


def test_claim_expiry():
    claimed = move(
        record(),
        LedgerState.SUBMITTING,
        NOW,
        claim_expires_at=timestamp(NOW + timedelta(seconds=30)),
    )
    assert not claim_expired(claimed, NOW + timedelta(seconds=29))
    assert claim_expired(claimed, NOW + timedelta(seconds=30))
    assert not claim_expired(record(LedgerState.QUEUED), NOW + timedelta(days=1))


def test_timestamps_sort_as_text_in_time_order():
    a, b = timestamp(NOW), timestamp(NOW + timedelta(microseconds=1))
    assert a < b and parse_timestamp(a) == NOW


@pytest.mark.parametrize(
    ("vertex", "expected"),
    [
        ("JOB_STATE_QUEUED", None),
        ("JOB_STATE_PENDING", None),
        ("JOB_STATE_RUNNING", LedgerState.RUNNING),
        ("JOB_STATE_CANCELLING", None),
        ("JOB_STATE_SUCCEEDED", LedgerState.SUCCEEDED),
        ("JOB_STATE_FAILED", LedgerState.FAILED),
        ("JOB_STATE_CANCELLED", LedgerState.CANCELLED),
        ("JOB_STATE_EXPIRED", LedgerState.FAILED),
    ],
)
def test_observed_maps_vertex_states_from_submitted(vertex, expected):
    seen = apply_job_snapshot(
        record(LedgerState.SUBMITTED), JobSnapshot(name=JOB, state=vertex), NOW
    )
    if expected is None:
        assert seen is None or seen.state == LedgerState.SUBMITTED
    else:
        assert seen is not None and seen.state == expected


def test_every_vertex_state_is_mapped():
    from google.cloud.aiplatform_v1.types import JobState

    assert {s.name for s in JobState} <= set(VERTEX_TO_LEDGER)  # type: ignore[attr-defined]  # proto-plus enums iterate at run time


def test_succeeded_between_two_polls_announces_running_then_succeeded():
    job = JobSnapshot(
        name=JOB,
        state="JOB_STATE_SUCCEEDED",
        started=True,
        tuned_model="projects/p/locations/l/models/1@1",
        endpoint="projects/p/locations/l/endpoints/1",
        stats={"tuningDatasetExampleCount": "3"},
    )
    seen = apply_job_snapshot(record(LedgerState.SUBMITTED), job, NOW)
    assert seen is not None
    events = list(seen.outbox)
    assert [e.type for e in events] == [EventType.JOB_RUNNING, EventType.JOB_SUCCEEDED]
    assert events[1].payload.tuned_model == "projects/p/locations/l/models/1@1"
    assert events[1].payload.endpoint == "projects/p/locations/l/endpoints/1"
    assert seen.tuning_data_stats == {"tuningDatasetExampleCount": "3"}
    assert [t.state for t in seen.history][-2:] == [LedgerState.RUNNING, LedgerState.SUCCEEDED]


def test_failed_job_carries_its_error_into_the_event():
    seen = apply_job_snapshot(
        record(LedgerState.RUNNING),
        JobSnapshot(name=JOB, state="JOB_STATE_FAILED", started=True, error="bad data at line 3"),
        NOW,
    )
    assert seen is not None
    [event] = seen.outbox
    assert event.type == EventType.JOB_FAILED
    assert event.payload.error == "bad data at line 3"
    assert seen.error == "bad data at line 3"


def test_same_state_seen_again_changes_nothing():
    assert (
        apply_job_snapshot(
            record(LedgerState.RUNNING, job_state="JOB_STATE_RUNNING"),
            JobSnapshot(name=JOB, state="JOB_STATE_RUNNING"),
            NOW,
        )
        is None
    )


def test_new_stats_are_kept_without_an_event():
    seen = apply_job_snapshot(
        record(LedgerState.RUNNING, job_state="JOB_STATE_RUNNING"),
        JobSnapshot(name=JOB, state="JOB_STATE_RUNNING", stats={"totalBillableTokenCount": "1"}),
        NOW,
    )
    assert seen is not None
    assert (
        seen.tuning_data_stats == {"totalBillableTokenCount": "1"}
        and seen.outbox == ()
        and seen.state == LedgerState.RUNNING
    )


# A QUEUED record as the ledger stored it before outbox events were typed (each event the JSON
# object it is published as): such records must load, and a record must still be stored so.
STORED_QUEUED_RECORD = {
    "idempotency_key": "k1",
    "content_key": "c1",
    "dataset_uri": "gs://b/incoming/a.jsonl",
    "generation": "7",
    "state": "QUEUED",
    "history": [
        {"state": "ACCEPTED", "at": "2026-12-01T12:00:00.000000Z"},
        {
            "state": "QUEUED",
            "at": "2026-12-01T12:00:00.000000Z",
            "reason": "1 of 1 job slots in use, 0 waiting",
        },
    ],
    "created_at": "2026-12-01T12:00:00.000000Z",
    "updated_at": "2026-12-01T12:00:00.000000Z",
    "report_uri": "gs://b/reports/incoming/a.jsonl/7.json",
    "model": "gemini-3.5-flash",
    "region": "us-central1",
    "queue_order": "00000000000000000007",
    "reason": "1 of 1 job slots in use, 0 waiting",
    "outbox": [
        {
            "type": "autotune.job.v1.queued",
            "payload": {
                "dataset_uri": "gs://b/incoming/a.jsonl",
                "generation": "7",
                "idempotency_key": "k1",
                "report_uri": "gs://b/reports/incoming/a.jsonl/7.json",
                "model": "gemini-3.5-flash",
                "state": "QUEUED",
                "reason": "1 of 1 job slots in use, 0 waiting",
            },
            "time": "2026-12-01T12:00:00Z",
            "id": "2e4e91209621878e3ec91ca673b16cf0",
        }
    ],
}


def test_outbox_events_are_stored_as_the_json_they_are_published_as():

    from autotune.events import TuningEvent

    stamp = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    fresh = new_record(
        idempotency_key="k1",
        content_key="c1",
        dataset_uri="gs://b/incoming/a.jsonl",
        generation="7",
        now=stamp,
        report_uri="gs://b/reports/incoming/a.jsonl/7.json",
        request=None,
        model="gemini-3.5-flash",
        region="us-central1",
        queue_order="00000000000000000007",
        forced=False,
    )
    queued = move(fresh, LedgerState.QUEUED, stamp, reason="1 of 1 job slots in use, 0 waiting")
    assert (
        msgspec.json.decode(msgspec.json.encode(msgspec.to_builtins(queued)))
        == STORED_QUEUED_RECORD
    )
    loaded = msgspec.convert(STORED_QUEUED_RECORD, LedgerRecord)
    assert loaded == queued and isinstance(loaded.outbox[0], TuningEvent)
    assert loaded.outbox[0].id == "2e4e91209621878e3ec91ca673b16cf0"


def test_a_job_state_that_would_move_backwards_is_recorded_without_a_move():
    # A RUNNING record whose job reads PENDING again (the service's view lagging): the state
    # seen is kept, the record does not move back to SUBMITTED.
    seen = apply_job_snapshot(
        record(LedgerState.RUNNING, job_state="JOB_STATE_RUNNING"),
        JobSnapshot(name=JOB, state="JOB_STATE_PENDING"),
        LATER,
    )
    assert (
        seen is not None
        and seen.state == LedgerState.RUNNING
        and seen.job_state == "JOB_STATE_PENDING"
    )
    assert seen.updated_at == timestamp(LATER) and seen.outbox == ()


def test_a_job_that_ran_between_two_polls_is_recorded_running_first_with_what_was_seen():
    job = JobSnapshot(
        name=JOB,
        state="JOB_STATE_FAILED",
        started=True,
        error="e",
        stats={"totalBillableTokenCount": "9"},
    )
    seen = apply_job_snapshot(record(LedgerState.SUBMITTED), job, LATER)
    assert seen is not None
    assert [(t.state, t.reason) for t in seen.history][-2:] == [
        (LedgerState.RUNNING, "job started"),
        (LedgerState.FAILED, "job failed"),
    ]
    running = seen.outbox[0]
    assert running.type == EventType.JOB_RUNNING and running.payload.state == "RUNNING"


def test_a_move_stamps_the_record_and_ends_a_claim_unless_it_is_a_claim():
    claimed = move(
        record(LedgerState.QUEUED),
        LedgerState.SUBMITTING,
        NOW,
        claim_expires_at="2026-11-25T12:05:00.000000Z",
    )
    assert claimed.claim_expires_at == "2026-11-25T12:05:00.000000Z"
    taken_again = move(claimed, LedgerState.SUBMITTING, LATER)
    assert (
        taken_again.claim_expires_at == "2026-11-25T12:05:00.000000Z"
        and taken_again.updated_at == timestamp(LATER)
    )
    queued_again = move(claimed, LedgerState.QUEUED, LATER)
    assert queued_again.claim_expires_at is None and queued_again.updated_at == timestamp(LATER)
    assert queued_again.history[-1].at == timestamp(LATER)


def test_a_new_record_holds_what_it_was_given():
    fresh = new_record(
        idempotency_key="k",
        content_key="c",
        dataset_uri="gs://b/d.jsonl",
        generation="5",
        now=NOW,
        region="europe-west4",
        forced=True,
        queue_order="0005",
    )
    assert (fresh.content_key, fresh.region, fresh.forced, fresh.queue_order) == (
        "c",
        "europe-west4",
        True,
        "0005",
    )
    assert fresh.history[0].at == timestamp(NOW)
    plain = new_record(
        idempotency_key="k", content_key="c", dataset_uri="gs://b/d.jsonl", generation="5", now=NOW
    )
    assert (plain.forced, plain.queue_order) == (
        False,
        timestamp(NOW),
    )  # no order given: the upload time


def test_each_event_names_its_dataset_and_tells_the_end_fields_only_at_the_end():
    base = msgspec.structs.replace(
        record(LedgerState.RUNNING),
        report_uri="gs://b/reports/d.jsonl/5.json",
        model="gemini-2.5-flash",
        tuned_model="m@1",
        endpoint="e",
        error="why",
    )
    for state in (LedgerState.SUCCEEDED, LedgerState.FAILED, LedgerState.CANCELLED):
        [event] = move(base, state, LATER).outbox
        payload = event.payload
        assert (payload.idempotency_key, payload.report_uri, payload.model) == (
            "k" * 40,
            "gs://b/reports/d.jsonl/5.json",
            "gemini-2.5-flash",
        )
        assert (payload.tuned_model, payload.endpoint) == (
            ("m@1", "e") if state == LedgerState.SUCCEEDED else (None, None)
        )
        assert payload.error == (None if state == LedgerState.SUCCEEDED else "why")


@pytest.mark.parametrize(
    ("job", "state", "reason", "error"),
    [
        (
            JobSnapshot(name=JOB, state="JOB_STATE_RUNNING"),
            LedgerState.RUNNING,
            "job started",
            None,
        ),
        (
            JobSnapshot(name=JOB, state="JOB_STATE_SUCCEEDED", tuned_model="m@1", endpoint="e"),
            LedgerState.SUCCEEDED,
            "job succeeded",
            None,
        ),
        (
            JobSnapshot(name=JOB, state="JOB_STATE_FAILED", error="bad line"),
            LedgerState.FAILED,
            "job failed",
            "bad line",
        ),
        (
            JobSnapshot(name=JOB, state="JOB_STATE_FAILED"),
            LedgerState.FAILED,
            "job failed",
            "job failed without an error message",
        ),
        (
            JobSnapshot(name=JOB, state="JOB_STATE_EXPIRED"),
            LedgerState.FAILED,
            "job failed",
            "job expired",
        ),
        (
            JobSnapshot(name=JOB, state="JOB_STATE_CANCELLED"),
            LedgerState.CANCELLED,
            "job cancelled",
            None,
        ),
        (
            JobSnapshot(name=JOB, state="JOB_STATE_CANCELLED", error="by the user"),
            LedgerState.CANCELLED,
            "job cancelled",
            "by the user",
        ),
    ],
)
def test_each_move_seen_on_the_service_says_why_in_the_history(job, state, reason, error):
    seen = apply_job_snapshot(record(LedgerState.SUBMITTED), job, LATER)
    assert seen is not None and seen.state == state and seen.job_state == job.state
    assert seen.history[-1].reason == reason and seen.history[-1].at == timestamp(LATER)
    assert seen.error == error
    if state == LedgerState.SUCCEEDED:
        assert (seen.tuned_model, seen.endpoint) == ("m@1", "e")
