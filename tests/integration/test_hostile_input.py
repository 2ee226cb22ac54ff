"""Hostile input on the local stack: odd object names, bad settings, forged tuning requests, a
dataset over the size limit, media in buckets nobody allowed. Each ends in a clear rejection (an
event with a report, or for what cannot carry an event, a logged reason) or a dead-letter entry
with its reason: never a retry loop or a crash. A marker planted in every dataset's text must
never show up in a log line of any process of the stack, nor in an event."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sample_data import conversation_dataset, unique

from autotune.events import EventType
from autotune.jobs.job_spec import KEY_LABEL
from autotune.jobs.request import (
    DatasetRef,
    TuningRequest,
    content_key,
    encode_request,
    idempotency_key,
)
from autotune.settings import TuningSettings
from autotune_local.event_bridge import header_value

pytestmark = pytest.mark.integration

MARKER = f"Quetzal-Ledger-{uuid.uuid4().hex[:10]}"  # dataset text that must never leave the bucket
END_TYPES = {
    EventType.DATASET_REJECTED,
    EventType.JOB_SUCCEEDED,
    EventType.JOB_FAILED,
    EventType.JOB_CANCELLED,
    EventType.JOB_REFUSED,
    EventType.JOB_SKIPPED,
}
WAIT = 180.0  # generous: the machine is shared; nothing here measures speed
ONE_GB = 1_073_741_824  # the catalog's max_file_bytes


def dataset(tag: str, n: int = 20) -> bytes:
    return conversation_dataset(tag, n, marker=MARKER)


@pytest.fixture(scope="module")
def stack(make_local_stack):
    return make_local_stack(max_concurrent_jobs=2, job_seconds=2.0, tick_seconds=1.0)


@pytest.fixture(scope="module")
def events(stack):
    listener = stack.listen_events()
    yield listener
    listener.close()


def uri(stack, name: str) -> str:
    return f"gs://{stack.bucket}/{name}"


def end_of(events, dataset_uri: str, timeout: float = WAIT):
    """The dataset's one end event (waits for it, then checks no second distinct one came)."""
    first = events.wait_for(
        lambda r: r.event.subject == dataset_uri and r.event.type in END_TYPES, timeout=timeout
    ).event
    events.poll(timeout=1.0)
    ends = {r.event.id for r in events.events_for(dataset_uri) if r.event.type in END_TYPES}
    assert ends == {first.id}, f"{dataset_uri} ended {len(ends)} times"
    return first


def decisions(stack, process: str = "validate") -> list[dict]:
    lines = (stack.log_dir / f"{process}.log").read_text(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def wait_decision(stack, dataset_uri: str, timeout: float = WAIT) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [d for d in decisions(stack) if d.get("dataset") == dataset_uri and "decision" in d]
        if found:
            return found[-1]
        time.sleep(0.2)
    raise TimeoutError(f"no decision logged for {dataset_uri}")


def deliveries(stack, object_name: str) -> list[dict]:
    subject = header_value(f"objects/{object_name}")
    return [d for d in decisions(stack, "bridge") if d.get("subject") == subject]


def report_of(stack, event) -> dict:
    name = event.payload.report_uri.removeprefix(f"gs://{stack.bucket}/")
    return json.loads(stack.storage_client().bucket(stack.bucket).blob(name).download_as_bytes())


def name_of_bytes(size: int, stem: str) -> str:
    """incoming/<stem>/<folders of é>/<x...>.jsonl of exactly `size` UTF-8 bytes; folders stay
    under 255 bytes (fake-gcs-server keeps each as a directory on disk)."""
    name = f"incoming/{stem}/"
    while len(name.encode()) + 200 + 1 + 50 < size:
        name += "é" * 100 + "/"
    return name + "x" * (size - len(name.encode()) - len(".jsonl")) + ".jsonl"


def test_names_with_dots_spaces_and_unicode_are_tuned_once_with_their_report(stack, events):
    tag = uuid.uuid4().hex[:8]
    names = [
        f"incoming/../escape-{tag}.jsonl",
        f"incoming/a/../../b-{tag}.jsonl",
        f"incoming/with  space\tand tab {tag}.jsonl",
        f'incoming/日本語 données "😀" {tag}.jsonl',
    ]
    generations = {name: stack.upload(dataset(name), name) for name in names}
    for name in names:
        ended = end_of(events, uri(stack, name))
        assert ended.type == EventType.JOB_SUCCEEDED, name
        report = report_of(stack, ended)
        assert ended.payload.report_uri == uri(stack, f"reports/{name}/{generations[name]}.json")
        assert report["valid"] is True
        assert len(deliveries(stack, name)) == 1  # delivered once: no retry


def test_name_at_the_1024_byte_storage_limit_is_rejected_with_its_reason_once(stack, events):
    too_long = name_of_bytes(1024, unique("edge"))
    longest = name_of_bytes(1024 - len("reports/") - len("/1234567890123456.json"), unique("edge"))
    assert len(too_long.encode()) == 1024
    stack.upload(dataset(too_long), too_long)
    stack.upload(dataset(longest), longest)

    refused = wait_decision(stack, uri(stack, too_long))
    assert refused["decision"] == "rejected" and refused["severity"] == "ERROR"
    assert "rename it" in refused["message"] and "1024" in refused["message"]
    assert end_of(events, uri(stack, longest)).type == EventType.JOB_SUCCEEDED
    assert not events.events_for(uri(stack, too_long))  # nothing could carry its name
    assert len(deliveries(stack, too_long)) == 1 and deliveries(stack, too_long)[0]["status"] < 300


def test_names_outside_incoming_are_ignored_without_an_event(stack, events):
    stem = unique("outside")
    names = [
        f"{stem}.jsonl",
        f"notes/{stem}.jsonl",
        f"INCOMING/{stem}.jsonl",
        f"incomingx/{stem}.jsonl",
        f"reports/incoming/{stem}.jsonl",
    ]
    for name in names:
        stack.upload(dataset(name), name)
    for name in names:
        assert wait_decision(stack, uri(stack, name))["decision"] == "ignored"
    events.poll(timeout=1.0)
    assert not any(events.events_for(uri(stack, name)) for name in names)


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ({"autotune-model": "gemini-9-ultra"}, "unsupported_model"),
        ({"autotune-adapter-size": "abc"}, "invalid_adapter_size"),
        ({"autotune-epochs": "-1"}, "invalid_epochs"),
        ({"autotune-epochs": str(10**9)}, "invalid_epochs"),
    ],
)
def test_hostile_metadata_is_rejected_with_the_matching_code(stack, events, metadata, code):
    name = f"incoming/{unique('metadata')}.jsonl"
    stack.upload(dataset(name), name, metadata=metadata)
    ended = end_of(events, uri(stack, name))
    assert ended.type == EventType.DATASET_REJECTED
    assert code in ended.payload.counts
    [entry] = [e for e in report_of(stack, ended)["errors"] if e["code"] == code]
    assert entry["field"] and entry["message"]


