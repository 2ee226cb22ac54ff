"""What a status tick reports and does where mutation testing (`make mutation`) found a changed
line of jobs/tick.py going unnoticed: the tick summary an operator reads (counters and error
lines), the structured log lines it writes (parsed as JSON from stdout), and what happens to a
record when its step fails, when the ledger cannot write it, when a promoted dataset can no
longer make a job, and when a second job carries a dataset's label."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from job_doubles import FakeTuningService, MemoryLedger, StubCatalog, make_request, memory_pipeline

from autotune.intake.objects import pinned_object_name
from autotune.jobs.decisions import CREATE_SETTLE_SECONDS
from autotune.jobs.documents import JobOutcome
from autotune.jobs.job_spec import KEY_LABEL, JobSpecError, build_job_spec
from autotune.jobs.lifecycle import JobSnapshot, LedgerRecord, LedgerState, parse_timestamp
from autotune.jobs.ports import ErrorKind, TuningServiceError, UnwritableRecord
from autotune.jobs.request import TuningRequest
from autotune.jobs.request_checks import pinned_problem
from autotune.jobs.submit import submit_request
from autotune.jobs.tick import status_tick

LOCATION = "projects/p/locations/us-central1"


def dataset(letter: str, **fields: Any) -> TuningRequest:
    return make_request(f"incoming/{letter}.jsonl", sha256=letter * 64, **fields)


def record_of(ledger: MemoryLedger, request: TuningRequest) -> LedgerRecord:
    record = ledger.get(request.idempotency_key)
    assert record is not None
    return record


def job_of(ledger: MemoryLedger, request: TuningRequest) -> str:
    job = record_of(ledger, request).job_name
    assert job is not None
    return job


def log_lines(capsys: pytest.CaptureFixture[str], message: str) -> list[dict[str, Any]]:
    """The structured log lines written since the last read that carry exactly `message`."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    return [line for line in lines if line.get("message") == message]


class DeadBus:
    def publish_event(self, event: object) -> None:
        raise ConnectionError("bus down")


