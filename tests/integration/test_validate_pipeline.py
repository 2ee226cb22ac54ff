"""Drop datasets into the local stack as a user would (google-cloud-storage), listen on
tuning-events with a subscription of our own (google-cloud-pubsub), and check the events, their
attributes, the reports and the tuning requests the validate function produced."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from sample_data import unique

from autotune.events import EventType
from autotune.jobs.request import TuningRequest, decode_request

pytestmark = pytest.mark.integration

SECRET = "Okapi-Lantern-Secret"  # dataset text that must never show up in an event or a log line
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 32


def example(i: int, text: str = "") -> dict:
    return {
        "contents": [
            {"role": "user", "parts": [{"text": f"Question {i}? {text}"}]},
            {"role": "model", "parts": [{"text": f"Answer {i}."}]},
        ]
    }


def jsonl(rows) -> bytes:
    return b"".join(json.dumps(row).encode() + b"\n" for row in rows)


def good_dataset(n: int = 20) -> bytes:
    return jsonl(example(i, SECRET) for i in range(n))


@pytest.fixture(scope="module")
def events(local_stack):
    listener = local_stack.listen_events()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def requests_seen(local_stack):
    """Our own pull subscription on tuning-requests, beside the submit function's push one."""
    subscriber = local_stack.subscriber()
    name = subscriber.subscription_path(
        local_stack.project, f"test-requests-{uuid.uuid4().hex[:8]}"
    )
    subscriber.create_subscription(
        name=name,
        topic=f"projects/{local_stack.project}/topics/{local_stack.config.requests_topic}",
    )
    yield RequestTap(subscriber, name)
    subscriber.delete_subscription(subscription=name)


