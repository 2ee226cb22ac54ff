"""Rules of the submit and status core that mutation testing (`make mutation`) found no test
for: each test here fails when its rule is deleted or inverted."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from job_doubles import (
    FakeTuningService,
    MemoryLedger,
    RecordingPublisher,
    SteppingClock,
    StubCatalog,
    make_request,
)

from autotune.job_lifecycle import LedgerState
from autotune.submission import (
    ClaimView,
    Outcome,
    Pipeline,
    Slots,
    decide_claim,
    status_tick,
    submit,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def world():
    ledger, service, bus, clock = MemoryLedger(), FakeTuningService(), RecordingPublisher(), SteppingClock()
    pipeline = Pipeline(ledger=ledger, service=service, publisher=bus, catalog=StubCatalog(), project="p", max_jobs=1, clock=clock, claim_seconds=60)
    return pipeline, ledger, service


def test_a_new_dataset_queues_behind_a_waiting_one_even_when_a_slot_is_free():
    # First in, first out: a free slot belongs to the head of the queue (the tick promotes it),
    # not to whoever arrives while the head waits (for a quota pause, say).
    waiting = Slots(queued={"older": "00000000000000000001"})
    change = decide_claim(ClaimView(record=None, content_owner=None, slots=waiting), make_request(), now=NOW, max_jobs=2)
    assert change.outcome is Outcome.QUEUED
    assert change.record is not None and change.record.state is LedgerState.QUEUED
    assert change.slots is not None and change.slots.active == {}
    assert set(change.slots.queued) == {"older", make_request().idempotency_key}


def test_with_an_empty_queue_and_a_free_slot_a_new_dataset_is_submitted_at_once():
    change = decide_claim(ClaimView(record=None, content_owner=None, slots=Slots()), make_request(), now=NOW, max_jobs=1)
    assert change.outcome is Outcome.SUBMIT and change.slots is not None
    assert list(change.slots.active) == [make_request().idempotency_key] and change.slots.queued == {}


@pytest.mark.parametrize("held", ["active", "queued"])
def test_a_tick_frees_a_slot_or_queue_place_whose_record_is_gone(world, held):
    pipeline, ledger, service = world
    # A record deleted by hand (or lost with an emulator restart) left its place in the slots.
    ledger.slot_doc = Slots(**{held: {"gone": "2026-11-25T11:00:00.000000Z"}})
    status_tick(pipeline)
    assert ledger.slots() == Slots()
    # The place is usable again: the next dataset goes straight to the service.
    assert submit(pipeline, make_request()) == Outcome.SUBMITTED
    assert len(service.created) == 1


def test_a_tick_frees_the_slot_of_a_record_that_ended_without_giving_it_back(world):
    pipeline, ledger, _ = world
    request = make_request()
    assert submit(pipeline, request) == Outcome.SUBMITTED
    record = ledger.get(request.idempotency_key)
    assert record is not None
    # The record ended, but the slots document still counts it (a crash between the two writes
    # of an older version, say): the tick notices and frees the slot.
    ledger.docs[request.idempotency_key] = msgspec.structs.replace(record, state=LedgerState.FAILED, job_name=None)
    assert ledger.slots().active
    status_tick(pipeline)
    assert ledger.slots() == Slots()