class LedgerWithFailingWrites(MemoryLedger):
    """Raises the exceptions queued for a key, one per update of that record, before deciding:
    a ledger outage, or a record it refuses to store (UnwritableRecord)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: dict[str, list[Exception]] = {}

    def update(self, key, decide):
        if self.failures.get(key):
            raise self.failures[key].pop(0)
        return super().update(key, decide)


# --- what the tick counts and logs for job changes ----------------------------------------------


def test_a_tick_counts_each_active_record_and_each_state_change_and_logs_each_move(capsys):
    pipeline, ledger, service, bus, _ = memory_pipeline(max_jobs=2)
    first, second = dataset("a"), dataset("b")
    for request in (first, second):
        assert submit_request(pipeline, request) == JobOutcome.SUBMITTED
        service.set_state(job_of(ledger, request), "JOB_STATE_RUNNING")
    capsys.readouterr()

    summary = status_tick(pipeline)
    assert (summary.observed, summary.changed, summary.errors) == (2, 2, [])
    moves = log_lines(capsys, "status: SUBMITTED -> RUNNING")
    assert sorted((m["severity"], m["dataset"], m["job"], m["error"]) for m in moves) == [
        ("INFO", first.training.uri, job_of(ledger, first), None),
        ("INFO", second.training.uri, job_of(ledger, second), None),
    ]

    # A job state the code does not know is recorded, but the dataset's state did not change.
    service.set_state(job_of(ledger, first), "JOB_STATE_NEWLY_ADDED")
    service.set_state(
        job_of(ledger, second), "JOB_STATE_FAILED", error="the training data has 3 bad lines"
    )
    summary = status_tick(pipeline)
    assert (summary.observed, summary.changed) == (2, 1)
    [failed] = log_lines(capsys, "status: RUNNING -> FAILED")
    assert failed["dataset"] == second.training.uri and failed["job"] == job_of(ledger, second)
    assert failed["error"] == record_of(ledger, second).error
    assert "the training data has 3 bad lines" in failed["error"]


def test_an_unknown_job_state_is_logged_with_the_job_and_both_states(capsys):
    pipeline, ledger, service, _, _ = memory_pipeline()
    request = dataset("a")
    submit_request(pipeline, request)
    job = job_of(ledger, request)
    service.set_state(job, "JOB_STATE_RUNNING")
    status_tick(pipeline)
    service.set_state(job, "JOB_STATE_NEWLY_ADDED")
    capsys.readouterr()
    status_tick(pipeline)
    [warning] = log_lines(
        capsys,
        "status: the tuning service reports a job state autotune does not know; recorded as is, still polling",
    )
    assert warning == {
        "severity": "WARNING",
        "message": warning["message"],
        "job": job,
        "job_state": "JOB_STATE_NEWLY_ADDED",
        "ledger_state": "RUNNING",
    }


def test_a_poll_the_service_does_not_answer_is_reported_under_the_job_name():
    pipeline, ledger, service, _, _ = memory_pipeline()
    request = dataset("a")
    submit_request(pipeline, request)
    service.fail_next(ErrorKind.TRANSIENT, "503 backend unavailable")
    summary = status_tick(pipeline)
    assert summary.errors == [f"{job_of(ledger, request)}: 503 backend unavailable"]
    assert record_of(ledger, request).state == LedgerState.SUBMITTED


# --- second jobs carrying a dataset's label -----------------------------------------------------


def watched_submission(pipeline, service, clock, request: TuningRequest) -> LedgerRecord:
    """A submission whose first create lost its answer, so the record watches for a second job
    for a while (its own job, adopted, is the first the service lists)."""
    service.answers_lost = 1
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    clock.advance(CREATE_SETTLE_SECONDS)
    assert submit_request(pipeline, request) == JobOutcome.SUBMITTED
    record = pipeline.ledger.get(request.idempotency_key)
    assert record.duplicate_watch_until is not None
    return record


def stray_job(
    service: FakeTuningService, request: TuningRequest, number: int, state="JOB_STATE_PENDING"
) -> str:
    """A second job with the dataset's label, made by a create whose answer was lost elsewhere."""
    name = f"{LOCATION}/tuningJobs/{number}"
    service.jobs[name] = JobSnapshot(
        name=name, state=state, labels={KEY_LABEL: request.idempotency_key}
    )
    return name


def test_every_second_job_found_in_a_tick_is_cancelled_recorded_counted_and_logged(capsys):
    pipeline, ledger, service, bus, clock = memory_pipeline(max_jobs=2)
    first, second = dataset("a"), dataset("b")
    watched_submission(pipeline, service, clock, first)
    watched_submission(pipeline, service, clock, second)
    strays = [stray_job(service, first, 97), stray_job(service, first, 98)]
    strays.append(stray_job(service, second, 99))
    capsys.readouterr()

    summary = status_tick(pipeline)
    assert summary.duplicates_cancelled == 3 and summary.errors == []
    assert service.cancelled == strays
    assert record_of(ledger, first).duplicate_jobs == tuple(strays[:2])
    assert record_of(ledger, second).duplicate_jobs == (strays[2],)
    assert bus.types().count("duplicate_cancelled") == 3
    logged = log_lines(
        capsys, "status: a second tuning job carries this dataset's label; cancelling it"
    )
    assert [(line["severity"], line["dataset"], line["job"], line["kept"]) for line in logged] == [
        ("ERROR", first.training.uri, strays[0], job_of(ledger, first)),
        ("ERROR", first.training.uri, strays[1], job_of(ledger, first)),
        ("ERROR", second.training.uri, strays[2], job_of(ledger, second)),
    ]


def test_the_search_for_a_second_job_asks_the_location_the_job_runs_in():
    class RecordingLookups(FakeTuningService):
        def __init__(self) -> None:
            super().__init__()
            self.asked: list[tuple[str, str, str]] = []

        def jobs_with_label(self, parent, key, value):
            self.asked.append((parent, key, value))
            return super().jobs_with_label(parent, key, value)

    pipeline, ledger, _, _, clock = memory_pipeline()
    service = pipeline.service = RecordingLookups()
    request = dataset("a", region="europe-west4")
    watched_submission(pipeline, service, clock, request)
    service.asked.clear()
    status_tick(pipeline)
    assert service.asked == [
        ("projects/p/locations/europe-west4", KEY_LABEL, request.idempotency_key)
    ]