def test_display_name_of_ten_kilobytes_is_rejected_with_a_report(stack, events):
    """Object metadata cannot hold it (Cloud Storage allows 8 KiB of custom metadata), a
    manifest can: it is rejected (unusable_text: Vertex AI takes 128 characters, and every text
    reaching the ledger is bounded at intake), and the long name travels in no event."""
    stem = unique("display")
    training = f"incoming/{stem}/parts/train.jsonl"
    stack.upload(dataset(stem), training)
    long_name = "Ñ" + "display-name " * 800
    assert len(long_name.encode()) > 10_000
    manifest = {"training": training, "settings": {"display_name": long_name}}
    stack.upload(json.dumps(manifest).encode(), f"incoming/{stem}.tuning.json")
    ended = end_of(events, uri(stack, f"incoming/{stem}.tuning.json"))
    assert ended.type == EventType.DATASET_REJECTED and ended.payload.counts == {"unusable_text": 1}
    assert "display_name" in report_of(stack, ended)["errors"][0]["message"]
    assert all(long_name[:200] not in r.data.decode() for r in events.received)


def test_tuning_requests_that_are_not_json_or_miss_fields_end_in_the_dead_letter_topic_with_a_reason(
    stack,
):
    """Published directly on tuning-requests, one after the other, so each one's dead-letter
    entry and logged reason are checked on their own."""
    publisher, subscriber = stack.publisher(), stack.subscriber()
    topic = stack.config.topic_path(stack.config.requests_topic)
    dead_letter = subscriber.subscription_path(
        stack.project, stack.subscriptions.dead_letter["submit"]
    )
    poison = {
        "not JSON": b"{this is not json",
        "missing required field `content_key`": json.dumps(
            {"schema_version": 1, "idempotency_key": "a" * 40}
        ).encode(),
        "Expected `int`, got `str` - at `$.schema_version`": json.dumps(
            {"schema_version": "one", "training": []}
        ).encode(),
    }
    for reason, data in poison.items():
        marker = unique("poison")
        publisher.publish(topic, data, marker=marker).result(timeout=30)
        found = None
        deadline = time.monotonic() + WAIT
        while found is None and time.monotonic() < deadline:
            response = subscriber.pull(subscription=dead_letter, max_messages=10, timeout=5)
            for item in response.received_messages:
                subscriber.acknowledge(subscription=dead_letter, ack_ids=[item.ack_id])
                if item.message.attributes.get("marker") == marker:
                    found = bytes(item.message.data)
        assert found == data, f"{reason}: not in the dead-letter topic"
        logged = [
            d
            for d in decisions(stack, "submit")
            if "dead-letter" in d.get("message", "") and reason in d.get("reason", "")
        ]
        assert 1 <= len(logged) <= stack_max_delivery_attempts(stack), (
            reason
        )  # retried a bounded number of times


