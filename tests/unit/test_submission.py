"""The submit and status core with in-memory ledger, service and bus: exactly once, the queue,
error classes, the skipped re-upload, take-over of dead claims."""

import threading

import pytest
from job_doubles import (
    MemoryLedger,
    StubCatalog,
    make_request,
    memory_pipeline,
)

from autotune.adapters.tuning_service import classify_error
from autotune.events import EventType
from autotune.jobs.cancel import cancel
from autotune.jobs.decisions import (
    CREATE_SETTLE_SECONDS,
    DUPLICATE_WATCH_SECONDS,
    MAX_FAILED_ATTEMPTS,
    QUOTA_PAUSE_SECONDS,
)
from autotune.jobs.documents import JobOutcome
from autotune.jobs.job_spec import KEY_LABEL, JobSpecError, build_job_spec
from autotune.jobs.lifecycle import LedgerState, parse_timestamp
from autotune.jobs.ports import ErrorKind, TuningServiceError
from autotune.jobs.request import InvalidTuningRequest, encode_request
from autotune.jobs.submit import submit_message, submit_request
from autotune.jobs.tick import status_tick


@pytest.fixture
def world():
    pipeline, ledger, service, bus, clock = memory_pipeline()
    return pipeline, ledger, service, bus, clock


def test_first_delivery_creates_one_labelled_job_and_publishes_submitted(world):
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    assert submit_request(pipeline, request) == JobOutcome.SUBMITTED
    [(parent, body)] = service.created
    assert parent == "projects/p/locations/us-central1"
    assert body["labels"] == {KEY_LABEL: request.idempotency_key}
    assert body["supervisedTuningSpec"]["trainingDatasetUri"] == "gs://bkt/incoming/data.jsonl"
    assert body["supervisedTuningSpec"]["hyperParameters"]["epochCount"] == "3"
    record = ledger.get(request.idempotency_key)
    assert record.state == LedgerState.SUBMITTED and record.job_name.endswith("/tuningJobs/1")
    assert [t.state for t in record.history] == [
        LedgerState.ACCEPTED,
        LedgerState.SUBMITTING,
        LedgerState.SUBMITTED,
    ]
    assert record.outbox == ()
    assert bus.types() == ["submitted"]
    assert bus.events[0].payload.job_name == record.job_name


def test_duplicate_deliveries_are_no_ops(world):
    pipeline, _, service, bus, _ = world
    request = make_request()
    outcomes = [submit_request(pipeline, request) for _ in range(3)]
    assert outcomes == [JobOutcome.SUBMITTED, JobOutcome.DUPLICATE, JobOutcome.DUPLICATE]
    assert len(service.created) == 1 and bus.types() == ["submitted"]


def test_ten_concurrent_deliveries_give_one_job(world):
    pipeline, _, service, bus, _ = world
    request = make_request()
    outcomes = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(submit_request(pipeline, request)))
        for _ in range(10)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes).count(JobOutcome.SUBMITTED) == 1
    assert len(service.created) == 1 and bus.types() == ["submitted"]


def test_second_dataset_waits_in_the_queue_while_the_slot_is_taken(world):
    pipeline, ledger, service, bus, _ = world
    first, second = (
        make_request("incoming/a.jsonl", sha256="1" * 64),
        make_request("incoming/b.jsonl", sha256="2" * 64),
    )
    submit_request(pipeline, first)
    assert submit_request(pipeline, second) == JobOutcome.QUEUED
    assert ledger.get(second.idempotency_key).state == LedgerState.QUEUED
    assert bus.types() == ["submitted", "queued"]
    assert "1 of 1 job slots in use" in bus.events[1].payload.reason
    assert len(service.created) == 1


