"""A submitter slowed down past its claim must not create a job after someone else took the
dataset over: the claim is confirmed (and renewed) in the ledger right before every create.
And a claim counts from when it is written: its expiry is worked out inside its transaction,
after any wait for another transaction's locks (the Firestore emulator keeps a killed client's
locks for about a minute), never from a clock read before.

Each test forces one interleaving in one process: a slow label lookup, a create on its way or a
transaction waiting on a lock is where the clock moves and another status tick runs."""

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from job_doubles import (
    MemoryLedger,
    SteppingClock,
    make_request,
    memory_pipeline,
)

from autotune.jobs.decisions import confirm_claim, holds_claim
from autotune.jobs.documents import JobOutcome, Slots
from autotune.jobs.lifecycle import LedgerRecord, LedgerState, new_record, parse_timestamp
from autotune.jobs.pipeline import Pipeline
from autotune.jobs.ports import ErrorKind, TuningServiceError
from autotune.jobs.submit import submit_request
from autotune.jobs.tick import status_tick


@pytest.fixture
def world():
    return memory_pipeline()


def test_a_holder_whose_claim_was_taken_over_during_its_lookup_creates_nothing(world):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    taken_over = []

    def claim_expires_and_the_tick_takes_over():
        clock.advance(pipeline.claim_seconds + 1)
        taken_over.append(status_tick(pipeline).taken_over)

    service.after_next_lookup = claim_expires_and_the_tick_takes_over
    assert submit_request(pipeline, request) == JobOutcome.DUPLICATE
    assert taken_over == [1]
    assert len(service.created) == 1, "the slow holder created a second job"
    record = ledger.get(request.idempotency_key)
    assert record is not None and record.state == LedgerState.SUBMITTED
    assert record.job_name == next(iter(service.jobs))
    assert record.attempts == 2
    assert bus.types().count("submitted") == 1


def test_a_slow_take_over_that_was_taken_over_again_creates_nothing(world):
    pipeline, ledger, service, _, clock = world
    request = make_request()
    service.fail_next(ErrorKind.TRANSIENT, "unavailable")  # the first create is refused, no job
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    assert not service.jobs
    clock.advance(pipeline.create_settle_seconds + 1)
    again = []

    def a_second_tick_takes_over_the_first_ticks_claim():
        clock.advance(pipeline.claim_seconds + 1)
        again.append(status_tick(pipeline).taken_over)

    service.after_next_lookup = a_second_tick_takes_over_the_first_ticks_claim
    assert status_tick(pipeline).taken_over == 1
    assert again == [1]
    assert len(service.jobs) == 1, "two takers of one record both created"
    record = ledger.get(request.idempotency_key)
    assert record is not None and record.state == LedgerState.SUBMITTED
    assert record.job_name == next(iter(service.jobs))


def test_the_confirmation_gives_the_create_a_whole_claim(world):
    pipeline, ledger, service, _, clock = world
    request = make_request()
    service.after_next_lookup = lambda: clock.advance(pipeline.claim_seconds - 1)
    expiry_seen_by_create = []
    real_create = service.create

    def create(parent, job):
        record = ledger.get(request.idempotency_key)
        expiry_seen_by_create.append((parse_timestamp(record.claim_expires_at), clock()))
        return real_create(parent, job)

    service.create = create
    assert submit_request(pipeline, request) == JobOutcome.SUBMITTED
    [(expiry, at_create)] = expiry_seen_by_create
    assert (expiry - at_create).total_seconds() == pipeline.claim_seconds


class LedgerWaitingOnALock(MemoryLedger):
    """Each transaction first waits `wait` seconds for another's locks (as the Firestore
    emulator makes it wait for a minute on those of a killed client), then reads and decides."""

    def __init__(self) -> None:
        super().__init__()
        self.clock: SteppingClock | None = None
        self.wait = 0.0

    def _waits(self) -> None:
        if self.clock is not None:
            self.clock.advance(self.wait)

    def claim(self, key, content_key, decide):
        self._waits()
        return super().claim(key, content_key, decide)

    def update(self, key, decide):
        self._waits()
        return super().update(key, decide)