def test_a_second_job_still_cancelling_is_not_cancelled_again():
    pipeline, ledger, service, bus, clock = memory_pipeline()
    request = dataset("a")
    watched_submission(pipeline, service, clock, request)
    stray = stray_job(service, request, 98)
    assert status_tick(pipeline).duplicates_cancelled == 1
    service.set_state(stray, "JOB_STATE_CANCELLING")  # Vertex AI cancels asynchronously
    assert status_tick(pipeline).duplicates_cancelled == 0
    assert service.cancelled == [stray] and bus.types().count("duplicate_cancelled") == 1


def test_a_second_job_that_already_ended_is_left_alone():
    pipeline, ledger, service, bus, clock = memory_pipeline()
    request = dataset("a")
    watched_submission(pipeline, service, clock, request)
    stray_job(service, request, 98, state="JOB_STATE_FAILED")
    summary = status_tick(pipeline)
    assert summary.duplicates_cancelled == 0 and service.cancelled == []
    assert record_of(ledger, request).duplicate_jobs == ()
    assert "duplicate_cancelled" not in bus.types()


def test_the_watch_for_a_second_job_is_over_at_its_recorded_end():
    pipeline, ledger, service, _, clock = memory_pipeline()
    request = dataset("a")
    watch_until = watched_submission(pipeline, service, clock, request).duplicate_watch_until
    assert watch_until is not None
    clock.now = parse_timestamp(watch_until)
    stray_job(service, request, 98)
    assert status_tick(pipeline).duplicates_cancelled == 0 and service.cancelled == []


def test_a_failed_search_for_a_second_job_is_reported_and_the_job_still_observed():
    pipeline, ledger, service, _, clock = memory_pipeline()
    request = dataset("a")
    watched_submission(pipeline, service, clock, request)
    stray_job(service, request, 98)
    service.set_state(job_of(ledger, request), "JOB_STATE_RUNNING")
    service.lookup_errors.append(TuningServiceError(ErrorKind.TRANSIENT, "list unavailable"))
    summary = status_tick(pipeline)
    assert summary.errors == [f"{request.training.uri}: looking for a second job: list unavailable"]
    assert summary.duplicates_cancelled == 0 and service.cancelled == []
    assert record_of(ledger, request).state == LedgerState.RUNNING


def test_a_second_job_the_service_will_not_cancel_is_reported_and_the_next_one_cancelled():
    class RefusingOneCancel(FakeTuningService):
        refused = ""

        def cancel(self, name):
            if name == self.refused:
                raise TuningServiceError(ErrorKind.PERMANENT, "permission denied", 403)
            super().cancel(name)

    pipeline, ledger, _, bus, clock = memory_pipeline()
    service = pipeline.service = RefusingOneCancel()
    request = dataset("a")
    watched_submission(pipeline, service, clock, request)
    service.refused = stray_job(service, request, 98)
    cancelled = stray_job(service, request, 99)
    summary = status_tick(pipeline)
    assert summary.errors == [f"{service.refused}: cancelling a second job: permission denied"]
    assert summary.duplicates_cancelled == 1 and service.cancelled == [cancelled]
    assert record_of(ledger, request).duplicate_jobs == (cancelled,)


# --- a record whose step fails ------------------------------------------------------------------