def test_reupload_of_same_bytes_and_settings_is_skipped_with_a_reason(world):
    pipeline, ledger, service, bus, _ = world
    first = make_request(generation="100")
    again = make_request(generation="200")  # same object re-uploaded: new generation, same content
    submit_request(pipeline, first)
    assert submit_request(pipeline, again) == JobOutcome.SKIPPED
    skipped = ledger.get(again.idempotency_key)
    assert skipped.state == LedgerState.SKIPPED and skipped.duplicate_of == first.idempotency_key
    event = bus.events[-1]
    assert event.type == EventType.JOB_SKIPPED
    assert "autotune-force" in event.payload.reason and "generation 100" in event.payload.reason
    assert event.payload.job_name == ledger.get(first.idempotency_key).job_name
    assert len(service.created) == 1


def test_same_bytes_under_another_name_are_skipped_too(world):
    pipeline, _, service, _, _ = world
    submit_request(pipeline, make_request("incoming/a.jsonl"))
    assert submit_request(pipeline, make_request("incoming/copy-of-a.jsonl")) == JobOutcome.SKIPPED
    assert len(service.created) == 1


def test_forced_reupload_is_tuned_again_and_says_so(world):
    pipeline, ledger, service, bus, _ = world
    first = make_request(generation="100")
    submit_request(pipeline, first)
    service.succeed(ledger.get(first.idempotency_key).job_name)
    status_tick(pipeline)
    forced = make_request(generation="200", force=True)
    assert submit_request(pipeline, forced) == JobOutcome.SUBMITTED
    assert len(service.created) == 2
    assert "autotune-force" in bus.events[-1].payload.reason


def test_different_settings_on_the_same_bytes_are_a_new_tuning(world):
    pipeline, _, service, _, _ = world
    submit_request(pipeline, make_request(generation="100", epochs=3))
    assert submit_request(pipeline, make_request(generation="200", epochs=5)) in {
        JobOutcome.SUBMITTED,
        JobOutcome.QUEUED,
    }


def test_reupload_after_a_failed_tuning_is_tuned_again(world):
    pipeline, ledger, service, bus, _ = world
    first = make_request(generation="100")
    service.fail_next(ErrorKind.PERMANENT, "Base model is not available", 400)
    assert submit_request(pipeline, first) == JobOutcome.FAILED
    assert submit_request(pipeline, make_request(generation="200")) == JobOutcome.SUBMITTED
    assert "ended FAILED" in bus.events[-1].payload.reason


def test_service_quota_429_queues_the_dataset_and_frees_the_slot(world):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    service.fail_next(ErrorKind.QUOTA, "Quota exceeded", 429)
    assert submit_request(pipeline, request) == JobOutcome.QUEUED
    assert ledger.get(request.idempotency_key).state == LedgerState.QUEUED
    assert ledger.slots().active == {} and request.idempotency_key in ledger.slots().queued
    assert bus.types() == ["queued"] and "429" in bus.events[0].payload.reason
    status_tick(pipeline)
    assert (
        ledger.get(request.idempotency_key).state == LedgerState.QUEUED
    )  # waits 5 s before trying again
    clock.advance(5)
    status_tick(pipeline)
    assert ledger.get(request.idempotency_key).state == LedgerState.SUBMITTED
    assert bus.types() == ["queued", "submitted"]


def test_a_long_quota_wait_backs_off_and_is_announced_once(world):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    for _ in range(6):
        service.fail_next(ErrorKind.QUOTA, "Quota exceeded", 429)
    submit_request(pipeline, request)
    pauses: list[float] = []
    while ledger.get(request.idempotency_key).state != LedgerState.SUBMITTED:
        record = ledger.get(request.idempotency_key)
        pauses.append((parse_timestamp(record.not_before) - clock.now).total_seconds())
        clock.advance(pauses[-1])
        status_tick(pipeline)
    assert pauses == [5, 10, 20, 40, 80, 160]
    assert bus.types() == ["queued", "submitted"]