def a_tick_without_waiting(
    pipeline: Pipeline, ledger: LedgerWaitingOnALock, taken_over: list[int]
) -> Callable[[], None]:
    """A status tick run meanwhile, its own transactions not waiting; it appends how many
    records it took over to `taken_over`."""

    def tick() -> None:
        ledger.wait = 0.0
        taken_over.append(status_tick(pipeline).taken_over)

    return tick


@pytest.fixture
def locked_world():
    ledger = LedgerWaitingOnALock()
    pipeline, _, service, _, clock = memory_pipeline(ledger)
    ledger.clock = clock
    return pipeline, ledger, service, clock


def test_a_claim_that_waited_on_a_lock_counts_from_when_it_was_written(locked_world):
    pipeline, ledger, service, clock = locked_world
    ledger.wait = pipeline.claim_seconds + 1
    taken_over: list[int] = []
    service.after_next_lookup = a_tick_without_waiting(pipeline, ledger, taken_over)
    assert submit_request(pipeline, make_request()) == JobOutcome.SUBMITTED
    assert taken_over == [0], "a claim was written already expired and taken over"
    assert len(service.jobs) == 1


def test_a_confirmation_that_waited_on_a_lock_gives_the_create_a_whole_claim(
    locked_world, monkeypatch
):
    pipeline, ledger, service, clock = locked_world
    taken_over: list[int] = []
    service.before_next_create = a_tick_without_waiting(pipeline, ledger, taken_over)
    real_find = service.find_by_label

    def lookup_then_the_confirmation_waits(parent, key, value):
        found = real_find(parent, key, value)
        ledger.wait = pipeline.claim_seconds + 1  # the next transaction is the confirmation
        return found

    monkeypatch.setattr(service, "find_by_label", lookup_then_the_confirmation_waits)
    assert submit_request(pipeline, make_request()) == JobOutcome.SUBMITTED
    assert taken_over == [0]
    assert len(service.jobs) == 1, "a take-over created while the confirmed create was on its way"


def submitting(attempts: int, job_name: str | None = None) -> LedgerRecord:
    record = new_record(
        idempotency_key="k",
        content_key="c",
        dataset_uri="gs://b/d.jsonl",
        generation="1",
        now=NOW - timedelta(minutes=5),
    )
    return msgspec.structs.replace(
        record, state=LedgerState.SUBMITTING, attempts=attempts, job_name=job_name
    )


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_only_the_latest_claim_holds():
    record = submitting(attempts=3)
    assert holds_claim(record, 3)
    assert not holds_claim(record, 2)
    assert not holds_claim(msgspec.structs.replace(record, state=LedgerState.QUEUED), 3)
    assert confirm_claim(record, Slots(), attempt=2, now=NOW, claim_seconds=60) is None


def test_a_confirmed_claim_is_renewed_and_keeps_its_slot():
    confirmed = confirm_claim(submitting(attempts=3), Slots(), attempt=3, now=NOW, claim_seconds=60)
    assert confirmed is not None and confirmed.outcome == JobOutcome.SUBMIT
    assert confirmed.record is not None and confirmed.record.state == LedgerState.SUBMITTING
    assert confirmed.record.claim_expires_at == "2026-01-01T00:01:00.000000Z"
    assert confirmed.record.updated_at == "2026-01-01T00:00:00.000000Z"  # the record says it moved
    assert confirmed.slots is None  # the slot it holds does not move


def test_no_claim_is_confirmed_once_a_job_is_recorded():
    recorded = submitting(attempts=3, job_name="projects/p/locations/r/tuningJobs/1")
    assert confirm_claim(recorded, Slots(), attempt=3, now=NOW, claim_seconds=60) is None


def test_a_promotion_that_waited_on_a_lock_counts_from_when_it_was_written(locked_world):
    pipeline, ledger, service, clock = locked_world
    assert (
        submit_request(pipeline, make_request("incoming/first.jsonl", sha256="1" * 64))
        == JobOutcome.SUBMITTED
    )
    assert (
        submit_request(pipeline, make_request("incoming/second.jsonl", sha256="2" * 64))
        == JobOutcome.QUEUED
    )
    service.succeed(next(iter(service.jobs)))
    taken_over: list[int] = []
    service.after_next_lookup = a_tick_without_waiting(pipeline, ledger, taken_over)
    ledger.wait = pipeline.claim_seconds + 1
    assert status_tick(pipeline).promoted == 1
    assert taken_over == [0], "a promotion was written already expired and taken over"
    assert len(service.jobs) == 2


