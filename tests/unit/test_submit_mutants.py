"""Submit and cancel in the detail an operator or a user meets them: what each log line names (the
dataset, the key, the job, the service's error), the reasons and errors written into records and
events, which requests the bucket's records refuse and what submit asks the bucket, the rules that
decide whether a service error fails a dataset or is retried, and what a submitter does when the
ledger names another job than the one it found or made."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from job_doubles import FakeTuningService, make_request, memory_pipeline

from autotune.events import EventPayload, EventType, make_event
from autotune.intake.objects import REPORT_REQUEST_FIELD, pinned_object_name, report_object_name
from autotune.jobs.cancel import cancel
from autotune.jobs.decisions import MAX_FAILED_ATTEMPTS
from autotune.jobs.documents import JobOutcome
from autotune.jobs.job_spec import KEY_LABEL
from autotune.jobs.lifecycle import LedgerState, parse_timestamp
from autotune.jobs.ports import ErrorKind, TuningServiceError
from autotune.jobs.request import DatasetRef, TuningRequest, content_key, idempotency_key
from autotune.jobs.submit import (
    pinned_copy_problem,
    refusal_event,
    submit_message,
    submit_request,
)
from autotune.jobs.tick import status_tick
from autotune.settings import TuningSettings

BUCKET = "bkt"
SHA = hashlib.sha256(b"validated bytes").hexdigest()
PINNED = pinned_object_name("reports/", SHA)


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def the_line(lines: list[dict], message: str) -> dict:
    [line] = [line for line in lines if line["message"] == message]
    return line


class BucketRecords:
    """The dataset bucket as submit re-reads it: reports and pinned copies' generations, and
    every name submit asked about."""

    def __init__(self) -> None:
        self.reports: dict[str, bytes] = {}
        self.generations: dict[str, str] = {}
        self.asked: list[str] = []

    def read_report(self, name: str) -> bytes | None:
        self.asked.append(name)
        return self.reports.get(name)

    def generation_of(self, name: str) -> str | None:
        self.asked.append(name)
        return self.generations.get(name)

    def validated(self, request: TuningRequest) -> None:
        """What validate leaves behind for `request`: its report and its pinned copy."""
        keys = {"idempotency_key": request.idempotency_key, "content_key": request.content_key}
        name = report_object_name("reports/", request.training.object, request.training.generation)
        self.reports[name] = json.dumps({"valid": True, REPORT_REQUEST_FIELD: keys}).encode()
        self.generations[PINNED] = "900"


def genuine_request(
    name: str = "incoming/data.jsonl", generation: str = "1764000000000001"
) -> TuningRequest:
    """A request as validate publishes it: keys that hash its fields, a pinned copy, its report."""
    settings = TuningSettings(model="gemini-3.5-flash", epochs=3, region="us-central1")
    content = content_key(SHA, None, settings)
    return TuningRequest(
        idempotency_key=idempotency_key(BUCKET, name, generation, content),
        content_key=content,
        training=DatasetRef(
            bucket=BUCKET,
            object=name,
            generation=generation,
            sha256=SHA,
            size=100,
            pinned_object=PINNED,
            pinned_generation="900",
        ),
        settings=settings,
        report_uri=f"gs://{BUCKET}/{report_object_name('reports/', name, generation)}",
        requested_at="2026-11-25T12:00:00Z",
    )


@pytest.fixture
def checked_world():
    """A pipeline that acts on a request only when the bucket's records back it."""
    records = BucketRecords()
    pipeline, ledger, service, bus, clock = memory_pipeline(dataset_bucket=BUCKET, datasets=records)
    return pipeline, ledger, service, bus, records


@pytest.fixture
def world():
    return memory_pipeline()


# --- a message that is no request ------------------------------------------------------------


def test_a_poison_message_is_logged_with_its_id_size_and_why_before_it_is_dead_lettered(
    world, capsys
):
    pipeline, *_ = world
    data = b'{"schema_version": 1, "idempotency_key": 5}'
    with pytest.raises(ValueError) as raised:
        submit_message(pipeline, data, message_id="m-1")
    [line] = log_lines(capsys)
    assert line["severity"] == "ERROR"
    assert line["message"] == (
        "tuning request rejected: not a valid TuningRequest; it will go to the dead-letter topic"
    )
    assert line["reason"] == str(raised.value)
    assert line["message_id"] == "m-1" and line["size"] == len(data)