def test_permanent_error_fails_the_record_with_the_service_message(world):
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    service.fail_next(ErrorKind.PERMANENT, "Adapter size 32 is not supported", 400)
    assert submit_request(pipeline, request) == JobOutcome.FAILED
    record = ledger.get(request.idempotency_key)
    assert record.state == LedgerState.FAILED and record.error == "Adapter size 32 is not supported"
    assert (
        bus.types() == ["failed"]
        and bus.events[0].payload.error == "Adapter size 32 is not supported"
    )
    assert ledger.slots().active == {}


def test_a_create_without_an_answer_holds_the_claim_until_its_job_could_show(world):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    service.fail_next(ErrorKind.TRANSIENT, "503 unavailable", 503)
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    record = ledger.get(request.idempotency_key)
    assert (
        record.state == LedgerState.SUBMITTING
        and record.error == "503 unavailable"
        and record.create_unanswered
    )
    assert (
        submit_request(pipeline, request) == JobOutcome.DUPLICATE
    )  # the create may still be making its job
    clock.advance(CREATE_SETTLE_SECONDS)
    assert (
        submit_request(pipeline, request) == JobOutcome.SUBMITTED
    )  # then the redelivery looks, finds none, creates
    assert len(service.created) == 1 and bus.types() == ["submitted"]
    assert ledger.get(request.idempotency_key).duplicate_watch_until is not None


def test_a_lookup_error_is_retried_at_once_without_the_settle_pause(world):
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    service.lookup_errors.append(TuningServiceError(ErrorKind.TRANSIENT, "503 unavailable", 503))
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    assert not ledger.get(request.idempotency_key).create_unanswered
    assert submit_request(pipeline, request) == JobOutcome.SUBMITTED
    assert len(service.created) == 1


def test_a_job_made_by_a_create_whose_answer_was_lost_is_adopted_not_made_twice(world):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    service.answers_lost = 1
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    clock.advance(CREATE_SETTLE_SECONDS)
    assert submit_request(pipeline, request) == JobOutcome.SUBMITTED
    record = ledger.get(request.idempotency_key)
    assert (
        len(service.created) == 1 and record.job_name in service.jobs and "adopted" in record.reason
    )


def test_a_429_on_the_lookup_is_a_retry_not_a_full_quota(world):
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    service.lookup_errors.append(TuningServiceError(ErrorKind.QUOTA, "rate limit", 429))
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    record = ledger.get(request.idempotency_key)
    assert record.state == LedgerState.SUBMITTING and ledger.slots().active  # the slot is kept
    assert submit_request(pipeline, request) == JobOutcome.SUBMITTED


def test_a_lookup_refused_while_an_earlier_create_may_have_made_a_job_keeps_the_slot(world):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    service.answers_lost = 1
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    clock.advance(CREATE_SETTLE_SECONDS)
    service.lookup_errors.append(TuningServiceError(ErrorKind.PERMANENT, "permission denied", 403))
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    assert (
        ledger.get(request.idempotency_key).state == LedgerState.SUBMITTING
        and ledger.slots().active
    )


def test_a_second_job_hidden_from_the_lookup_is_found_cancelled_recorded_and_announced(world):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    service.answers_lost = 1
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    [first] = service.jobs
    service.hidden_from_lookup.add(first)  # the list lags past the settle pause
    clock.advance(CREATE_SETTLE_SECONDS)
    assert submit_request(pipeline, request) == JobOutcome.SUBMITTED
    kept = ledger.get(request.idempotency_key).job_name
    assert kept != first and len(service.jobs) == 2
    service.hidden_from_lookup.clear()
    summary = status_tick(pipeline)
    status_tick(pipeline)  # a second tick cancels nothing more and announces nothing more
    record = ledger.get(request.idempotency_key)
    assert summary.duplicates_cancelled == 1 and service.cancelled == [first]
    assert (
        record.duplicate_jobs == (first,)
        and record.job_name == kept
        and record.state == LedgerState.SUBMITTED
    )
    assert (
        bus.types() == ["submitted", "duplicate_cancelled"]
        and bus.events[-1].payload.job_name == first
    )