def test_a_take_over_that_waited_on_a_lock_counts_from_when_it_was_written(locked_world):
    pipeline, ledger, service, clock = locked_world
    service.fail_next(ErrorKind.TRANSIENT, "unavailable")  # the first create is refused, no job
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, make_request())
    clock.advance(pipeline.create_settle_seconds + 1)
    taken_over: list[int] = []
    service.after_next_lookup = a_tick_without_waiting(pipeline, ledger, taken_over)
    ledger.wait = pipeline.claim_seconds + 1
    assert status_tick(pipeline).taken_over == 1
    assert taken_over == [0], "a take-over was written already expired and taken over again"
    assert len(service.jobs) == 1


def test_a_settle_pause_that_waited_on_a_lock_counts_from_when_it_was_written(locked_world):
    """A create without an answer keeps the claim for the settle pause; the pause must not be
    eaten by the release's own wait for a lock."""
    pipeline, ledger, service, clock = locked_world
    service.fail_next(ErrorKind.TRANSIENT, "deadline exceeded")
    service.before_next_create = lambda: setattr(ledger, "wait", pipeline.claim_seconds + 1)
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, make_request())
    ledger.wait = 0.0
    clock.advance(pipeline.create_settle_seconds - 1)
    assert status_tick(pipeline).taken_over == 0, "the settle pause ended early"
    clock.advance(2)
    assert status_tick(pipeline).taken_over == 1


@pytest.mark.parametrize(
    ("kind", "code"),
    [(ErrorKind.QUOTA, 429), (ErrorKind.PERMANENT, 400), (ErrorKind.TRANSIENT, 503)],
)
def test_an_overtaken_holders_answer_leaves_the_new_holders_claim_alone(world, kind, code, capsys):
    """Holder A's create is on its way when A has outlived its claim; the status tick takes the
    dataset over (B) and creates. A's answer (a 429, a refusal, no answer) arrives while B's
    create is on its way: it must neither queue, fail nor release the record under B, or B's job
    is cancelled as a conflict (or a third taker creates)."""
    pipeline, ledger, service, _, clock = world
    request = make_request()
    key = request.idempotency_key
    a_in_create, a_may_answer = threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def b_creates_while_a_answers():
        seen["b_claim"] = ledger.get(key)
        service.fail_next(kind, "the answer to A's create", code)  # taken by A's create
        a_may_answer.set()
        a_thread.join(timeout=10)
        seen["after_a"] = ledger.get(key)

    def a_create_waits_for_b():
        service.before_next_create = b_creates_while_a_answers
        a_in_create.set()
        assert a_may_answer.wait(timeout=10)

    service.before_next_create = a_create_waits_for_b
    a_outcome: list[JobOutcome | Exception] = []

    def run_a():
        try:
            a_outcome.append(submit_request(pipeline, request))
        except TuningServiceError as exc:
            a_outcome.append(exc)

    a_thread = threading.Thread(target=run_a)
    a_thread.start()
    assert a_in_create.wait(timeout=10)
    clock.advance(pipeline.claim_seconds + 1)
    assert status_tick(pipeline).taken_over == 1
    a_thread.join(timeout=10)
    assert not a_thread.is_alive()

    b_claim, after_a = seen["b_claim"], seen["after_a"]
    assert isinstance(b_claim, LedgerRecord) and b_claim.attempts == 2
    assert after_a == b_claim, "A's answer changed the record B holds"
    assert len(service.jobs) == 1 and service.cancelled == []
    record = ledger.get(key)
    assert record is not None and record.state == LedgerState.SUBMITTED
    assert record.job_name == next(iter(service.jobs))
    if kind == ErrorKind.TRANSIENT:
        assert isinstance(a_outcome[0], TuningServiceError)  # delivered again, then a duplicate
    else:
        assert a_outcome == [JobOutcome.DUPLICATE]
        logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
        [left] = [
            line
            for line in logged
            if line["message"]
            == "submit: the claim passed to another submitter; this attempt's answer is not recorded"
        ]
        assert left["attempt"] == 1 and left["idempotency_key"] == key
        assert left["code"] == code and left["creating"] is True