def test_a_poison_message_without_an_id_is_logged_with_an_empty_one(world, capsys):
    pipeline, *_ = world
    with pytest.raises(ValueError):
        submit_message(pipeline, b"not json")
    [line] = log_lines(capsys)
    assert line["message_id"] == "" and line["size"] == len(b"not json")


# --- requests the bucket's records do not back --------------------------------------------------


def test_a_request_the_bucket_backs_is_submitted_after_reading_its_report_and_pinned_copy(
    checked_world,
):
    pipeline, ledger, service, bus, records = checked_world
    request = genuine_request()
    records.validated(request)
    assert submit_request(pipeline, request) == JobOutcome.SUBMITTED
    assert len(service.created) == 1 and bus.types() == ["submitted"]
    assert records.asked == [
        "reports/incoming/data.jsonl/1764000000000001.json",
        PINNED,
    ]


def test_a_request_never_validated_is_refused_logged_and_announced_without_a_record(
    checked_world, capsys
):
    pipeline, ledger, service, bus, records = checked_world
    request = genuine_request()
    assert submit_request(pipeline, request) == JobOutcome.REFUSED
    reason = (
        "no report gs://bkt/reports/incoming/data.jsonl/1764000000000001.json: "
        "autotune never validated this upload"
    )
    assert service.created == [] and ledger.get(request.idempotency_key) is None
    line = the_line(log_lines(capsys), "submit: tuning request refused, no job")
    assert line["severity"] == "ERROR"
    assert line["dataset"] == ascii("gs://bkt/incoming/data.jsonl")
    assert line["idempotency_key"] == ascii(request.idempotency_key)
    assert line["reason"] == reason
    [event] = bus.events
    assert event.type == EventType.JOB_REFUSED
    assert event.payload.error == reason
    assert event.payload.dataset_uri == "gs://bkt/incoming/data.jsonl"
    assert event.payload.idempotency_key == request.idempotency_key
    assert event.time == "2026-11-25T12:00:00Z"  # the pipeline's clock, not the machine's


def test_a_pinned_copy_written_over_after_validation_is_refused(checked_world):
    pipeline, ledger, service, bus, records = checked_world
    request = genuine_request()
    records.validated(request)
    records.generations[PINNED] = "901"
    assert submit_request(pipeline, request) == JobOutcome.REFUSED
    assert "was written over (generation 901, validated 900)" in bus.events[0].payload.error
    assert service.created == []


def test_a_request_for_another_bucket_is_refused_by_the_bucket_check(checked_world):
    pipeline, ledger, service, bus, records = checked_world
    request = genuine_request()
    records.validated(request)
    pipeline.dataset_bucket = "other-bucket"
    assert submit_request(pipeline, request) == JobOutcome.REFUSED
    assert "is not in the dataset bucket other-bucket" in bus.events[0].payload.error


def test_settings_out_of_the_catalogs_limits_are_refused(checked_world):
    pipeline, ledger, service, bus, records = checked_world
    settings = TuningSettings(model="gemini-3.5-flash", epochs=10_000, region="us-central1")
    base = genuine_request()
    content = content_key(SHA, None, settings)
    request = msgspec.structs.replace(
        base,
        settings=settings,
        content_key=content,
        idempotency_key=idempotency_key(BUCKET, base.training.object, "1764000000000001", content),
    )
    records.validated(request)
    assert submit_request(pipeline, request) == JobOutcome.REFUSED
    assert bus.events[0].payload.error.startswith("settings out of limits: ")


def test_a_name_too_long_for_the_bucket_is_refused_without_asking_the_bucket(checked_world, capsys):
    pipeline, ledger, service, bus, records = checked_world
    name = "incoming/" + "n" * 1200 + ".jsonl"
    request = msgspec.structs.replace(genuine_request(name), idempotency_key="k" * 100)
    assert submit_request(pipeline, request) == JobOutcome.REFUSED
    assert records.asked == []  # a name Cloud Storage cannot hold is never sent to it
    line = the_line(log_lines(capsys), "submit: tuning request refused, no job")
    # The line stays a bounded size whatever the request held.
    assert line["dataset"] == ascii(request.training.uri[:1100])
    assert line["idempotency_key"] == ascii("k" * 80)
    assert line["reason"].startswith("the training object name is 1215 bytes")