def test_the_watch_for_a_second_job_ends(world):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    service.answers_lost = 1
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    [first] = service.jobs
    service.hidden_from_lookup.add(first)
    clock.advance(CREATE_SETTLE_SECONDS)
    submit_request(pipeline, request)
    clock.advance(DUPLICATE_WATCH_SECONDS + 1)
    service.hidden_from_lookup.clear()
    status_tick(pipeline)
    assert service.cancelled == []


def test_a_clean_first_submission_is_not_watched(world):
    pipeline, ledger, *_ = world
    request = make_request()
    submit_request(pipeline, request)
    assert ledger.get(request.idempotency_key).duplicate_watch_until is None


def test_poison_message_raises_with_a_logged_reason(world, capsys):
    pipeline, *_ = world
    with pytest.raises(InvalidTuningRequest):
        submit_message(pipeline, b'{"schema_version": 1, "idempotency_key": 5}', message_id="m-1")
    log = capsys.readouterr().out
    assert (
        '"severity": "ERROR"' in log
        and "dead-letter" in log
        and "m-1" in log
        and "idempotency_key" in log
    )


def test_region_the_model_cannot_tune_in_fails_without_calling_the_service(world):
    pipeline, ledger, service, bus, _ = world
    request = make_request(region="asia-south2")
    assert submit_request(pipeline, request) == JobOutcome.FAILED
    assert service.created == []
    assert "cannot be tuned in region asia-south2" in ledger.get(request.idempotency_key).error
    assert bus.types() == ["failed"]


def test_job_spec_uses_the_catalog_default_adapter_size_and_checks_allowed_sizes():
    spec = build_job_spec(
        make_request(model="gemini-1.5-pro-002"), project="p", catalog=StubCatalog()
    )
    assert (
        spec.body["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] == "ADAPTER_SIZE_FOUR"
    )
    assert (
        "adapterSize"
        not in build_job_spec(make_request(), project="p", catalog=StubCatalog()).body[
            "supervisedTuningSpec"
        ]["hyperParameters"]
    )
    with pytest.raises(
        JobSpecError, match="adapter size 8 is not allowed for gemini-1.5-pro-002; allowed: 1, 4"
    ):
        build_job_spec(
            make_request(model="gemini-1.5-pro-002", adapter_size=8),
            project="p",
            catalog=StubCatalog(),
        )
    with pytest.raises(JobSpecError, match="not in the catalog"):
        build_job_spec(make_request(model="llama"), project="p", catalog=StubCatalog())


def test_job_spec_with_the_real_catalog():
    from autotune.adapters.catalog import ProjectCatalog

    spec = build_job_spec(
        make_request(model="gemini-2.5-flash", adapter_size=16),
        project="p",
        catalog=ProjectCatalog(),
    )
    assert (
        spec.body["supervisedTuningSpec"]["hyperParameters"]["adapterSize"]
        == "ADAPTER_SIZE_SIXTEEN"
    )
    with pytest.raises(JobSpecError, match="cannot be tuned in region asia-east1"):
        build_job_spec(
            make_request(model="gemini-3.5-flash", region="asia-east1"),
            project="p",
            catalog=ProjectCatalog(),
        )


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        (429, None, ErrorKind.QUOTA),
        (None, "RESOURCE_EXHAUSTED", ErrorKind.QUOTA),
        (400, "INVALID_ARGUMENT", ErrorKind.PERMANENT),
        (403, None, ErrorKind.PERMANENT),
        (404, None, ErrorKind.NOT_FOUND),
        (500, "INTERNAL", ErrorKind.TRANSIENT),
        (503, None, ErrorKind.TRANSIENT),
        (None, "DEADLINE_EXCEEDED", ErrorKind.TRANSIENT),
        (None, None, ErrorKind.TRANSIENT),
    ],
)
def test_classify_error(code, status, kind):
    assert classify_error(code, status) == kind