def test_a_record_whose_step_fails_is_reported_logged_left_as_it_was_and_the_tick_goes_on(capsys):
    ledger = LedgerWithFailingWrites()
    pipeline, _, service, bus, _ = memory_pipeline(ledger, max_jobs=2)
    broken, fine = dataset("a"), dataset("b")
    for request in (broken, fine):
        submit_request(pipeline, request)
        service.set_state(job_of(ledger, request), "JOB_STATE_RUNNING")
    outage = "ledger unavailable: " + "x" * 600
    ledger.failures[broken.idempotency_key] = [RuntimeError(outage)]
    capsys.readouterr()

    summary = status_tick(pipeline)
    error = f"RuntimeError: {outage[:500]}"
    assert summary.errors == [f"{broken.training.uri}: {error}"] and summary.quarantined == 0
    assert record_of(ledger, broken).state == LedgerState.SUBMITTED
    assert record_of(ledger, fine).state == LedgerState.RUNNING
    [logged] = log_lines(capsys, "status: a ledger record's step failed; the tick goes on")
    assert logged == {
        "severity": "ERROR",
        "message": logged["message"],
        "dataset": broken.training.uri,
        "idempotency_key": broken.idempotency_key,
        "state": "SUBMITTED",
        "error": error,
    }
    # An outage is not the record's fault: the next tick records its move.
    assert status_tick(pipeline).errors == []
    assert record_of(ledger, broken).state == LedgerState.RUNNING


def test_records_the_ledger_cannot_write_are_quarantined_announced_and_give_the_queue_their_slots(
    capsys,
):
    ledger = LedgerWithFailingWrites()
    pipeline, _, service, bus, _ = memory_pipeline(ledger, max_jobs=2)
    first, second, waiting = dataset("a"), dataset("b"), dataset("c")
    for request in (first, second):
        submit_request(pipeline, request)
        service.set_state(job_of(ledger, request), "JOB_STATE_RUNNING")
        ledger.failures[request.idempotency_key] = [UnwritableRecord("entity too large")]
    assert submit_request(pipeline, waiting) == JobOutcome.QUEUED
    capsys.readouterr()

    summary = status_tick(pipeline)
    assert summary.quarantined == 2
    assert sorted(summary.errors) == [
        f"{first.training.uri}: UnwritableRecord: entity too large",
        f"{second.training.uri}: UnwritableRecord: entity too large",
    ]
    why = "quarantined: the ledger could not write this record (UnwritableRecord: entity too large)"
    for request in (first, second):
        record = record_of(ledger, request)
        assert record.state == LedgerState.FAILED and record.error == why
        assert record.outbox == ()  # published
    failed = [event for event in bus.events if event.type.value.endswith("failed")]
    assert [event.payload.error for event in failed] == [why, why]
    assert record_of(ledger, waiting).state == LedgerState.SUBMITTED
    assert set(ledger.slots().active) == {waiting.idempotency_key}
    logged = log_lines(capsys, "status: the ledger cannot write this record; quarantining it")
    assert sorted(
        (line["severity"], line["dataset"], line["idempotency_key"], line["state"], line["error"])
        for line in logged
    ) == [
        (
            "ERROR",
            request.training.uri,
            request.idempotency_key,
            "SUBMITTED",
            "UnwritableRecord: entity too large",
        )
        for request in (first, second)
    ]


def test_an_ended_record_the_ledger_cannot_write_is_reported_and_not_counted_as_quarantined():
    ledger = LedgerWithFailingWrites()
    pipeline, _, service, bus, clock = memory_pipeline(ledger)
    request = dataset("a")
    submit_request(pipeline, request)
    service.succeed(job_of(ledger, request))
    alive, pipeline.publisher = pipeline.publisher, DeadBus()
    status_tick(pipeline)  # records the end; its events stay in the outbox
    pipeline.publisher = alive
    clock.advance(31)
    ledger.failures[request.idempotency_key] = [UnwritableRecord("entity too large")]
    summary = status_tick(pipeline)
    assert summary.quarantined == 0
    assert summary.errors == [f"{request.training.uri}: UnwritableRecord: entity too large"]
    assert record_of(ledger, request).state == LedgerState.SUCCEEDED


def test_a_quarantine_that_fails_too_is_reported_with_its_own_error():
    ledger = LedgerWithFailingWrites()
    pipeline, _, service, _, _ = memory_pipeline(ledger)
    request = dataset("a")
    submit_request(pipeline, request)
    service.set_state(job_of(ledger, request), "JOB_STATE_RUNNING")
    ledger.failures[request.idempotency_key] = [
        UnwritableRecord("entity too large"),
        OSError("y" * 400),
    ]
    summary = status_tick(pipeline)
    assert summary.errors == [
        f"{request.training.uri}: UnwritableRecord: entity too large",
        f"{request.training.uri}: quarantine failed too: OSError: {'y' * 300}",
    ]
    assert summary.quarantined == 0
    assert record_of(ledger, request).state == LedgerState.SUBMITTED