def stack_max_delivery_attempts(stack) -> int:
    subscriber = stack.subscriber()
    push = subscriber.get_subscription(
        subscription=subscriber.subscription_path(stack.project, stack.subscriptions.push["submit"])
    )
    return push.dead_letter_policy.max_delivery_attempts


def test_tuning_request_naming_a_bucket_that_is_not_ours_is_refused_with_an_event_and_no_job(
    stack, events
):
    settings = TuningSettings(
        model="gemini-2.5-flash", epochs=1, region=stack.config.defaults.region
    )
    sha = hashlib.sha256(MARKER.encode()).hexdigest()
    content = content_key(sha, None, settings)
    name, generation = f"incoming/{unique('foreign')}.jsonl", "1700000000000001"
    request = TuningRequest(
        idempotency_key=idempotency_key("someone-elses-bucket", name, generation, content),
        content_key=content,
        training=DatasetRef(
            bucket="someone-elses-bucket", object=name, generation=generation, sha256=sha, size=100
        ),
        settings=settings,
        report_uri=f"gs://someone-elses-bucket/reports/{name}/{generation}.json",
        requested_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    )
    stack.publisher().publish(
        stack.config.topic_path(stack.config.requests_topic), encode_request(request)
    ).result(timeout=30)
    ended = end_of(events, f"gs://someone-elses-bucket/{name}")
    assert ended.type == EventType.JOB_REFUSED
    assert f"not in the dataset bucket {stack.bucket}" in ended.payload.error
    assert _jobs_labelled(stack, request.idempotency_key) == []


def test_one_gigabyte_and_one_byte_is_rejected_from_its_size_without_being_read(
    stack, events, tmp_path: Path
):
    """A sparse file (one real line, the rest a hole) uploaded like any other; the storage
    event carries the size, and the report shows no line was read."""
    huge = tmp_path / "huge.jsonl"
    with huge.open("wb") as out:
        out.write(dataset("huge", 1))
        out.truncate(ONE_GB + 1)
    name = f"incoming/{unique('huge')}.jsonl"
    stack.upload(huge, name)
    ended = end_of(events, uri(stack, name))
    assert ended.type == EventType.DATASET_REJECTED and "file_too_large" in ended.payload.counts
    train = report_of(stack, ended)["files"]["train"]
    assert train["size"] == ONE_GB + 1
    assert (
        train["lines"] == 0 and train["sha256"] == hashlib.sha256(b"").hexdigest()
    )  # not a byte read


def test_media_in_a_bucket_outside_the_allow_list_is_rejected(stack, events):
    name = f"incoming/{unique('media')}.jsonl"
    rows = [
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {
                            "fileData": {
                                "mimeType": "image/png",
                                "fileUri": f"gs://not-an-allowed-bucket/{MARKER}-{i}.png",
                            }
                        },
                        {"text": f"{MARKER} what is this?"},
                    ],
                },
                {"role": "model", "parts": [{"text": "A picture."}]},
            ]
        }
        for i in range(20)
    ]
    stack.upload(b"".join(json.dumps(r).encode() + b"\n" for r in rows), name)
    ended = end_of(events, uri(stack, name))
    assert ended.type == EventType.DATASET_REJECTED
    assert ended.payload.counts["file_uri_not_allowed"] == 20


def test_no_dataset_content_in_any_log_line_or_event(stack, events):
    # Runs last in this module: every dataset above carries MARKER in its text.
    bad = f"incoming/{unique('bad-json')}.jsonl"
    stack.upload(
        dataset(bad) + f'{{"contents": [{{"text": "{MARKER} cut short'.encode() + b"\n", bad
    )
    assert end_of(events, uri(stack, bad)).type == EventType.DATASET_REJECTED
    events.poll(timeout=1.0)
    logs = sorted(stack.log_dir.glob("*.log"))
    assert {"validate.log", "submit.log", "status.log", "bridge.log", "tuning.log"} <= {
        p.name for p in logs
    }
    for log in logs:
        assert MARKER not in log.read_text(errors="replace"), log.name
    assert events.received
    for received in events.received:
        assert MARKER not in received.data.decode() and MARKER not in json.dumps(
            received.attributes
        )


def _client(stack):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    return aiplatform_v1.GenAiTuningServiceClient(
        transport="rest",
        client_options={"api_endpoint": stack.config.vertex_endpoint},
        credentials=AnonymousCredentials(),
    )


def _job(stack, name: str):
    return _client(stack).get_tuning_job(name=name)


def _jobs_labelled(stack, key: str) -> list:
    parent = f"projects/{stack.project}/locations/{stack.config.defaults.region}"
    return list(
        _client(stack).list_tuning_jobs(
            request={"parent": parent, "filter": f'labels.{KEY_LABEL}="{key}"'}
        )
    )