# --- crash between create and the ledger write ---------------------------------------------------


class CrashAfterCreate(Exception):
    pass


class LedgerThatDiesBeforeRecordingTheJob(MemoryLedger):
    """The process dies after the job was created and before SUBMITTED is written: the first
    update of a SUBMITTING record once `service` holds a job."""

    def __init__(self):
        super().__init__()
        self.armed = True
        self.service = None

    def update(self, key, decide):
        if (
            self.armed
            and self.service is not None
            and self.service.created
            and self.docs[key].state == LedgerState.SUBMITTING
        ):
            self.armed = False
            raise CrashAfterCreate()
        return super().update(key, decide)


def test_crash_after_create_adopts_the_job_instead_of_creating_another():
    ledger = LedgerThatDiesBeforeRecordingTheJob()
    pipeline, _, service, bus, clock = memory_pipeline(ledger)
    ledger.service = service
    request = make_request()
    with pytest.raises(CrashAfterCreate):
        submit_request(pipeline, request)
    claimed = ledger.get(request.idempotency_key)
    assert claimed is not None
    assert len(service.created) == 1 and claimed.state == LedgerState.SUBMITTING
    # A redelivery inside the claim is a no-op: the dead submitter might still be alive.
    assert submit_request(pipeline, request) == JobOutcome.DUPLICATE
    # After the claim expires, the status tick takes over and finds the job by its label.
    clock.advance(61)
    summary = status_tick(pipeline)
    assert summary.taken_over == 1
    record = ledger.get(request.idempotency_key)
    assert record is not None
    assert record.state == LedgerState.SUBMITTED and record.job_name == next(iter(service.jobs))
    reason = record.history[-1].reason
    assert reason is not None and "adopted" in reason
    assert len(service.created) == 1 and bus.types() == ["submitted"]


def test_redelivery_after_the_claim_expired_takes_over_too(world):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    service.fail_next(ErrorKind.TRANSIENT, "timeout")
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    assert ledger.get(request.idempotency_key).claim_expires_at is not None
    clock.advance(CREATE_SETTLE_SECONDS)
    assert submit_request(pipeline, request) == JobOutcome.SUBMITTED
    assert ledger.get(request.idempotency_key).attempts == 2


def test_gives_up_after_repeated_attempts_only_when_a_lookup_shows_no_job(world):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    for _ in range(20):
        service.lookup_errors.append(TuningServiceError(ErrorKind.TRANSIENT, "503"))
    for _ in range(5):
        with pytest.raises(TuningServiceError):
            submit_request(pipeline, request)  # Pub/Sub's redeliveries: each takes over at once
    assert ledger.get(request.idempotency_key).failed_attempts == 4
    assert submit_request(pipeline, request) == JobOutcome.DUPLICATE  # now the claim pauses 30 s
    pauses: list[float] = []
    while ledger.get(request.idempotency_key).state == LedgerState.SUBMITTING and len(pauses) < 20:
        pause = (
            parse_timestamp(ledger.get(request.idempotency_key).claim_expires_at) - clock.now
        ).total_seconds()
        pauses.append(pause)
        clock.advance(pause)
        status_tick(pipeline)
    # Past MAX_FAILED_ATTEMPTS the record keeps its slot while the lookups fail (a job may exist)...
    assert pauses[:6] == [30, 60, 120, 240, 480, 900] and len(pauses) > 6
    assert ledger.get(request.idempotency_key).failed_attempts > MAX_FAILED_ATTEMPTS
    record = ledger.get(request.idempotency_key)
    # ...and gives up once a lookup answers that no job carries its label.
    assert (
        record.state == LedgerState.FAILED
        and "gave up after" in record.error
        and "holds no job" in record.error
        and "503" in record.error
    )
    assert bus.types() == ["failed"] and ledger.slots().active == {} and service.created == []


