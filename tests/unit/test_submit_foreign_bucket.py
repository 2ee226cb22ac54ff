"""A tuning request naming files outside the dataset bucket was not validated by autotune (only
the validate function publishes requests, always for its own bucket): submit refuses it with a
failed record and a job.v1.failed event saying why, and never calls the tuning service."""

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

from autotune.events import EventType
from autotune.jobs.documents import JobOutcome
from autotune.jobs.job_spec import JobSpecError, build_job_spec
from autotune.jobs.lifecycle import LedgerState
from autotune.jobs.pipeline import Pipeline
from autotune.jobs.request import DatasetRef
from autotune.jobs.submit import submit_request


@pytest.fixture
def world():
    ledger, service, bus = MemoryLedger(), FakeTuningService(), RecordingPublisher()
    pipeline = Pipeline(
        ledger=ledger,
        service=service,
        publisher=bus,
        catalog=StubCatalog(),
        project="p",
        clock=SteppingClock(),
        dataset_bucket="bkt",
    )
    return pipeline, ledger, service, bus


def test_training_file_in_another_bucket_fails_with_a_reason_and_no_job(world):
    pipeline, ledger, service, bus = world
    request = make_request(bucket="someone-elses-bucket")
    assert submit_request(pipeline, request) == JobOutcome.FAILED
    assert service.created == []
    record = ledger.get(request.idempotency_key)
    assert record.state == LedgerState.FAILED
    assert (
        "gs://someone-elses-bucket/incoming/data.jsonl is not in the dataset bucket bkt"
        in record.error
    )
    [event] = bus.events
    assert event.type == EventType.JOB_FAILED and event.payload.error == record.error


def test_validation_file_in_another_bucket_is_refused_too():
    request = make_request()
    elsewhere = DatasetRef(
        bucket="other", object="v.jsonl", generation="1", sha256="b" * 64, size=10
    )
    with pytest.raises(JobSpecError, match="gs://other/v.jsonl is not in the dataset bucket bkt"):
        build_job_spec(
            msgspec.structs.replace(request, validation=elsewhere),
            project="p",
            catalog=StubCatalog(),
            dataset_bucket="bkt",
        )


def test_own_bucket_is_submitted(world):
    pipeline, _, service, _ = world
    assert submit_request(pipeline, make_request(bucket="bkt")) == JobOutcome.SUBMITTED
    assert len(service.created) == 1