class RequestTap:
    def __init__(self, subscriber, subscription: str) -> None:
        self.subscriber, self.subscription = subscriber, subscription
        self.seen: list[tuple[TuningRequest, dict[str, str]]] = []

    def poll(self, timeout: float = 1.0) -> None:
        from google.api_core import exceptions as gexc

        try:
            response = self.subscriber.pull(
                subscription=self.subscription, max_messages=100, timeout=timeout
            )
        except (gexc.DeadlineExceeded, gexc.RetryError):
            return
        for item in response.received_messages:
            self.seen.append(
                (decode_request(bytes(item.message.data)), dict(item.message.attributes))
            )
        if response.received_messages:
            self.subscriber.acknowledge(
                subscription=self.subscription,
                ack_ids=[m.ack_id for m in response.received_messages],
            )

    def for_uri(self, uri: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while True:
            found = [(r, a) for r, a in self.seen if r.dataset_uri == uri]
            if found or time.monotonic() > deadline:
                return found
            self.poll()


def verdict_for(events, uri: str, timeout: float = 60.0):
    return events.wait_for(
        lambda r: (
            r.event.subject == uri
            and r.event.type in (EventType.DATASET_ACCEPTED, EventType.DATASET_REJECTED)
        ),
        timeout=timeout,
    )


def read_report(local_stack, report_uri: str) -> dict:
    prefix = f"gs://{local_stack.bucket}/"
    assert report_uri.startswith(prefix)
    return json.loads(
        local_stack.storage_client()
        .bucket(local_stack.bucket)
        .blob(report_uri[len(prefix) :])
        .download_as_bytes()
    )


def test_good_dataset_is_accepted_with_a_report_a_request_and_a_cloudevent(
    local_stack, events, requests_seen
) -> None:
    data = good_dataset()
    name = f"incoming/{unique('good')}.jsonl"
    generation = local_stack.upload(data, name, metadata={"autotune-epochs": "2"})
    uri = f"gs://{local_stack.bucket}/{name}"

    received = verdict_for(events, uri)

    assert received.event.type is EventType.DATASET_ACCEPTED
    attributes = received.attributes
    assert attributes["ce-specversion"] == "1.0"
    assert attributes["ce-type"] == "autotune.dataset.v1.accepted"
    assert attributes["ce-subject"] == uri
    assert attributes["ce-source"] and attributes["ce-id"] and attributes["ce-time"].endswith("Z")
    assert attributes["ce-datacontenttype"] == "application/json"
    payload = json.loads(received.data)
    assert payload["dataset_uri"] == uri and payload["generation"] == str(generation)
    assert payload["valid"] is True and payload["error_count"] == 0
    assert payload["report_uri"] == f"gs://{local_stack.bucket}/reports/{name}/{generation}.json"

    report = read_report(local_stack, payload["report_uri"])
    assert report["valid"] is True
    assert report["files"]["train"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert report["files"]["train"]["examples"] == 20

    ((request, request_attributes),) = requests_seen.for_uri(uri)
    assert (
        request.idempotency_key
        == payload["idempotency_key"]
        == request_attributes["idempotency_key"]
    )
    assert request.training.generation == str(generation)
    assert request.training.sha256 == hashlib.sha256(data).hexdigest()
    assert request.settings.epochs == 2
    assert request.report_uri == payload["report_uri"]


def test_dataset_with_errors_is_rejected_with_line_numbers_and_no_request(
    local_stack, events, requests_seen
) -> None:
    rows = [json.dumps(example(i)) for i in range(20)]
    rows[4] = (
        '{"contents": [{"role": "user", "parts": [{"text": "' + SECRET + '"}]}'
    )  # cut short: invalid JSON
    rows[9] = json.dumps(
        {"contents": [{"role": "user", "parts": [{"text": SECRET}]}]}
    )  # ends on the user's turn
    name = f"incoming/{unique('bad')}.jsonl"
    generation = local_stack.upload(("\n".join(rows) + "\n").encode(), name)
    uri = f"gs://{local_stack.bucket}/{name}"

    received = verdict_for(events, uri)

    assert received.event.type is EventType.DATASET_REJECTED
    assert received.attributes["ce-type"] == "autotune.dataset.v1.rejected"
    payload = received.event.payload
    assert payload.valid is False and payload.error_count >= 2
    assert payload.counts["invalid_json"] == 1 and payload.counts["last_turn_not_model"] == 1
    assert SECRET not in received.data.decode()
    report = read_report(local_stack, payload.report_uri)
    assert payload.report_uri.endswith(f"/{generation}.json")
    lines = {(e["code"], e["line"]) for e in report["errors"]}
    assert ("invalid_json", 5) in lines and ("last_turn_not_model", 10) in lines
    assert requests_seen.for_uri(uri, timeout=3.0) == []


def test_multimodal_dataset_checks_its_media_in_the_bucket(local_stack, events) -> None:
    folder = unique("media")
    for i in range(3):
        local_stack.upload(PNG, f"{folder}/img{i}.png", content_type="image/png")
    rows: list[dict[str, Any]] = []
    for i in range(20):
        rows.append(
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [
                            {
                                "fileData": {
                                    "mimeType": "image/png",
                                    "fileUri": f"gs://{local_stack.bucket}/{folder}/img{i % 3}.png",
                                }
                            },
                            {"text": "What is in this picture?"},
                        ],
                    },
                    {"role": "model", "parts": [{"text": f"A single pixel, number {i}."}]},
                ]
            }
        )
    good_name = f"incoming/{unique('multimodal')}.jsonl"
    local_stack.upload(jsonl(rows), good_name)
    rows[7]["contents"][0]["parts"][0]["fileData"]["fileUri"] = (
        f"gs://{local_stack.bucket}/{folder}/missing.png"
    )
    missing_name = f"incoming/{unique('multimodal-missing')}.jsonl"
    local_stack.upload(jsonl(rows), missing_name)

    good = verdict_for(events, f"gs://{local_stack.bucket}/{good_name}")
    missing = verdict_for(events, f"gs://{local_stack.bucket}/{missing_name}")

    assert good.event.type is EventType.DATASET_ACCEPTED, read_report(
        local_stack, good.event.payload.report_uri
    )["errors"]
    assert missing.event.type is EventType.DATASET_REJECTED
    assert missing.event.payload.counts["file_not_found"] == 1
    report = read_report(local_stack, missing.event.payload.report_uri)
    assert [e["line"] for e in report["errors"] if e["code"] == "file_not_found"] == [8]


def test_objects_outside_incoming_or_not_datasets_produce_no_event(local_stack, events) -> None:
    stem = unique("ignored")
    ignored = [
        f"notes/{stem}.jsonl",
        f"incoming/{stem}.txt",
        f"incoming/{stem}/parts/train.jsonl",
        f"reports/incoming/{stem}.jsonl/1.json",
    ]
    for name in ignored:
        local_stack.upload(good_dataset(), name)
    marker = f"incoming/{stem}-marker.jsonl"
    local_stack.upload(good_dataset(), marker)
    verdict_for(events, f"gs://{local_stack.bucket}/{marker}")

    log = local_stack.log_dir / "validate.log"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text()
        if all(f"gs://{local_stack.bucket}/{name}" in text for name in ignored):
            break
        time.sleep(0.2)
    decisions = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    ignored_uris = {d["dataset"] for d in decisions if d.get("decision") == "ignored"}
    assert {f"gs://{local_stack.bucket}/{name}" for name in ignored} <= ignored_uris
    events.poll(timeout=1.0)
    subjects = {r.event.subject for r in events.received}
    assert not subjects & {f"gs://{local_stack.bucket}/{name}" for name in ignored}