def test_attempts_exhausted_with_the_job_on_the_service_adopt_it(world):
    """A submitter died after its create reached the service, then the service answered 500
    until the attempts ran out: the job it made is adopted, not given up with its slot freed."""
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    service.answers_lost = 1
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    [made] = service.jobs
    for _ in range(MAX_FAILED_ATTEMPTS + 2):
        service.lookup_errors.append(TuningServiceError(ErrorKind.TRANSIENT, "500 internal", 500))
    while ledger.get(request.idempotency_key).state == LedgerState.SUBMITTING:
        clock.advance(
            (
                parse_timestamp(ledger.get(request.idempotency_key).claim_expires_at) - clock.now
            ).total_seconds()
        )
        status_tick(pipeline)
        assert ledger.slots().active  # the slot stays held throughout
    record = ledger.get(request.idempotency_key)
    assert (
        record.state == LedgerState.SUBMITTED
        and record.job_name == made
        and record.failed_attempts > MAX_FAILED_ATTEMPTS
    )
    assert len(service.created) == 1 and bus.types() == ["submitted"]


def test_a_quota_answer_between_failures_starts_the_count_of_attempts_without_an_answer_again(
    world,
):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    for _ in range(3):
        service.lookup_errors.append(TuningServiceError(ErrorKind.TRANSIENT, "503"))
    for _ in range(3):
        with pytest.raises(TuningServiceError):
            submit_request(pipeline, request)
    assert (
        ledger.get(request.idempotency_key).failed_attempts == 2
    )  # counted from the first take-over
    service.fail_next(ErrorKind.QUOTA, "429")
    assert submit_request(pipeline, request) == JobOutcome.QUEUED
    record = ledger.get(request.idempotency_key)
    assert record.state == LedgerState.QUEUED and record.failed_attempts == 0
    clock.advance(QUOTA_PAUSE_SECONDS)
    status_tick(pipeline)
    assert ledger.get(request.idempotency_key).state == LedgerState.SUBMITTED


# --- status tick ---------------------------------------------------------------------------------


def test_tick_records_running_then_succeeded_once_each(world):
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    submit_request(pipeline, request)
    job = ledger.get(request.idempotency_key).job_name
    status_tick(pipeline)
    assert bus.types() == ["submitted"]  # PENDING: nothing new
    service.set_state(job, "JOB_STATE_RUNNING")
    status_tick(pipeline)
    status_tick(pipeline)
    service.succeed(job)
    status_tick(pipeline)
    status_tick(pipeline)
    assert bus.types() == ["submitted", "running", "succeeded"]
    record = ledger.get(request.idempotency_key)
    assert (
        record.state == LedgerState.SUCCEEDED
        and record.tuned_model.endswith("@1")
        and record.tuning_data_stats
    )
    assert bus.events[-1].payload.tuned_model == record.tuned_model
    assert ledger.slots().active == {}


def test_tick_promotes_queued_datasets_in_upload_order(world):
    pipeline, ledger, service, bus, _ = world
    requests = [
        make_request(f"incoming/{i}.jsonl", generation=str(1000 + i), sha256=str(i) * 64)
        for i in range(5)
    ]
    for request in reversed(requests[1:]):  # messages arrive out of order
        submit_request(pipeline, request)
    submit_request(pipeline, requests[0])
    order = []
    for _ in range(20):
        active = [
            r for r in ledger.records() if r.state in {LedgerState.SUBMITTED, LedgerState.RUNNING}
        ]
        assert len(active) <= 1
        for record in active:
            service.succeed(record.job_name)
            order.append(record.dataset_uri)
        status_tick(pipeline)
    assert ledger.max_active_seen == 1
    assert all(r.state == LedgerState.SUCCEEDED for r in ledger.records())
    # The first to arrive took the free slot; the others ran in upload order.
    assert order == [requests[4].dataset_uri] + [r.dataset_uri for r in requests[:4]]