def test_a_pinned_name_that_is_not_utf8_is_refused_without_asking_the_bucket(checked_world):
    pipeline, ledger, service, bus, records = checked_world
    good = genuine_request()
    records.validated(good)
    bad_pin = msgspec.structs.replace(good.training, pinned_object="reports/pinned/\ud800.jsonl")
    request = msgspec.structs.replace(good, training=bad_pin)
    assert submit_request(pipeline, request) == JobOutcome.REFUSED
    assert records.asked == []  # not even the report: the request is refused as unvalidated
    assert bus.events[0].payload.error.startswith("no report gs://bkt/reports/incoming/data.jsonl/")


def test_a_refused_request_with_an_empty_generation_says_so_and_invents_none(checked_world):
    pipeline, ledger, service, bus, records = checked_world
    request = genuine_request(generation="")
    assert submit_request(pipeline, request) == JobOutcome.REFUSED
    [event] = bus.events
    assert event.payload.generation == ""
    assert "generation '' is not a Cloud Storage generation" in event.payload.error


def test_a_refusal_holding_text_that_is_not_utf8_still_makes_an_encodable_event():
    request = genuine_request()
    event = refusal_event(
        request, "the model '\ud800' is unknown", datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert event.type == EventType.JOB_REFUSED
    error = event.payload.error
    assert error is not None and "\\ud800" in error
    error.encode("utf-8")  # a subscriber must be able to read it


# --- the pinned copies, re-checked before a queued dataset's job is created ----------------------


def test_pinned_copy_problem_compares_the_copy_with_the_validated_generation():
    records = BucketRecords()
    pipeline, *_ = memory_pipeline(dataset_bucket=BUCKET, datasets=records)
    request = genuine_request()
    records.generations[PINNED] = "900"
    assert pinned_copy_problem(pipeline, request) is None
    assert records.asked == [PINNED]
    records.generations[PINNED] = "901"
    overwritten = pinned_copy_problem(pipeline, request)
    assert overwritten is not None
    assert "was written over (generation 901, validated 900)" in overwritten
    del records.generations[PINNED]
    assert pinned_copy_problem(pipeline, request) == (
        f"the pinned copy gs://bkt/{PINNED} of gs://bkt/incoming/data.jsonl no longer exists"
    )


def test_pinned_copy_problem_reads_the_copy_under_the_pipelines_reports_prefix():
    records = BucketRecords()
    pipeline, *_ = memory_pipeline(
        dataset_bucket=BUCKET, datasets=records, reports_prefix="checks/"
    )
    request = genuine_request()  # pinned under reports/, not where this pipeline keeps them
    records.generations[PINNED] = "900"
    problem = pinned_copy_problem(pipeline, request)
    assert problem is not None and "is not the one named by its validated sha256" in problem


def test_pinned_copy_problem_has_nothing_to_compare_without_the_bucket_or_a_pinned_copy():
    with_pins = genuine_request()
    without_bucket, *_ = memory_pipeline()
    assert pinned_copy_problem(without_bucket, with_pins) is None
    records = BucketRecords()
    with_bucket, *_ = memory_pipeline(dataset_bucket=BUCKET, datasets=records)
    assert pinned_copy_problem(with_bucket, make_request()) is None  # a record from before pins
    assert records.asked == []


# --- the claim and what the submitter logs about it -----------------------------------------------


def test_a_queued_dataset_is_logged_with_its_state_and_why_it_waits(world, capsys):
    pipeline, ledger, *_ = world
    submit_request(pipeline, make_request("incoming/a.jsonl", sha256="1" * 64))
    second = make_request("incoming/b.jsonl", sha256="2" * 64)
    capsys.readouterr()
    assert submit_request(pipeline, second) == JobOutcome.QUEUED
    [line] = log_lines(capsys)
    assert line["message"] == "submit: no free job slot, queued"
    assert line["dataset"] == "gs://bkt/incoming/b.jsonl"
    assert line["idempotency_key"] == second.idempotency_key
    assert line["state"] == "QUEUED"
    assert (
        line["reason"]
        == ledger.get(second.idempotency_key).reason
        == ("1 of 1 job slots in use, 0 waiting")
    )


def test_settings_that_make_no_job_fail_at_once_even_while_every_slot_is_taken(world):
    pipeline, ledger, service, bus, _ = world
    submit_request(pipeline, make_request("incoming/a.jsonl", sha256="1" * 64))
    impossible = make_request("incoming/b.jsonl", sha256="2" * 64, region="asia-south2")
    # Not queued behind the running job only to fail once a slot frees up.
    assert submit_request(pipeline, impossible) == JobOutcome.FAILED
    record = ledger.get(impossible.idempotency_key)
    assert record.state == LedgerState.FAILED and "cannot be tuned in region asia-south2" in (
        record.error
    )
    assert ledger.slots().queued == {}


def test_the_job_runs_as_the_configured_service_account(world):
    pipeline, _, service, *_ = world
    pipeline.service_account = "tuner@p.iam.gserviceaccount.com"
    submit_request(pipeline, make_request())
    [(_, body)] = service.created
    assert body["serviceAccount"] == "tuner@p.iam.gserviceaccount.com"


def test_a_take_over_publishes_only_its_own_events_not_a_crashed_holders_leftovers(world):
    """Events a crashed holder left in the outbox are the status tick's to publish (it leases
    them), not the next submitter's: published by both, a subscriber would see them twice."""
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    service.lookup_errors.append(TuningServiceError(ErrorKind.TRANSIENT, "503"))
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    leftover = make_event(
        EventType.JOB_QUEUED,
        EventPayload(dataset_uri=request.training.uri, generation="1", idempotency_key="k"),
    )
    record = ledger.docs[request.idempotency_key]
    ledger.docs[request.idempotency_key] = msgspec.structs.replace(record, outbox=(leftover,))
    assert submit_request(pipeline, request) == JobOutcome.SUBMITTED
    assert bus.types() == ["submitted"]
    assert [event.id for event in ledger.get(request.idempotency_key).outbox] == [leftover.id]


# --- adopting or creating the job ---------------------------------------------------------------


def test_a_recorded_job_is_logged_with_its_name_and_whether_it_was_adopted(world, capsys):
    pipeline, ledger, service, _, _ = world
    request = make_request()
    submit_request(pipeline, request)
    line = the_line(log_lines(capsys), "submit: job recorded")
    assert line["idempotency_key"] == request.idempotency_key
    assert line["job"] == ledger.get(request.idempotency_key).job_name
    assert line["adopted"] is False


class ProcessDies(Exception):
    """The submitter's process ends mid-lookup: no error is recorded and the claim just expires."""


def crash_in_the_lookup(service: FakeTuningService) -> None:
    service.lookup_errors.append(ProcessDies())  # type: ignore[arg-type]


def test_gives_up_on_the_last_look_when_no_job_carries_the_label(world, capsys):
    pipeline, ledger, service, bus, clock = world
    request = make_request()
    crash_in_the_lookup(service)
    with pytest.raises(ProcessDies):
        submit_request(pipeline, request)
    for _ in range(MAX_FAILED_ATTEMPTS - 1):  # each redelivery after the claim expired takes over
        clock.advance(61)
        crash_in_the_lookup(service)
        with pytest.raises(ProcessDies):
            submit_request(pipeline, request)
    assert ledger.get(request.idempotency_key).failed_attempts == MAX_FAILED_ATTEMPTS - 1
    clock.advance(61)
    capsys.readouterr()
    assert submit_request(pipeline, request) == JobOutcome.FAILED
    key = request.idempotency_key
    error = (
        f"gave up after {MAX_FAILED_ATTEMPTS} submit attempts without an answer; the tuning "
        f"service holds no job labelled {KEY_LABEL}={key}"
    )
    record = ledger.get(key)
    assert record.state == LedgerState.FAILED and service.created == []
    assert record.error == error  # no "last error": the dead holders recorded none
    assert record.reason == "submit attempts exhausted"
    line = the_line(log_lines(capsys), "submit: gave up, no job carries the dataset's label")
    assert line["severity"] == "ERROR"
    assert line["idempotency_key"] == key and line["error"] == error
    assert bus.types() == ["failed"] and bus.events[0].payload.error == error


class MeddlingService(FakeTuningService):
    """A tuning service during whose next lookup or create something else happens (another
    submitter, a take-over): `after_next_lookup` (of the fake service) and `after_create` run
    once, before the call answers."""

    def __init__(self) -> None:
        super().__init__()
        self.after_create: Callable[[], object] | None = None
        self.cancel_error: TuningServiceError | None = None

    def create(self, parent, job):
        try:
            return super().create(parent, job)
        finally:  # an error answer too comes back only after the hook ran
            hook, self.after_create = self.after_create, None
            if hook is not None:
                hook()

    def cancel(self, name):
        if self.cancel_error is not None:
            raise self.cancel_error
        super().cancel(name)


@pytest.fixture
def meddled_world():
    pipeline, ledger, _, bus, clock = memory_pipeline()
    service = MeddlingService()
    pipeline.service = service
    return pipeline, ledger, service, bus, clock


def test_a_holder_whose_claim_passed_on_during_its_lookup_logs_that_it_made_no_job(
    meddled_world, capsys
):
    pipeline, ledger, service, bus, clock = meddled_world
    request = make_request()

    def another_submitter_takes_over():
        clock.advance(61)
        assert submit_request(pipeline, request) == JobOutcome.SUBMITTED

    service.after_next_lookup = another_submitter_takes_over
    assert submit_request(pipeline, request) == JobOutcome.DUPLICATE
    assert len(service.created) == 1
    line = the_line(
        log_lines(capsys),
        "submit: the claim passed to another submitter before the create; no job made here",
    )
    assert line["severity"] == "WARNING"
    assert line["idempotency_key"] == request.idempotency_key and line["attempt"] == 1


def a_take_over_records_another_job(pipeline, clock, service, request, hide: str | None = None):
    """While the first holder's call is on its way its claim expires; a redelivery takes over,
    does not see the first holder's job (list lag) and creates and records its own."""

    def take_over():
        service.hidden_from_lookup.update(service.jobs if hide is None else {hide})
        clock.advance(pipeline.claim_seconds + 1)
        assert submit_request(pipeline, request) == JobOutcome.SUBMITTED

    return take_over


def test_a_created_job_the_ledger_does_not_name_is_cancelled_and_logged(meddled_world, capsys):
    pipeline, ledger, service, bus, clock = meddled_world
    request = make_request()
    service.after_create = a_take_over_records_another_job(pipeline, clock, service, request)
    assert submit_request(pipeline, request) == JobOutcome.CONFLICT
    first, second = service.jobs
    assert ledger.get(request.idempotency_key).job_name == second
    assert service.cancelled == [first]
    line = the_line(
        log_lines(capsys), "submit: the ledger already names another job for this dataset"
    )
    assert line["severity"] == "ERROR"
    assert line["idempotency_key"] == request.idempotency_key and line["job"] == first
    assert bus.types() == ["submitted"]


def test_a_duplicate_that_cannot_be_cancelled_is_logged_for_an_operator(meddled_world, capsys):
    pipeline, ledger, service, bus, clock = meddled_world
    request = make_request()
    service.after_create = a_take_over_records_another_job(pipeline, clock, service, request)
    service.cancel_error = TuningServiceError(ErrorKind.PERMANENT, "permission denied", 403)
    assert submit_request(pipeline, request) == JobOutcome.CONFLICT
    first, _ = service.jobs
    line = the_line(log_lines(capsys), "could not cancel a duplicate job")
    assert line["severity"] == "ERROR"
    assert line["job"] == first and line["error"] == "permission denied"


def test_an_adopted_job_the_ledger_does_not_name_is_left_running(meddled_world):
    """The submitter did not make the job it found: it is not its to cancel (the status tick's
    watch for second jobs deals with it)."""
    pipeline, ledger, service, bus, clock = meddled_world
    request = make_request()
    service.answers_lost = 1  # a first create makes its job but its answer is lost
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    [found] = service.jobs
    clock.advance(pipeline.create_settle_seconds + 1)
    service.after_next_lookup = a_take_over_records_another_job(
        pipeline, clock, service, request, hide=found
    )
    assert submit_request(pipeline, request) == JobOutcome.CONFLICT
    assert ledger.get(request.idempotency_key).job_name != found
    assert service.cancelled == []


def test_a_job_recorded_after_an_unanswered_attempt_is_watched_for_the_configured_time(world):
    pipeline, ledger, service, _, clock = world
    pipeline.duplicate_watch_seconds = 1234
    request = make_request()
    service.lookup_errors.append(TuningServiceError(ErrorKind.TRANSIENT, "503"))
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    assert submit_request(pipeline, request) == JobOutcome.SUBMITTED
    watch = ledger.get(request.idempotency_key).duplicate_watch_until
    assert parse_timestamp(watch) == clock.now + timedelta(seconds=1234)


# --- what a service error does to the dataset ---------------------------------------------------


def test_a_refused_lookup_on_a_first_attempt_fails_the_dataset(world, capsys):
    """No earlier attempt can have made a job: the service's refusal is final."""
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    service.lookup_errors.append(TuningServiceError(ErrorKind.NOT_FOUND, "no such location", 404))
    assert submit_request(pipeline, request) == JobOutcome.FAILED
    assert ledger.get(request.idempotency_key).error == "no such location"
    line = the_line(log_lines(capsys), "submit: tuning service refused the job")
    assert line["severity"] == "ERROR"
    assert line == {
        "severity": "ERROR",
        "message": "submit: tuning service refused the job",
        "idempotency_key": request.idempotency_key,
        "error": "no such location",
        "code": 404,
        "kind": "not_found",
        "creating": False,
    }


def test_a_refused_lookup_after_an_unanswered_attempt_is_retried_keeping_the_slot(world):
    """One earlier attempt got no answer (failed_attempts 1, no create left unanswered): a job
    may exist, and only a lookup that answers can say so."""
    pipeline, ledger, service, _, _ = world
    request = make_request()
    service.lookup_errors.append(TuningServiceError(ErrorKind.TRANSIENT, "503"))
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    service.lookup_errors.append(TuningServiceError(ErrorKind.PERMANENT, "bad request", 400))
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    record = ledger.get(request.idempotency_key)
    assert record.failed_attempts == 1 and not record.create_unanswered
    assert record.state == LedgerState.SUBMITTING and ledger.slots().active


def test_a_refused_create_after_an_unanswered_attempt_fails_the_dataset(world):
    """The create's own answer is final even when an earlier attempt went unanswered."""
    pipeline, ledger, service, bus, _ = world
    request = make_request()
    service.lookup_errors.append(TuningServiceError(ErrorKind.TRANSIENT, "503"))
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    service.fail_next(ErrorKind.PERMANENT, "invalid hyperparameters", 400)
    assert submit_request(pipeline, request) == JobOutcome.FAILED
    assert ledger.get(request.idempotency_key).error == "invalid hyperparameters"
    assert bus.types() == ["failed"]


def test_a_full_quota_queues_the_dataset_with_the_services_message_and_logs_it(world, capsys):
    pipeline, ledger, service, _, _ = world
    request = make_request()
    service.fail_next(ErrorKind.QUOTA, "Quota exceeded for tuning jobs", 429)
    assert submit_request(pipeline, request) == JobOutcome.QUEUED
    record = ledger.get(request.idempotency_key)
    assert record.reason == (
        "the tuning service's quota is full (429): Quota exceeded for tuning jobs"
    )
    line = the_line(log_lines(capsys), "submit: tuning service quota full, dataset queued")
    assert line["severity"] == "WARNING"
    assert line["idempotency_key"] == request.idempotency_key
    assert line["error"] == "Quota exceeded for tuning jobs"
    assert (line["code"], line["kind"], line["creating"]) == (429, "quota", True)


def test_a_create_without_an_answer_logs_the_retry_and_its_settle_pause(world, capsys):
    pipeline, ledger, service, _, _ = world
    pipeline.create_settle_seconds = 45
    request = make_request()
    service.fail_next(ErrorKind.TRANSIENT, "deadline exceeded", 504)
    with pytest.raises(TuningServiceError):
        submit_request(pipeline, request)
    line = the_line(log_lines(capsys), "submit: tuning service error, will retry")
    assert line["severity"] == "WARNING"
    assert line["settle_seconds"] == 45
    assert line["idempotency_key"] == request.idempotency_key
    assert (line["error"], line["code"], line["kind"], line["creating"]) == (
        "deadline exceeded",
        504,
        "transient",
        True,
    )


def test_a_dataset_that_moved_on_during_the_create_is_left_as_it_now_is(meddled_world):
    """The create's quota answer came back after a take-over had settled the dataset (the
    service refused the taker's create): nothing is left to record, and the dataset stays
    FAILED instead of going back to the queue."""
    pipeline, ledger, service, bus, clock = meddled_world
    request = make_request()

    def another_submitter_fails_it():
        clock.advance(pipeline.claim_seconds + 1)
        service.hidden_from_lookup.update(service.jobs)
        service.fail_next(ErrorKind.PERMANENT, "refused")
        assert submit_request(pipeline, request) == JobOutcome.FAILED

    service.after_create = another_submitter_fails_it
    service.fail_next(ErrorKind.QUOTA, "quota", 429)
    assert submit_request(pipeline, request) == JobOutcome.DUPLICATE
    assert ledger.get(request.idempotency_key).state == LedgerState.FAILED
    assert ledger.slots().queued == {} and bus.types() == ["failed"]


def test_a_last_look_that_another_submitter_settled_first_records_nothing_more(meddled_world):
    pipeline, ledger, service, bus, clock = meddled_world
    request = make_request()
    for attempt in range(MAX_FAILED_ATTEMPTS):
        clock.advance(61 if attempt else 0)
        crash_in_the_lookup(service)
        with pytest.raises(ProcessDies):
            submit_request(pipeline, request)

    def another_submitter_gives_up_first():
        clock.advance(61)
        assert submit_request(pipeline, request) == JobOutcome.FAILED

    clock.advance(61)
    service.after_next_lookup = another_submitter_gives_up_first
    assert submit_request(pipeline, request) == JobOutcome.DUPLICATE
    assert bus.types() == ["failed"]  # announced once, by the one that gave up


# --- cancel ---------------------------------------------------------------------------------------


def test_cancelling_an_unknown_key_names_the_key(world):
    pipeline, *_ = world
    with pytest.raises(LookupError, match="no ledger record no-such-key"):
        cancel(pipeline, "no-such-key")


def test_a_finished_job_is_not_cancelled_on_the_service(world):
    pipeline, ledger, service, _, _ = world
    request = make_request()
    submit_request(pipeline, request)
    job = ledger.get(request.idempotency_key).job_name
    service.succeed(job)
    status_tick(pipeline)
    with pytest.raises(ValueError) as refused:
        cancel(pipeline, request.idempotency_key)
    assert str(refused.value) == (
        "gs://bkt/incoming/data.jsonl is SUCCEEDED: only a QUEUED, SUBMITTED or RUNNING dataset "
        "can be cancelled"
    )
    assert service.cancelled == []


def test_cancelling_a_dataset_promoted_out_of_the_queue_meanwhile_changes_nothing(
    world, monkeypatch
):
    """The record read said QUEUED, but a status tick promoted it before the update: the queued
    cancel does not apply any more, and no `cancelled` event is published for a job that runs."""
    pipeline, ledger, service, bus, clock = world
    first = make_request("incoming/a.jsonl", sha256="1" * 64)
    second = make_request("incoming/b.jsonl", sha256="2" * 64)
    submit_request(pipeline, first)
    submit_request(pipeline, second)
    as_read = ledger.get(second.idempotency_key)
    cancel(pipeline, first.idempotency_key)
    service.set_state(ledger.get(first.idempotency_key).job_name, "JOB_STATE_CANCELLED")
    status_tick(pipeline)  # records the first CANCELLED and promotes the second
    assert ledger.get(second.idempotency_key).state == LedgerState.SUBMITTED
    events_before = list(bus.types())
    monkeypatch.setattr(ledger, "get", lambda key: as_read)
    assert cancel(pipeline, second.idempotency_key) == JobOutcome.DUPLICATE
    assert bus.types() == events_before
