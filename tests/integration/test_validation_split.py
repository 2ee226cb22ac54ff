"""A training file uploaded alone with `autotune-validation-split`, on the local stack: the split
files are written beside it, the job gets both (its validation dataset is the pinned copy of the
split validation file), and the same upload delivered again gives the same files and one job.
Judged from the bucket, the ledger, the events and the tuning job the emulator holds."""

from __future__ import annotations

import time

import pytest
from sample_data import conversation_dataset as dataset
from sample_data import unique

from autotune.adapters.bus import PubSubBus
from autotune.adapters.ledger import FirestoreLedger
from autotune.adapters.storage import GcsDatasetStore
from autotune.events import EventType
from autotune.intake.ports import IntakeDeps
from autotune.intake.split import split_object_names
from autotune.intake.upload import process_upload
from autotune.validation import DatasetSource, validate_dataset

pytestmark = pytest.mark.integration

WAIT = 180.0  # generous: the machine is shared; nothing here measures speed
END_EVENTS = {EventType.JOB_SUCCEEDED, EventType.JOB_FAILED, EventType.JOB_CANCELLED}


@pytest.fixture(scope="module")
def stack(make_local_stack):
    return make_local_stack(max_concurrent_jobs=1, job_seconds=2.0, tick_seconds=1.0)


@pytest.fixture
def events(stack):
    listener = stack.listen_events()
    yield listener
    listener.close()


def wait_type(events, subject: str, *types: EventType):
    return events.wait_for(
        lambda r: r.event.subject == subject and r.event.type in types, timeout=WAIT
    ).event


def jobs_for(stack, key: str) -> list:
    """Every job the tuning emulator holds with this key's label, through Google's client."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    from autotune.jobs.job_spec import KEY_LABEL

    client = aiplatform_v1.GenAiTuningServiceClient(
        transport="rest",
        client_options={"api_endpoint": stack.config.vertex_endpoint},
        credentials=AnonymousCredentials(),
    )
    parent = f"projects/{stack.project}/locations/{stack.config.defaults.region}"
    return list(
        client.list_tuning_jobs(request={"parent": parent, "filter": f'labels.{KEY_LABEL}="{key}"'})
    )


def examples_trained(ledger, key: str) -> int:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        record = ledger.get(key)
        if record is not None and record.tuning_data_stats:
            return int(record.tuning_data_stats["tuningDatasetExampleCount"])
        time.sleep(0.5)
    raise AssertionError(f"no tuning data stats recorded for {key}")


def test_a_training_file_alone_is_split_and_the_job_gets_a_validation_dataset(stack, events):
    name = f"incoming/{unique('alone')}.jsonl"
    data = dataset(name, 200)
    generation = str(stack.upload(data, name, metadata={"autotune-validation-split": "0.1"}))
    training_name, validation_name = split_object_names(name, generation)
    training_uri = f"gs://{stack.bucket}/{training_name}"

    accepted = wait_type(
        events, training_uri, EventType.DATASET_ACCEPTED, EventType.DATASET_REJECTED
    )
    assert accepted.type == EventType.DATASET_ACCEPTED
    ended = wait_type(events, training_uri, *END_EVENTS)
    assert ended.type == EventType.JOB_SUCCEEDED

    bucket = stack.storage_client().bucket(stack.bucket)
    training_part = bucket.blob(training_name).download_as_bytes()
    validation_part = bucket.blob(validation_name).download_as_bytes()
    assert sorted(training_part.splitlines() + validation_part.splitlines()) == sorted(
        data.splitlines()
    )
    assert 0 < len(validation_part.splitlines()) < 200

    ledger = FirestoreLedger(stack.firestore_client(), stack.config.ledger_collection)
    record = ledger.get(accepted.payload.idempotency_key)
    assert record is not None and record.request is not None
    request = record.request
    assert request["validation"]["object"] == validation_name
    assert (
        bucket.blob(request["validation"]["pinned_object"]).download_as_bytes() == validation_part
    )
    assert bucket.blob(request["training"]["pinned_object"]).download_as_bytes() == training_part
    # What Vertex AI was asked: the pinned copies, validation included.
    (job,) = jobs_for(stack, accepted.payload.idempotency_key)
    assert job.name == ended.payload.job_name
    spec = job.supervised_tuning_spec
    assert (
        spec.validation_dataset_uri
        == f"gs://{stack.bucket}/{request['validation']['pinned_object']}"
    )
    assert (
        spec.training_dataset_uri == f"gs://{stack.bucket}/{request['training']['pinned_object']}"
    )
    assert examples_trained(ledger, accepted.payload.idempotency_key) == len(
        training_part.splitlines()
    )

    # The same upload delivered again, through the real adapters: the same files, the same
    # request, and still one dataset version in the ledger.
    parts_before = {n: bucket.get_blob(n).generation for n in (training_name, validation_name)}
    store = GcsDatasetStore(stack.storage_client(), stack.bucket)
    deps = IntakeDeps(
        store=store,
        bus=PubSubBus(stack.publisher(), stack.config),
        validate_dataset=validate_dataset,
        dataset_source=DatasetSource,
    )
    already_received = {id(r) for r in events.received}
    upload = store.stat(name)
    assert upload is not None
    again = process_upload(upload, stack.config, deps)
    assert again.decision == "accepted"
    assert again.fields["idempotency_key"] == accepted.payload.idempotency_key
    assert {
        n: bucket.get_blob(n).generation for n in (training_name, validation_name)
    } == parts_before
    # The request is published before its event: once the second "accepted" is seen, submit has
    # the request; it keys the ledger by the idempotency key, so the delivery finds its record.
    events.wait_for(
        lambda r: (
            r.event.subject == training_uri
            and r.event.type == EventType.DATASET_ACCEPTED
            and id(r) not in already_received
        ),
        timeout=WAIT,
    )
    assert [j.name for j in jobs_for(stack, accepted.payload.idempotency_key)] == [
        ended.payload.job_name
    ]
    assert [r.idempotency_key for r in ledger.records() if r.dataset_uri == training_uri] == [
        accepted.payload.idempotency_key
    ]


def test_the_split_file_writer_keeps_a_file_of_the_same_bytes_and_replaces_other_bytes(stack):
    store = GcsDatasetStore(stack.storage_client(), stack.bucket)
    name = f"incoming/parts/{unique('writer')}/1/validation.jsonl"
    first = store.write_split_file(name, b'{"a": 1}\n')
    assert store.write_split_file(name, b'{"a": 1}\n').generation == first.generation
    replaced = store.write_split_file(name, b'{"a": 2}\n')
    assert replaced.generation != first.generation
    assert store.read_bytes(name, replaced.generation) == b'{"a": 2}\n'
