"""One contract for both ledgers: the in-memory one the unit tests hand the core, and the
Firestore one against the real emulator. A behaviour the core relies on is written once here, so
the double cannot drift from the adapter unnoticed.

`connect()` gives a new handle on the same ledger: the same object in memory; a new client and
FirestoreLedger on the same collections in Firestore, so competing handles contend the way
separate function instances do (one FirestoreLedger serialises its own threads with a lock).
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from autotune.events import EventPayload, EventType, TuningEvent
from autotune.jobs.documents import Change, ClaimView, JobOutcome, Slots
from autotune.jobs.lifecycle import LedgerRecord, LedgerState
from autotune.jobs.ports import Ledger

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1] / "unit")
)  # the doubles live beside the unit tests
from job_doubles import MemoryLedger

T0 = "2026-12-01T10:00:00.000000Z"


def event(event_id: str) -> TuningEvent:
    payload = EventPayload(dataset_uri="gs://b/incoming/a.jsonl", generation="1")
    return TuningEvent(type=EventType.JOB_RUNNING, payload=payload, time=T0, id=event_id)


def record(
    key: str, *, state: LedgerState = LedgerState.QUEUED, created_at: str = T0, **fields: object
) -> LedgerRecord:
    return LedgerRecord(
        idempotency_key=key,
        content_key=f"content-{key}",
        dataset_uri=f"gs://b/incoming/{key}.jsonl",
        generation="1",
        state=state,
        created_at=created_at,
        updated_at=created_at,
        **fields,  # type: ignore[arg-type]  # msgspec checks the fields
    )


@pytest.fixture(params=["memory", pytest.param("firestore", marks=pytest.mark.integration)])
def connect(request: pytest.FixtureRequest) -> Callable[[], Ledger]:
    if request.param == "memory":
        ledger = MemoryLedger()
        return lambda: ledger
    from autotune.adapters.ledger import FirestoreLedger

    stack = request.getfixturevalue("local_stack")
    collection = f"contract-{uuid.uuid4().hex[:10]}"  # a ledger of its own for each test
    return lambda: FirestoreLedger(stack.firestore_client(), collection)


def first_claim_wins(key: str) -> Callable[[ClaimView], Change]:
    def decide(view: ClaimView) -> Change:
        if view.record is not None:
            return Change(JobOutcome.DUPLICATE)
        return Change(
            JobOutcome.QUEUED,
            record=record(key),
            slots=view.slots.waiting(key, T0),
            content_owner_key=key,
        )

    return decide


def in_threads(count: int, work: Callable[[int], object]) -> list[object]:
    results: list[object] = [None] * count
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = work(i)
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_competing_claims_have_exactly_one_winner(connect) -> None:
    handles = [connect() for _ in range(4)]
    outcomes = in_threads(
        4, lambda i: handles[i].claim("k1", "content-k1", first_claim_wins("k1")).outcome
    )
    assert outcomes.count(JobOutcome.QUEUED) == 1 and outcomes.count(JobOutcome.DUPLICATE) == 3
    ledger = connect()
    assert ledger.get("k1") == record("k1")
    assert ledger.slots() == Slots(queued={"k1": T0})


def test_a_claim_sees_the_record_that_owns_its_content(connect) -> None:
    ledger = connect()
    ledger.claim("k1", "same-bytes", first_claim_wins("k1"))
    seen: list[ClaimView] = []

    def decide(view: ClaimView) -> Change:
        seen.append(view)
        return Change(
            JobOutcome.SKIPPED, record=record("k2", state=LedgerState.SKIPPED, duplicate_of="k1")
        )

    assert ledger.claim("k2", "same-bytes", decide).outcome is JobOutcome.SKIPPED
    assert seen[-1].record is None and seen[-1].content_owner == record("k1")
    assert seen[-1].slots == Slots(queued={"k1": T0})
    assert ledger.get("k2") == record("k2", state=LedgerState.SKIPPED, duplicate_of="k1")
    # The content entry still names k1: k2's change did not set content_owner_key.
    connect().claim("k3", "same-bytes", decide)
    assert seen[-1].content_owner == record("k1")


def test_an_update_of_an_existing_record_writes_what_the_decision_returns(connect) -> None:
    ledger = connect()
    ledger.claim("k1", "content-k1", first_claim_wins("k1"))
    seen: list[tuple[LedgerRecord, Slots]] = []

    def submit(current: LedgerRecord, slots: Slots) -> Change:
        seen.append((current, slots))
        moved = msgspec.structs.replace(
            current, state=LedgerState.SUBMITTING, attempts=current.attempts + 1
        )
        return Change(JobOutcome.SUBMITTED, record=moved, slots=slots.holding("k1", T0))

    change = ledger.update("k1", submit)
    assert change is not None and change.outcome is JobOutcome.SUBMITTED
    assert seen == [(record("k1"), Slots(queued={"k1": T0}))]
    again = connect()
    assert again.get("k1") == record("k1", state=LedgerState.SUBMITTING, attempts=1)
    assert again.slots() == Slots(active={"k1": T0})
    # A decision that returns None writes nothing.
    assert again.update("k1", lambda current, slots: None) is None
    assert connect().get("k1") == record("k1", state=LedgerState.SUBMITTING, attempts=1)


def test_an_update_of_a_missing_record_decides_only_through_update_or_absent(connect) -> None:
    ledger = connect()
    calls: list[object] = []

    def decide(current, slots: Slots) -> Change:
        calls.append(current)
        return Change(JobOutcome.CHANGED, slots=slots.without("gone"))

    assert ledger.update("gone", decide) is None
    assert calls == []
    change = ledger.update_or_absent("gone", decide)
    assert change is not None and change.outcome is JobOutcome.CHANGED
    assert calls == [None]
    assert ledger.get("gone") is None


def test_concurrent_updates_lose_no_write(connect) -> None:
    connect().claim("k1", "content-k1", first_claim_wins("k1"))
    handles = [connect() for _ in range(3)]

    def bump(current: LedgerRecord, slots: Slots) -> Change:
        return Change(
            JobOutcome.CHANGED,
            record=msgspec.structs.replace(current, attempts=current.attempts + 1),
        )

    def work(i: int) -> None:
        for _ in range(3):
            handles[i].update("k1", bump)

    in_threads(3, work)
    found = connect().get("k1")
    assert found is not None and found.attempts == 9


def test_listing_filters_by_state_in_upload_order_and_finds_the_outbox(connect) -> None:
    ledger = connect()
    rows = [
        record("b", created_at="2026-12-01T10:00:02.000000Z"),
        record(
            "a",
            created_at="2026-12-01T10:00:02.000000Z",
            state=LedgerState.RUNNING,
            outbox=(event("e1"), event("e2")),
        ),
        record("c", created_at="2026-12-01T10:00:01.000000Z", state=LedgerState.SUCCEEDED),
    ]
    for row in rows:
        ledger.claim(
            row.idempotency_key,
            row.content_key,
            lambda view, row=row: Change(JobOutcome.CHANGED, record=row),
        )
    assert [r.idempotency_key for r in ledger.records()] == ["c", "a", "b"]
    assert [
        r.idempotency_key for r in ledger.records([LedgerState.QUEUED, LedgerState.RUNNING])
    ] == ["a", "b"]
    assert ledger.records([LedgerState.FAILED]) == []
    assert [r.idempotency_key for r in ledger.with_outbox()] == ["a"]

    ledger.clear_outbox("a", ["e1", "unknown"])
    assert connect().get("a") == msgspec.structs.replace(rows[1], outbox=(event("e2"),))
    ledger.clear_outbox("a", ["e2"])
    assert connect().with_outbox() == []
    ledger.clear_outbox("never-written", ["e1"])  # nothing to clear: no error, no record
    assert connect().get("never-written") is None