# --- filling free slots -------------------------------------------------------------------------


def test_a_tick_fills_every_free_slot_in_queue_order_and_logs_each_promotion(capsys):
    pipeline, ledger, service, _, _ = memory_pipeline(max_jobs=2)
    running = [dataset("a"), dataset("b")]
    queued = [
        dataset("c", generation="1764000000000002"),
        dataset("d", generation="1764000000000003"),
    ]
    for request in running + queued:
        submit_request(pipeline, request)
    for request in running:
        service.succeed(job_of(ledger, request))
    capsys.readouterr()
    summary = status_tick(pipeline)
    assert summary.promoted == 2 and summary.errors == []
    assert [record_of(ledger, r).state for r in queued] == [LedgerState.SUBMITTED] * 2
    logged = log_lines(capsys, "status: promoting the oldest queued dataset")
    assert [(line["severity"], line["dataset"]) for line in logged] == [
        ("INFO", request.training.uri) for request in queued
    ]


def test_a_dataset_waiting_out_a_quota_pause_is_not_promoted_and_is_no_error():
    pipeline, ledger, service, _, _ = memory_pipeline()
    request = dataset("a")
    service.fail_next(ErrorKind.QUOTA, "quota exceeded", 429)
    assert submit_request(pipeline, request) == JobOutcome.QUEUED
    summary = status_tick(pipeline)
    assert (summary.promoted, summary.errors) == (0, [])
    assert record_of(ledger, request).state == LedgerState.QUEUED


def test_a_promotion_whose_tick_died_is_taken_over_when_the_pipelines_claim_runs_out():
    class LookupCrashesOnce(FakeTuningService):
        crash = True

        def find_by_label(self, parent, key, value):
            if self.crash:
                self.crash = False
                raise ConnectionError("the tick's process died")
            return super().find_by_label(parent, key, value)

    pipeline, ledger, _, _, clock = memory_pipeline(claim_seconds=60)
    service = pipeline.service = LookupCrashesOnce()
    running, waiting = dataset("a"), dataset("b")
    service.crash = False
    submit_request(pipeline, running)
    submit_request(pipeline, waiting)
    service.succeed(job_of(ledger, running))
    service.crash = True
    summary = status_tick(pipeline)
    assert summary.promoted == 1 and summary.errors == [
        f"{waiting.training.uri}: ConnectionError: the tick's process died"
    ]
    claimed = record_of(ledger, waiting)
    assert claimed.state == LedgerState.SUBMITTING and claimed.claim_expires_at is not None
    assert parse_timestamp(claimed.claim_expires_at) == clock.now + timedelta(seconds=60)
    clock.advance(60)
    assert status_tick(pipeline).taken_over == 1
    assert record_of(ledger, waiting).state == LedgerState.SUBMITTED


def test_a_promotion_then_a_take_over_whose_create_gets_no_answer_is_reported_and_keeps_the_slot():
    class CreatesTimingOut(FakeTuningService):
        timeouts = 0

        def create(self, parent, job):
            if self.timeouts:
                self.timeouts -= 1
                raise TuningServiceError(ErrorKind.TRANSIENT, "503 unavailable", 503)
            return super().create(parent, job)

    pipeline, ledger, _, _, clock = memory_pipeline()
    service = pipeline.service = CreatesTimingOut()
    running, waiting = dataset("a"), dataset("b")
    submit_request(pipeline, running)
    submit_request(pipeline, waiting)
    service.succeed(job_of(ledger, running))
    for tick in ("promotion", "take-over"):
        service.timeouts = 1
        summary = status_tick(pipeline)
        assert summary.errors == [f"{waiting.training.uri}: 503 unavailable"], tick
        assert record_of(ledger, waiting).state == LedgerState.SUBMITTING
        assert list(ledger.slots().active) == [waiting.idempotency_key]
        clock.advance(CREATE_SETTLE_SECONDS)
    assert summary.taken_over == 1