def test_overlapping_ticks_double_nothing(world):
    pipeline, ledger, service, bus, _ = world
    requests = [
        make_request(f"incoming/{i}.jsonl", generation=str(1000 + i), sha256=str(i) * 64)
        for i in range(3)
    ]
    for request in requests:
        submit_request(pipeline, request)
    service.succeed(ledger.get(requests[0].idempotency_key).job_name)
    threads = [threading.Thread(target=status_tick, args=(pipeline,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(service.created) == 2
    assert ledger.max_active_seen == 1
    assert bus.types().count("succeeded") == 1 and bus.types().count("submitted") == 2
    assert len({e.id for e in bus.events}) == len(bus.events)


def test_a_failed_job_publishes_failed_with_its_error(world):
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    submit_request(pipeline, request)
    job = ledger.get(request.idempotency_key).job_name
    service.set_state(
        job, "JOB_STATE_FAILED", error="the training data has 3 bad lines", started=True
    )
    status_tick(pipeline)
    assert bus.types() == ["submitted", "running", "failed"]
    assert bus.events[-1].payload.error == "the training data has 3 bad lines"


def test_a_job_that_vanished_is_recorded_failed(world):
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    submit_request(pipeline, request)
    service.jobs.clear()
    status_tick(pipeline)
    assert ledger.get(request.idempotency_key).state == LedgerState.FAILED
    assert "no longer exists" in bus.events[-1].payload.error


def test_transient_error_while_polling_keeps_the_record(world):
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    submit_request(pipeline, request)
    service.fail_next(ErrorKind.TRANSIENT, "503")
    summary = status_tick(pipeline)
    assert summary.errors and ledger.get(request.idempotency_key).state == LedgerState.SUBMITTED


def test_events_left_in_the_outbox_by_a_crash_are_published_by_a_later_tick(world):
    pipeline, ledger, service, _, clock = world

    class DeadBus:
        def publish_event(self, event):
            raise ConnectionError("bus down")

    alive = pipeline.publisher
    pipeline.publisher = DeadBus()
    request = make_request()
    with pytest.raises(ConnectionError):
        submit_request(pipeline, request)
    assert ledger.get(request.idempotency_key).state == LedgerState.SUBMITTED
    pipeline.publisher = alive
    status_tick(pipeline)
    assert alive.types() == []  # too fresh: its submitter may still be publishing it
    clock.advance(31)
    status_tick(pipeline)
    status_tick(pipeline)
    assert alive.types() == ["submitted"] and ledger.get(request.idempotency_key).outbox == ()


def test_cancel_a_running_job_then_tick_records_cancelled(world):
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    submit_request(pipeline, request)
    assert cancel(pipeline, request.idempotency_key) == JobOutcome.CANCELLED
    status_tick(pipeline)
    assert ledger.get(request.idempotency_key).state == LedgerState.CANCELLED
    assert bus.types() == ["submitted", "cancelled"]


def test_cancel_a_queued_dataset_removes_it_from_the_queue(world):
    pipeline, ledger, service, bus, _ = world
    first, second = (
        make_request("incoming/a.jsonl", sha256="1" * 64),
        make_request("incoming/b.jsonl", sha256="2" * 64),
    )
    submit_request(pipeline, first)
    submit_request(pipeline, second)
    assert cancel(pipeline, second.idempotency_key) == JobOutcome.CANCELLED
    assert ledger.slots().queued == {}
    assert (
        bus.types()[-1] == "cancelled"
        and bus.events[-1].payload.error == "cancelled by the user before it was submitted"
    )
    assert ledger.get(second.idempotency_key).state == LedgerState.CANCELLED


def test_cancel_an_ended_dataset_says_why_not(world):
    pipeline, ledger, service, _, _ = world
    request = make_request()
    service.fail_next(ErrorKind.PERMANENT, "no")
    submit_request(pipeline, request)
    with pytest.raises(ValueError, match="is FAILED"):
        cancel(pipeline, request.idempotency_key)


def test_submit_message_accepts_the_encoded_request(world):
    pipeline, *_ = world
    assert submit_message(pipeline, encode_request(make_request())) == JobOutcome.SUBMITTED


def test_take_over_of_a_request_that_no_longer_makes_a_job_fails_it(world):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    service.lookup_errors.append(TuningServiceError(ErrorKind.TRANSIENT, "503"))
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)

    class ShrunkCatalog(StubCatalog):
        def regions(self, model):
            return {"europe-west4"}

    pipeline.catalog = ShrunkCatalog()
    assert submit_request(pipeline, request) == JobOutcome.FAILED
    record = ledger.get(request.idempotency_key)
    assert (
        record.state == LedgerState.FAILED
        and "cannot be tuned in region us-central1" in record.error
    )
    assert ledger.slots().active == {} and bus.types() == ["failed"]


def test_a_mover_publishes_only_the_events_of_its_own_move(world):
    """Tick A records RUNNING; before A has published, tick B records SUCCEEDED on the same
    record (whose outbox still holds A's event). Each publishes its own event: none twice."""
    pipeline, ledger, service, _, _ = world
    request = make_request()
    submit_request(pipeline, request)
    job_name = ledger.get(request.idempotency_key).job_name
    service.set_state(job_name, "JOB_STATE_RUNNING")
    published: list[str] = []

    class InterleavingBus:
        """The first publish (A's RUNNING) lets a whole second tick run before it goes out."""

        def publish_event(self, event):
            if not published:
                published.append("pending")
                service.succeed(job_name)
                status_tick(pipeline)
            published.append(event.type.value.rsplit(".", 1)[1])

    pipeline.publisher = InterleavingBus()
    status_tick(pipeline)
    assert sorted(published[1:]) == ["running", "succeeded"]
    assert ledger.get(request.idempotency_key).outbox == ()


def test_overlapping_ticks_publish_crash_leftovers_once(world):
    """Two ticks that both find the same leftover in the outbox: one leases it, one publishes."""
    pipeline, ledger, service, bus, clock = world

    class DeadBus:
        def publish_event(self, event):
            raise ConnectionError("bus down")

    pipeline.publisher = DeadBus()
    request = make_request()
    with pytest.raises(ConnectionError):
        submit_request(pipeline, request)
    clock.advance(31)
    published: list[str] = []

    class InterleavingBus:
        def publish_event(self, event):
            if not published:
                published.append("pending")
                status_tick(pipeline)  # the overlapping tick: the leftover is leased, not its
            published.append(event.type.value.rsplit(".", 1)[1])

    pipeline.publisher = InterleavingBus()
    status_tick(pipeline)
    assert published[1:] == ["submitted"]
    assert ledger.get(request.idempotency_key).outbox == ()


@pytest.mark.parametrize("state", ["JOB_STATE_NEWLY_ADDED", "42"])
def test_an_unknown_job_state_is_recorded_as_seen_warned_once_and_polled_on(world, capsys, state):
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    submit_request(pipeline, request)
    job = ledger.get(request.idempotency_key).job_name
    service.set_state(job, "JOB_STATE_RUNNING")
    status_tick(pipeline)
    capsys.readouterr()
    service.set_state(job, state)
    for _ in range(3):
        assert status_tick(pipeline).errors == []
    record = ledger.get(request.idempotency_key)
    assert (
        record.state == LedgerState.RUNNING
        and record.job_state == state
        and bus.types() == ["submitted", "running"]
    )
    assert capsys.readouterr().out.count("a job state autotune does not know") == 1
    service.succeed(job)
    status_tick(pipeline)
    assert ledger.get(request.idempotency_key).state == LedgerState.SUCCEEDED
