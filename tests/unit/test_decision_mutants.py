"""What recording a job, cancelling a second job, quarantining a record, seeing a job on the
service and summarising its tuning stats must leave in the ledger, pinned where mutation testing
(`make mutation`) found that a changed rule in jobs/decisions.py or jobs/lifecycle.py went
unnoticed: the verdict of each decision, the record's state and fields, and the event a
subscriber reads."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from autotune.events import EventType
from autotune.jobs.decisions import (
    DUPLICATE_WATCH_SECONDS,
    QUARANTINE_HISTORY,
    quarantine,
    record_duplicate_cancelled,
    record_job_snapshot,
    record_submitted,
    release_stale_slot,
)
from autotune.jobs.documents import JobOutcome, Slots
from autotune.jobs.lifecycle import (
    JobSnapshot,
    LedgerRecord,
    LedgerState,
    Transition,
    apply_job_snapshot,
    claim_expiry,
    move,
    new_record,
    stats_summary,
    timestamp,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
KEY = "k" * 40
JOB = "projects/p/locations/us-central1/tuningJobs/7"
OTHER_JOB = "projects/p/locations/us-central1/tuningJobs/8"


def accepted() -> LedgerRecord:
    return new_record(
        idempotency_key=KEY,
        content_key="c" * 40,
        dataset_uri="gs://b/incoming/d.jsonl",
        generation="5",
        now=NOW,
        model="gemini-2.5-flash",
    )


def submitting(**fields: Any) -> LedgerRecord:
    claimed = move(
        accepted(), LedgerState.SUBMITTING, NOW, attempts=1, claim_expires_at=timestamp(NOW)
    )
    return msgspec.structs.replace(claimed, outbox=(), **fields)


def submitted(**fields: Any) -> LedgerRecord:
    done = move(submitting(), LedgerState.SUBMITTED, NOW, job_name=JOB)
    return msgspec.structs.replace(done, outbox=(), **fields)


def running() -> LedgerRecord:
    return msgspec.structs.replace(
        move(submitted(), LedgerState.RUNNING, NOW, job_state="JOB_STATE_RUNNING"), outbox=()
    )


# --- record_submitted: the job a submission made or found ---------------------------------------


@pytest.mark.parametrize(
    ("adopted", "why"),
    [(False, "job created"), (True, "adopted the job found by its label")],
)
def test_a_recorded_job_names_the_job_its_state_and_whether_it_was_created_or_adopted(adopted, why):
    change = record_submitted(
        submitting(),
        Slots(active={KEY: timestamp(NOW)}),
        job=JobSnapshot(name=JOB, state="JOB_STATE_QUEUED"),
        adopted=adopted,
        now=LATER,
    )
    assert change is not None and change.outcome is JobOutcome.SUBMITTED
    done = change.record
    assert done is not None and done.state is LedgerState.SUBMITTED
    assert (done.job_name, done.job_state) == (JOB, "JOB_STATE_QUEUED")
    # The operator reads why in the history; the subscriber in the submitted event.
    assert done.history[-1].reason == why
    [event] = done.outbox
    assert event.type == EventType.JOB_SUBMITTED and event.payload.reason == why
    # A first attempt that was answered made at most this job: nothing to watch for.
    assert done.duplicate_watch_until is None


@pytest.mark.parametrize(
    ("failed_attempts", "create_unanswered"),
    [(1, False), (3, False), (0, True)],
    ids=["one-attempt-died", "several-attempts-died", "a-create-went-unanswered"],
)
def test_after_an_attempt_without_an_answer_the_recorded_job_is_watched_for_a_second_one(
    failed_attempts, create_unanswered
):
    # The unanswered attempt may have made a job that the label lookup did not show yet.
    change = record_submitted(
        submitting(failed_attempts=failed_attempts, create_unanswered=create_unanswered),
        Slots(active={KEY: timestamp(NOW)}),
        job=JobSnapshot(name=JOB, state="JOB_STATE_PENDING"),
        adopted=False,
        now=LATER,
    )
    assert change is not None and change.record is not None
    assert change.record.duplicate_watch_until == claim_expiry(LATER, DUPLICATE_WATCH_SECONDS)


def test_a_job_recorded_twice_writes_nothing_and_another_job_is_a_conflict():
    already = submitted()
    same = record_submitted(
        already,
        Slots(),
        job=JobSnapshot(name=JOB, state="JOB_STATE_RUNNING"),
        adopted=True,
        now=LATER,
    )
    assert same is None  # another delivery recorded this very job: nothing to write
    # A second job for a dataset whose record names another: the submitter cancels the job it
    # created on this verdict, and the record keeps the job it has.
    other = record_submitted(
        already,
        Slots(),
        job=JobSnapshot(name=OTHER_JOB, state="JOB_STATE_QUEUED"),
        adopted=False,
        now=LATER,
    )
    assert other is not None and other.outcome is JobOutcome.CONFLICT
    assert other.record is None and other.slots is None


# --- record_duplicate_cancelled: the event a subscriber reads -----------------------------------


def test_the_duplicate_cancelled_event_names_the_dataset_its_model_and_its_state():
    change = record_duplicate_cancelled(running(), Slots(), job_name=OTHER_JOB, now=LATER)
    assert change is not None and change.record is not None
    [event] = change.record.outbox
    assert event.type == EventType.JOB_DUPLICATE_CANCELLED
    payload = event.payload
    assert (payload.dataset_uri, payload.generation) == ("gs://b/incoming/d.jsonl", "5")
    assert (payload.idempotency_key, payload.model, payload.state) == (
        KEY,
        "gemini-2.5-flash",
        "RUNNING",
    )
    assert payload.job_name == OTHER_JOB


# --- record_job_snapshot: which snapshots touch the record ---------------------------------------


def test_a_snapshot_of_another_job_or_of_an_ended_record_leaves_the_record_alone():
    running_job = JobSnapshot(name=JOB, state="JOB_STATE_RUNNING", started=True)
    # The record names job 7; job 8 carrying the same label is not its job.
    assert (
        record_job_snapshot(
            submitted(),
            Slots(),
            job=JobSnapshot(name=OTHER_JOB, state="JOB_STATE_RUNNING", started=True),
            now=LATER,
        )
        is None
    )
    # An ended record is final, whatever its job is said to do afterwards.
    ended = msgspec.structs.replace(submitted(), state=LedgerState.FAILED, job_state="X")
    assert record_job_snapshot(ended, Slots(), job=running_job, now=LATER) is None


def test_a_snapshot_that_moves_the_record_is_a_change_and_frees_the_slot_only_at_the_end():
    slots = Slots(active={KEY: timestamp(NOW), "other": timestamp(NOW)})
    started = record_job_snapshot(
        submitted(),
        slots,
        job=JobSnapshot(name=JOB, state="JOB_STATE_RUNNING", started=True),
        now=LATER,
    )
    assert started is not None and started.outcome is JobOutcome.CHANGED
    assert started.record is not None and started.record.state is LedgerState.RUNNING
    assert started.slots is None  # still running: the slot stays taken
    ended = record_job_snapshot(
        running(), slots, job=JobSnapshot(name=JOB, state="JOB_STATE_SUCCEEDED"), now=LATER
    )
    assert ended is not None and ended.outcome is JobOutcome.CHANGED
    assert ended.record is not None and ended.record.state is LedgerState.SUCCEEDED
    assert ended.slots == Slots(active={"other": timestamp(NOW)})


def test_a_slot_whose_record_is_gone_is_released_as_a_change_of_the_slots_only():
    change = release_stale_slot(None, KEY, Slots(active={KEY: timestamp(NOW)}))
    assert change is not None and change.outcome is JobOutcome.CHANGED
    assert change.slots == Slots() and change.record is None


# --- quarantine: what the slimmed record keeps --------------------------------------------------


def test_a_quarantined_record_keeps_its_latest_transitions_and_no_outbox_lease():
    long_past = tuple(
        Transition(state=LedgerState.QUEUED, at=timestamp(NOW), reason=f"wait {n}")
        for n in range(QUARANTINE_HISTORY + 15)
    )
    record = msgspec.structs.replace(
        move(accepted(), LedgerState.QUEUED, NOW),
        history=long_past,
        outbox_lease_until=timestamp(LATER + timedelta(minutes=1)),
    )
    change = quarantine(record, Slots(queued={KEY: "0001"}), error="too large", now=LATER)
    assert change is not None and change.record is not None
    failed = change.record
    # The latest moves are the ones an operator needs to see how the record got here.
    assert failed.history[:-1] == long_past[-QUARANTINE_HISTORY:]
    assert failed.history[-1].state is LedgerState.FAILED
    # The old outbox is gone, so is its lease: the FAILED event is published without waiting.
    assert failed.outbox_lease_until is None
    assert [event.type for event in failed.outbox] == [EventType.JOB_FAILED]


# --- the tuning stats summary ---------------------------------------------------------------------


def test_the_stats_summary_keeps_numbers_only_and_number_text_up_to_its_limit():
    summary = stats_summary(
        {
            "tuningStepCount": True,  # a flag is not a count
            "tuningDatasetExampleCount": "many",
            "totalBillableTokenCount": "1" * 32,
            "totalTuningCharacterCount": "1" * 33,
            "userInputTokenDistribution": {"mean": "n/a", "max": False, "min": 3},
        }
    )
    assert summary == {
        "totalBillableTokenCount": "1" * 32,
        "userInputTokenDistribution": {"min": 3},
    }


def test_the_number_of_dropped_and_truncated_examples_reaches_the_record():
    # The adapter summarises the service's stats into the snapshot, and seeing the snapshot
    # summarises them again: the counts must survive the second pass, not only the lists.
    service_stats = {
        "tuningDatasetExampleCount": "40",
        "droppedExampleReasons": ["too long: ...", "no model turn", "empty"],
        "truncatedExampleIndices": [4, 9],
    }
    snapshot = JobSnapshot(
        name=JOB, state="JOB_STATE_RUNNING", started=True, stats=stats_summary(service_stats)
    )
    seen = apply_job_snapshot(submitted(), snapshot, LATER)
    assert seen is not None and seen.tuning_data_stats == {
        "tuningDatasetExampleCount": "40",
        "droppedExampleCount": 3,
        "truncatedExampleIndexCount": 2,
    }


# --- timestamps -----------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(time, "tzset"), reason="the host's zone is set with time.tzset")
def test_timestamps_are_utc_on_a_host_whose_clock_is_not():
    # Ledger times are compared as text and parsed back as UTC: a local time marked Z would move
    # every claim expiry and quota pause by the host's offset.
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        assert timestamp(NOW) == "2026-11-25T12:00:00.000000Z"
        paris = datetime(2026, 11, 25, 13, 0, tzinfo=timezone(timedelta(hours=1)))
        assert timestamp(paris) == "2026-11-25T12:00:00.000000Z"
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()