def test_two_expired_claims_are_both_taken_over_in_one_tick():
    pipeline, ledger, service, _, _ = memory_pipeline(max_jobs=2)
    requests = [dataset("a"), dataset("b")]
    for request in requests:
        service.lookup_errors.append(TuningServiceError(ErrorKind.TRANSIENT, "503"))
        with pytest.raises(TuningServiceError):
            submit_request(pipeline, request)
    summary = status_tick(pipeline)
    assert summary.taken_over == 2
    assert [record_of(ledger, r).state for r in requests] == [LedgerState.SUBMITTED] * 2


# --- a promoted dataset that can no longer make a job -------------------------------------------


def test_a_queued_dataset_whose_settings_no_longer_make_a_job_fails_at_promotion_and_the_next_moves_up():
    class CatalogWithoutEurope(StubCatalog):
        def regions(self, model):
            return {"us-central1"}

    pipeline, ledger, service, bus, _ = memory_pipeline()
    running, stale, next_in_line = dataset("a"), dataset("b", region="europe-west4"), dataset("c")
    for request in (running, stale, next_in_line):
        submit_request(pipeline, request)
    pipeline.catalog = CatalogWithoutEurope()
    with pytest.raises(JobSpecError) as refused:
        build_job_spec(stale, project="p", catalog=pipeline.catalog)
    service.succeed(job_of(ledger, running))

    status_tick(pipeline)
    failed = record_of(ledger, stale)
    assert failed.state == LedgerState.FAILED and failed.error == str(refused.value)
    assert bus.types()[-2:] == ["failed", "submitted"]
    assert bus.events[-2].payload.error == str(refused.value) and failed.outbox == ()
    assert record_of(ledger, next_in_line).state == LedgerState.SUBMITTED
    assert list(ledger.slots().active) == [next_in_line.idempotency_key]
    assert len(service.created) == 2


def test_a_queued_dataset_whose_pinned_copy_was_written_over_fails_at_promotion_without_a_job():
    class Bucket:
        def __init__(self, generations: dict[str, str]) -> None:
            self.generations = generations

        def read_report(self, name):
            return None

        def generation_of(self, name):
            return self.generations.get(name)

    pipeline, ledger, service, bus, _ = memory_pipeline()
    running, next_in_line = dataset("a"), dataset("c")
    pinned = dataset("b")
    pinned_name = pinned_object_name("reports/", pinned.training.sha256)
    training = msgspec.structs.replace(
        pinned.training, pinned_object=pinned_name, pinned_generation="7"
    )
    pinned = msgspec.structs.replace(pinned, training=training)
    for request in (running, pinned, next_in_line):
        submit_request(pipeline, request)
    pipeline.datasets = Bucket({pinned_name: "8"})  # overwritten while the dataset waited
    service.succeed(job_of(ledger, running))

    status_tick(pipeline)
    why = pinned_problem(pinned, "reports/", {pinned_name: "8"})
    assert why is not None and "was written over" in why
    failed = record_of(ledger, pinned)
    assert failed.state == LedgerState.FAILED and failed.error == why
    assert bus.types()[-2:] == ["failed", "submitted"] and bus.events[-2].payload.error == why
    assert failed.outbox == ()
    assert record_of(ledger, next_in_line).state == LedgerState.SUBMITTED
    assert [body["labels"][KEY_LABEL] for _, body in service.created] == [
        running.idempotency_key,
        next_in_line.idempotency_key,
    ]


def test_a_promoted_job_runs_as_the_pipelines_service_account():
    account = "tuner@p.iam.gserviceaccount.com"
    pipeline, ledger, service, _, _ = memory_pipeline(service_account=account)
    running, waiting = dataset("a"), dataset("b")
    submit_request(pipeline, running)
    submit_request(pipeline, waiting)
    service.succeed(job_of(ledger, running))
    status_tick(pipeline)
    assert record_of(ledger, waiting).state == LedgerState.SUBMITTED
    [(_, body)] = service.created[1:]
    assert body["serviceAccount"] == account