def test_manifest_tunes_the_files_it_names_and_parts_are_not_tuned_alone(
    local_stack, events, requests_seen
) -> None:
    stem = unique("manifest")
    train, validation = (
        f"incoming/{stem}/parts/train.jsonl",
        f"incoming/{stem}/parts/validation.jsonl",
    )
    train_generation = local_stack.upload(good_dataset(24), train)
    local_stack.upload(jsonl(example(i) for i in range(5)), validation)
    manifest = {
        "training": train,
        "validation": validation,
        "settings": {"epochs": 4, "display_name": "manifest test"},
    }
    manifest_name = f"incoming/{stem}.tuning.json"
    manifest_generation = local_stack.upload(json.dumps(manifest).encode(), manifest_name)
    train_uri = f"gs://{local_stack.bucket}/{train}"

    received = verdict_for(events, train_uri)

    assert received.event.type is EventType.DATASET_ACCEPTED
    assert received.event.payload.generation == str(train_generation)
    assert (
        received.event.payload.report_uri
        == f"gs://{local_stack.bucket}/reports/{manifest_name}/{manifest_generation}.json"
    )
    ((request, _),) = requests_seen.for_uri(train_uri)
    assert request.validation.object == validation
    assert (request.settings.epochs, request.settings.display_name) == (4, "manifest test")
    assert not [
        r for r in events.received if r.event.subject == f"gs://{local_stack.bucket}/{validation}"
    ]


def test_bad_metadata_settings_are_a_rejection_with_a_report(local_stack, events) -> None:
    name = f"incoming/{unique('bad-settings')}.jsonl"
    local_stack.upload(
        good_dataset(),
        name,
        metadata={"autotune-epochs": "many", "autotune-model": "gemini-0-nonexistent"},
    )
    received = verdict_for(events, f"gs://{local_stack.bucket}/{name}")
    assert received.event.type is EventType.DATASET_REJECTED
    assert {"invalid_epochs", "unsupported_model"} <= set(received.event.payload.counts)
    report = read_report(local_stack, received.event.payload.report_uri)
    assert any(
        e["field"] and "epochs" in e["field"]
        for e in report["errors"]
        if e["code"] == "invalid_epochs"
    )


def test_a_retired_model_is_a_rejection_whose_report_names_the_lines_too(
    local_stack, events, requests_seen
) -> None:
    """Vertex AI refuses jobs for a retired model, so no tuning request goes out; the report still
    names the line problems a current model would also refuse."""
    name = f"incoming/{unique('retired')}.jsonl"
    rows = [example(i) for i in range(20)]
    rows[3] = {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {}}}]},
        ]
    }
    local_stack.upload(jsonl(rows), name, metadata={"autotune-model": "gemini-2.5-flash"})
    received = verdict_for(events, f"gs://{local_stack.bucket}/{name}")
    assert received.event.type is EventType.DATASET_REJECTED
    assert {"model_retired", "function_calling_unsupported"} <= set(received.event.payload.counts)
    report = read_report(local_stack, received.event.payload.report_uri)
    assert [e["line"] for e in report["errors"] if e["code"] == "function_calling_unsupported"] == [
        4
    ]
    assert not requests_seen.for_uri(f"gs://{local_stack.bucket}/{name}", timeout=5.0)


def test_video_and_role_less_turns_are_accepted(local_stack, events) -> None:
    """Shapes the tuning pages document: a video with videoMetadata, a user turn with no role,
    an http:// media URL."""
    name = f"incoming/{unique('video')}.jsonl"
    video = f"media/{unique('clip')}.mp4"  # outside incoming/: not a dataset
    local_stack.upload(b"\x00\x00\x00\x18ftypmp42", video)
    rows = [
        {
            "contents": [
                {
                    "parts": [
                        {
                            "fileData": {
                                "mimeType": "video/mp4",
                                "fileUri": f"gs://{local_stack.bucket}/{video}",
                            },
                            "videoMetadata": {"startOffset": "1s", "endOffset": "5.5s"},
                        },
                        {"text": f"What happens in clip {i}?"},
                    ]
                },
                {"role": "model", "parts": [{"text": f"A ferry leaves, take {i}."}]},
            ]
        }
        for i in range(20)
    ]
    local_stack.upload(jsonl(rows), name)
    received = verdict_for(events, f"gs://{local_stack.bucket}/{name}")
    assert received.event.type is EventType.DATASET_ACCEPTED, received.event.payload.counts