def test_a_promoted_dataset_outside_the_current_dataset_bucket_is_not_tuned():
    pipeline, ledger, service, _, _ = memory_pipeline(dataset_bucket="bkt")
    running, waiting = dataset("a"), dataset("b")
    submit_request(pipeline, running)
    submit_request(pipeline, waiting)
    pipeline.dataset_bucket = "moved-bkt"  # the deployment's dataset bucket changed meanwhile
    service.succeed(job_of(ledger, running))
    status_tick(pipeline)
    failed = record_of(ledger, waiting)
    assert failed.state == LedgerState.FAILED and failed.error is not None
    assert f"{waiting.training.uri} is not in the dataset bucket moved-bkt" in failed.error
    assert len(service.created) == 1


# --- leftovers in outboxes ----------------------------------------------------------------------


def test_a_tick_that_loses_the_leftovers_to_an_overlapping_tick_publishes_and_reports_nothing():
    class OverlappedLedger(MemoryLedger):
        """Right before this tick leases the leftovers, another tick leases and publishes them."""

        overlap: Any = None

        def update(self, key, decide):
            overlap, self.overlap = self.overlap, None
            if overlap is not None:
                overlap()
            return super().update(key, decide)

    ledger = OverlappedLedger()
    pipeline, _, _, bus, clock = memory_pipeline(ledger)
    alive, pipeline.publisher = pipeline.publisher, DeadBus()
    with pytest.raises(ConnectionError):
        submit_request(pipeline, dataset("a"))
    pipeline.publisher = alive
    clock.advance(31)
    other_tick: list[Any] = []
    ledger.overlap = lambda: other_tick.append(status_tick(pipeline))
    summary = status_tick(pipeline)
    assert (summary.published, summary.errors) == (0, [])
    assert other_tick[0].published == 1 and bus.types() == ["submitted"]


# --- releasing stale slots ----------------------------------------------------------------------


def test_a_slot_taken_by_an_overlapping_tick_after_this_one_read_the_slots_is_not_released():
    """This tick reads the slots (b queued), then an overlapping tick records a's end and
    promotes b. The queue entry this tick saw is gone, but b now holds a slot: the release is
    decided again on the record and slots as they are, so b keeps it."""

    class OverlappedLedger(MemoryLedger):
        reads_before_overlap = -1
        overlap: Any = None

        def slots(self):
            read = self.slot_doc
            self.reads_before_overlap -= 1
            if self.reads_before_overlap == 0:
                self.overlap()
            return read

    ledger = OverlappedLedger()
    pipeline, _, service, _, _ = memory_pipeline(ledger)
    running, waiting = dataset("a"), dataset("b")
    submit_request(pipeline, running)
    submit_request(pipeline, waiting)

    def other_tick() -> None:
        service.succeed(job_of(ledger, running))
        status_tick(pipeline)

    # The tick reads the slots twice: to fill free ones (none), then to release stale ones.
    ledger.overlap, ledger.reads_before_overlap = other_tick, 2
    status_tick(pipeline)
    assert record_of(ledger, waiting).state == LedgerState.SUBMITTED
    assert list(ledger.slots().active) == [waiting.idempotency_key]


def test_a_tick_with_nothing_new_and_no_stale_slot_opens_no_ledger_transaction():
    """Every move and release is a transaction on the slots document, which every claim of every
    dataset contends for: a tick opens one only for a change, or for an entry whose record no
    longer holds it."""

    class CountingTransactions(MemoryLedger):
        transactions = 0

        def update_or_absent(self, key, decide):  # MemoryLedger.update comes through here too
            self.transactions += 1
            return super().update_or_absent(key, decide)

    ledger = CountingTransactions()
    pipeline, _, _, _, _ = memory_pipeline(ledger)
    submit_request(pipeline, dataset("a"))
    submit_request(pipeline, dataset("b"))
    assert (len(ledger.slots().active), len(ledger.slots().queued)) == (1, 1)
    ledger.transactions = 0
    status_tick(pipeline)  # a's job is still pending, b waits for the slot
    assert ledger.transactions == 0