def test_a_limit_resting_on_an_unconfirmed_fact_warns_and_the_dataset_is_tuned(
    local_stack, events, requests_seen
) -> None:
    """Two audio files in one example: the catalog's one-audio-file limit is unconfirmed, so the
    report warns (saying so) and the dataset goes on to tuning; 31 images, a confirmed limit, refuse."""
    audio = [f"media/{unique('talk')}.mp3" for _ in range(2)]
    for name in audio:
        local_stack.upload(b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00" * 64, name)
    parts = [
        {"fileData": {"mimeType": "audio/mpeg", "fileUri": f"gs://{local_stack.bucket}/{n}"}}
        for n in audio
    ]
    rows = [example(i, SECRET) for i in range(20)]
    rows[2] = {
        "contents": [
            {"role": "user", "parts": [*parts, {"text": "Who speaks first?"}]},
            {"role": "model", "parts": [{"text": "The host."}]},
        ]
    }
    name = f"incoming/{unique('unconfirmed')}.jsonl"
    local_stack.upload(jsonl(rows), name)
    uri = f"gs://{local_stack.bucket}/{name}"
    received = verdict_for(events, uri)
    assert received.event.type is EventType.DATASET_ACCEPTED, received.event.payload.counts
    report = read_report(local_stack, received.event.payload.report_uri)
    [warned] = [e for e in report["errors"] if e["code"] == "too_many_media"]
    assert (warned["line"], warned["severity"]) == (3, "warning") and "unconfirmed" in warned[
        "message"
    ]
    assert report["valid"] and report["totals"]["errors"] == 0
    assert requests_seen.for_uri(uri)

    images = [f"media/{unique('pic')}.png" for _ in range(31)]
    for image in images:
        local_stack.upload(PNG, image)
    rows[2] = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    *(
                        {
                            "fileData": {
                                "mimeType": "image/png",
                                "fileUri": f"gs://{local_stack.bucket}/{n}",
                            }
                        }
                        for n in images
                    ),
                    {"text": "Which is the odd one?"},
                ],
            },
            {"role": "model", "parts": [{"text": "The last."}]},
        ]
    }
    name = f"incoming/{unique('confirmed')}.jsonl"
    local_stack.upload(jsonl(rows), name)
    received = verdict_for(events, f"gs://{local_stack.bucket}/{name}")
    assert received.event.type is EventType.DATASET_REJECTED
    report = read_report(local_stack, received.event.payload.report_uri)
    assert [
        (e["line"], e["severity"]) for e in report["errors"] if e["code"] == "too_many_media"
    ] == [(3, "error")]


def test_unreadable_event_is_acknowledged(local_stack) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "junk-1",
        "ce-source": "//storage.googleapis.com/projects/_/buckets/x",
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-subject": "objects/x",
        "Content-Type": "application/json",
    }
    request = urllib.request.Request(
        local_stack.env["AUTOTUNE_VALIDATE_URL"],
        data=b'{"no": "object here"}',
        headers=headers,
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
    log = (local_stack.log_dir / "validate.log").read_text()
    assert "unreadable storage event acknowledged" in log


def test_no_dataset_content_in_any_log(local_stack, events) -> None:
    # Runs after the others in this module, which all upload SECRET in their datasets.
    name = f"incoming/{unique('leak-check')}.jsonl"
    local_stack.upload(good_dataset(), name)
    dataset = f"gs://{local_stack.bucket}/{name}"
    verdict_for(events, dataset)
    # A check that reads nothing proves nothing: the logs must be there, and the validate log
    # must hold this run's decision on this upload (written just after the event is published).
    validate_log = local_stack.log_dir / "validate.log"
    deadline = time.monotonic() + 30
    while not _logged_decision_on(validate_log, dataset):
        assert time.monotonic() < deadline, f"validate.log has no decision on {dataset}"
        time.sleep(0.2)
    logs = sorted(local_stack.log_dir.glob("*.log"))
    assert {"validate.log", "submit.log", "status.log", "bridge.log"} <= {p.name for p in logs}
    for log in logs:
        assert SECRET not in log.read_text(errors="replace"), log.name
    for received in events.received:
        assert SECRET not in received.data.decode()


def _logged_decision_on(log: Path, dataset: str) -> bool:
    if not log.exists():
        return False
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("dataset") == dataset and entry.get("decision"):
            return True
    return False


def test_storage_adapter_streams_a_pinned_generation_and_says_when_it_is_gone(local_stack) -> None:
    from autotune.adapters.storage import GcsDatasetStore
    from autotune.intake.objects import ObjectGone

    store = GcsDatasetStore(local_stack.storage_client(), local_stack.bucket, chunk_bytes=1000)
    name = f"scratch/{unique('pinned')}.jsonl"
    first = good_dataset(30)
    local_stack.upload(first, name, metadata={"autotune-epochs": "3"})
    old = store.stat(name)
    assert old is not None
    assert old.size == len(first) and old.metadata == {"autotune-epochs": "3"}
    chunks = list(store.read_chunks(name, old.generation))
    assert len(chunks) > 1 and b"".join(chunks) == first

    local_stack.upload(good_dataset(31), name)
    with pytest.raises(ObjectGone):
        list(store.read_chunks(name, old.generation))
    assert store.stat(f"scratch/{unique('absent')}") is None
