"""The job trains on exactly the bytes that passed, and no single input freezes the pipeline: the
local stack attacked as an uploader (or anyone with publish rights) could: overwrites while a
dataset waits in the queue, compressed objects, poison text, forged requests, two manifests on
one file. Each test judges from what the tuning emulator read (its example counts come from the
file the job names), the ledger and the events, never from timing.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sample_data import conversation_dataset as dataset
from sample_data import unique

from autotune.adapters.ledger import FirestoreLedger
from autotune.adapters.tuning_service import VertexTuningService
from autotune.events import EventType
from autotune.jobs.lifecycle import LedgerState
from autotune.jobs.request import (
    DatasetRef,
    TuningRequest,
    content_key,
    encode_request,
    idempotency_key,
)
from autotune.settings import TuningSettings

pytestmark = pytest.mark.integration

END_EVENTS = {EventType.JOB_SUCCEEDED, EventType.JOB_FAILED, EventType.JOB_CANCELLED}
WAIT = 180.0  # generous: the machine is shared; nothing here measures speed


@pytest.fixture(scope="module")
def stack(make_local_stack):
    # One job slot, quick jobs and ticks; reconciliation every 2 s over uploads 10 s old.
    return make_local_stack(
        max_concurrent_jobs=1,
        job_seconds=2.0,
        tick_seconds=1.0,
        reconcile_every_seconds=2,
        reconcile_after_seconds=10,
    )


@pytest.fixture
def events(stack):
    listener = stack.listen_events()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def ledger(stack):
    return FirestoreLedger(stack.firestore_client(), stack.config.ledger_collection)


@pytest.fixture(scope="module")
def tuning(stack):
    return VertexTuningService(stack.config.vertex_endpoint)


def uri(stack, name: str) -> str:
    return f"gs://{stack.bucket}/{name}"


def wait_event(events, predicate, timeout: float = WAIT):
    return events.wait_for(lambda r: predicate(r.event), timeout=timeout).event


def wait_type(
    events,
    dataset_uri: str,
    *types: EventType,
    generation: str | None = None,
    timeout: float = WAIT,
):
    return wait_event(
        events,
        lambda e: (
            e.subject == dataset_uri
            and e.type in types
            and (generation is None or e.payload.generation == generation)
        ),
        timeout,
    )


def emulator_control(stack, route: str, body: dict) -> dict:
    answer = requests.post(
        f"{stack.config.vertex_endpoint}/emulator/{route}", json=body, timeout=10
    )
    answer.raise_for_status()
    return answer.json()


class SlotHolder:
    """A dataset whose job runs until cancelled: everything uploaded meanwhile waits in the queue."""

    def __init__(self, stack, events, tuning) -> None:
        self.stack, self.events, self.tuning = stack, events, tuning

    def __enter__(self) -> SlotHolder:
        usual = requests.get(
            f"{self.stack.config.vertex_endpoint}/emulator/state", timeout=10
        ).json()["jobSeconds"]
        emulator_control(self.stack, "config", {"jobSeconds": 3600})
        try:
            name = f"incoming/{unique('holder')}.jsonl"
            self.stack.upload(dataset(name), name)
            self.job = wait_type(
                self.events, uri(self.stack, name), EventType.JOB_SUBMITTED
            ).payload.job_name
        finally:
            emulator_control(self.stack, "config", {"jobSeconds": usual})
        return self

    def release(self) -> None:
        self.tuning.cancel(self.job)

    def __exit__(self, *exc) -> None:
        self.release()


def examples_trained(ledger, key: str) -> int:
    """What the tuning service counted in the file the job read (the emulator reads it at create)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        record = ledger.get(key)
        if record is not None and record.tuning_data_stats:
            return int(record.tuning_data_stats["tuningDatasetExampleCount"])
        time.sleep(0.5)
    raise AssertionError(f"no tuning data stats recorded for {key}")


def invalid_lines(n: int) -> bytes:
    return b"".join(
        json.dumps({"contents": [{"role": "user", "parts": [{"text": f"q{i}"}]}]}).encode() + b"\n"
        for i in range(n)
    )


# --- 1. the job reads exactly the bytes that passed ------------------------------------------------


def test_overwrite_with_invalid_content_while_queued_does_not_change_what_the_job_reads(
    stack, events, ledger, tuning
):
    name = f"incoming/{unique('swap-bad')}.jsonl"
    with SlotHolder(stack, events, tuning):
        first = str(stack.upload(dataset(name, 20), name))
        queued = wait_type(events, uri(stack, name), EventType.JOB_QUEUED, generation=first)
        second = str(stack.upload(invalid_lines(3), name))
        wait_type(events, uri(stack, name), EventType.DATASET_REJECTED, generation=second)
    done = wait_type(events, uri(stack, name), *END_EVENTS, generation=first)
    assert done.type == EventType.JOB_SUCCEEDED
    assert examples_trained(ledger, queued.payload.idempotency_key) == 20


def test_overwrite_with_valid_content_while_queued_gives_each_version_its_own_bytes(
    stack, events, ledger, tuning
):
    name = f"incoming/{unique('swap-good')}.jsonl"
    with SlotHolder(stack, events, tuning):
        first = str(stack.upload(dataset(name, 20), name))
        one = wait_type(events, uri(stack, name), EventType.JOB_QUEUED, generation=first)
        second = str(stack.upload(dataset(name + "-v2", 25), name))
        two = wait_type(events, uri(stack, name), EventType.JOB_QUEUED, generation=second)
    for generation in (first, second):
        assert (
            wait_type(events, uri(stack, name), *END_EVENTS, generation=generation).type
            == EventType.JOB_SUCCEEDED
        )
    assert examples_trained(ledger, one.payload.idempotency_key) == 20
    assert examples_trained(ledger, two.payload.idempotency_key) == 25


def test_twenty_quick_reuploads_each_job_trains_on_its_own_version(stack, events, ledger, tuning):
    name = f"incoming/{unique('churn')}.jsonl"
    sizes: dict[str, int] = {}
    with SlotHolder(stack, events, tuning):
        for i in range(20):
            sizes[str(stack.upload(dataset(f"{name}-{i}", 10 + i), name))] = 10 + i
        # Each version is either queued or superseded (replaced before validate read it).
        time.sleep(1.0)
    keys = {}
    deadline = time.monotonic() + WAIT * 2
    while time.monotonic() < deadline:
        events.poll(timeout=2.0)
        keys = {
            r.event.payload.generation: r.event.payload.idempotency_key
            for r in events.events_for(uri(stack, name))
            if r.event.type == EventType.JOB_QUEUED or r.event.type == EventType.JOB_SUBMITTED
        }
        ended = {
            r.event.payload.generation
            for r in events.events_for(uri(stack, name))
            if r.event.type in END_EVENTS
        }
        if (
            keys
            and set(keys) <= ended
            and not any(
                r.state
                in {
                    LedgerState.QUEUED,
                    LedgerState.SUBMITTING,
                    LedgerState.SUBMITTED,
                    LedgerState.RUNNING,
                }
                for r in ledger.records()
                if r.dataset_uri == uri(stack, name)
            )
        ):
            break
    assert keys, "no version of the dataset was accepted"
    for generation, key in keys.items():
        assert examples_trained(ledger, key) == sizes[generation], generation


def test_manifest_part_replaced_after_acceptance_does_not_change_what_the_job_reads(
    stack, events, ledger, tuning
):
    stem = unique("parts")
    part, manifest = f"incoming/{stem}/parts/train.jsonl", f"incoming/{stem}.tuning.json"
    stack.upload(dataset(stem, 20), part)
    with SlotHolder(stack, events, tuning):
        stack.upload(json.dumps({"training": part}).encode(), manifest)
        queued = wait_type(events, uri(stack, part), EventType.JOB_QUEUED)
        stack.upload(
            invalid_lines(1), part
        )  # nothing validates a part on its own: only the manifest did
        time.sleep(1.0)
    done = wait_type(events, uri(stack, part), *END_EVENTS, generation=queued.payload.generation)
    assert done.type == EventType.JOB_SUCCEEDED
    assert examples_trained(ledger, queued.payload.idempotency_key) == 20


def test_a_pinned_copy_written_over_while_queued_fails_instead_of_training(
    stack, events, ledger, tuning
):
    name = f"incoming/{unique('pin-attack')}.jsonl"
    with SlotHolder(stack, events, tuning):
        stack.upload(dataset(name, 20), name)
        queued = wait_type(events, uri(stack, name), EventType.JOB_QUEUED)
        pinned = ledger.get(queued.payload.idempotency_key).request["training"]["pinned_object"]
        stack.upload(invalid_lines(2), pinned)
    failed = wait_type(events, uri(stack, name), *END_EVENTS)
    assert failed.type == EventType.JOB_FAILED and "written over" in failed.payload.error


# --- 2. encodings -------------------------------------------------------------------------------


def upload_encoded(stack, name: str, data: bytes) -> str:
    blob = stack.storage_client().bucket(stack.bucket).blob(name)
    blob.content_encoding = "gzip"
    blob.upload_from_string(data, content_type="application/jsonl")
    return str(blob.generation)


def rejected_codes(events, stack, name: str) -> dict[str, int]:
    event = wait_type(
        events, uri(stack, name), EventType.DATASET_REJECTED, EventType.DATASET_ACCEPTED
    )
    assert event.type == EventType.DATASET_REJECTED
    return dict(event.payload.counts)


def test_gzip_content_encoding_past_the_size_limit_is_refused_by_its_own_code(
    stack, events, ledger
):
    # Small here; the point is that the stored size says nothing of what a reader gets.
    name = f"incoming/{unique('gzip-big')}.jsonl"
    upload_encoded(stack, name, gzip.compress(dataset(name, 20) * 200))
    assert rejected_codes(events, stack, name) == {"content_encoded": 1}
    assert not [r for r in ledger.records() if r.dataset_uri == uri(stack, name)]


def test_gzip_bomb_is_refused_without_decompressing(stack, events):
    name = f"incoming/{unique('gzip-bomb')}.jsonl"
    bomb = gzip.compress(b" " * (64 * 1024 * 1024))  # 64 MiB of spaces in about 64 KB
    upload_encoded(stack, name, bomb)
    assert rejected_codes(events, stack, name) == {"content_encoded": 1}


def test_two_member_gzip_is_refused_and_skips_no_other_dataset(stack, events, ledger):
    name = f"incoming/{unique('gzip-two')}.jsonl"
    head = dataset(name, 20)
    upload_encoded(stack, name, gzip.compress(head) + gzip.compress(dataset(name + "-tail", 5)))
    assert rejected_codes(events, stack, name) == {"content_encoded": 1}
    # The same first member uploaded plainly is a dataset of its own, not a repeat of anything.
    plain = f"incoming/{unique('gzip-head')}.jsonl"
    stack.upload(head, plain)
    assert (
        wait_type(
            events,
            uri(stack, plain),
            EventType.JOB_QUEUED,
            EventType.JOB_SUBMITTED,
            EventType.JOB_SKIPPED,
        ).type
        != EventType.JOB_SKIPPED
    )


# --- 3. poison text -----------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["training", "validation", "model", "display_name"])
def test_lone_surrogate_in_a_manifest_is_rejected_with_a_report(stack, events, field):
    stem = unique(f"surrogate-{field}")
    part, manifest = f"incoming/{stem}/parts/train.jsonl", f"incoming/{stem}.tuning.json"
    stack.upload(dataset(stem, 20), part)
    doc: dict[str, Any] = {"training": part, "settings": {}}
    if field in {"training", "validation"}:
        doc[field] = part + "\ud800"
    else:
        doc["settings"][field] = "x\ud800"
    generation = stack.upload(
        json.dumps(doc).encode(), manifest
    )  # json.dumps writes "\ud800", valid JSON
    event = wait_type(events, uri(stack, manifest), EventType.DATASET_REJECTED)
    assert event.payload.counts == {"unusable_text": 1}
    report = json.loads(
        stack.storage_client()
        .bucket(stack.bucket)
        .blob(f"reports/{manifest}/{generation}.json")
        .download_as_bytes()
    )
    assert report["valid"] is False and "surrogate" in report["errors"][0]["message"]


def test_long_display_name_in_metadata_is_rejected_not_written_to_the_ledger(stack, events, ledger):
    name = f"incoming/{unique('long-name')}.jsonl"
    stack.upload(dataset(name, 20), name, metadata={"autotune-display-name": "n" * 600})
    event = wait_type(
        events, uri(stack, name), EventType.DATASET_REJECTED, EventType.DATASET_ACCEPTED
    )
    assert event.type == EventType.DATASET_REJECTED and event.payload.counts == {"unusable_text": 1}
    assert not [r for r in ledger.records() if r.dataset_uri == uri(stack, name)]


def test_huge_display_name_in_a_manifest_is_rejected(stack, events, ledger):
    stem = unique("huge-manifest-name")
    part, manifest = f"incoming/{stem}/parts/train.jsonl", f"incoming/{stem}.tuning.json"
    stack.upload(dataset(stem, 20), part)
    stack.upload(
        json.dumps({"training": part, "settings": {"display_name": "n" * 60_000}}).encode(),
        manifest,
    )
    event = wait_type(
        events, uri(stack, manifest), EventType.DATASET_REJECTED, EventType.DATASET_ACCEPTED
    )
    assert event.type == EventType.DATASET_REJECTED and event.payload.counts == {"unusable_text": 1}


def test_control_characters_in_a_manifest_name_are_rejected(stack, events):
    stem = unique("control")
    manifest = f"incoming/{stem}.tuning.json"
    stack.upload(
        json.dumps(
            {
                "training": f"incoming/{stem}/parts/\x1b]0;owned\x07.jsonl".encode().decode(
                    "unicode_escape"
                )
            }
        ).encode(),
        manifest,
    )
    event = wait_type(events, uri(stack, manifest), EventType.DATASET_REJECTED)
    assert event.payload.counts == {"unusable_text": 1}


# --- 5. forged requests -------------------------------------------------------------------------


def forged_request(stack, name: str, generation: str, data: bytes, **settings) -> TuningRequest:
    import hashlib

    values = {
        "model": stack.config.defaults.model,
        "epochs": 2,
        "region": stack.config.defaults.region,
        **settings,
    }
    tuning_settings = TuningSettings(**values)
    sha = hashlib.sha256(data).hexdigest()
    content = content_key(sha, None, tuning_settings)
    return TuningRequest(
        idempotency_key=idempotency_key(stack.bucket, name, generation, content),
        content_key=content,
        training=DatasetRef(
            bucket=stack.bucket, object=name, generation=generation, sha256=sha, size=len(data)
        ),
        settings=tuning_settings,
        report_uri=f"gs://{stack.bucket}/reports/{name}/{generation}.json",
        requested_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    )


def post_to_submit(stack, request: TuningRequest) -> requests.Response:
    body = {
        "message": {
            "data": base64.b64encode(encode_request(request)).decode(),
            "messageId": uuid.uuid4().hex,
        },
        "subscription": "test",
    }
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-id": uuid.uuid4().hex,
        "ce-source": f"//pubsub.googleapis.com/projects/{stack.project}/topics/{stack.config.requests_topic}",
        "Content-Type": "application/json",
    }
    return requests.post(
        stack.env["AUTOTUNE_SUBMIT_URL"], headers=headers, data=json.dumps(body), timeout=120
    )


def jobs_for(tuning, stack, key: str) -> list:
    """Every job the tuning service holds with this key's label."""
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


def test_forged_request_for_a_rejected_object_on_the_topic_is_refused(
    stack, events, ledger, tuning
):
    name = f"incoming/{unique('forged-rejected')}.jsonl"
    data = invalid_lines(3)
    generation = str(stack.upload(data, name))
    wait_type(events, uri(stack, name), EventType.DATASET_REJECTED)
    request = forged_request(stack, name, generation, data)
    stack.publisher().publish(
        stack.config.topic_path(stack.config.requests_topic), encode_request(request)
    ).result(timeout=30)
    refused = wait_type(
        events, uri(stack, name), EventType.JOB_REFUSED, *END_EVENTS, EventType.JOB_SUBMITTED
    )
    assert refused.type == EventType.JOB_REFUSED and "does not say valid" in refused.payload.error
    assert (
        ledger.get(request.idempotency_key) is None
        and jobs_for(tuning, stack, request.idempotency_key) == []
    )


@pytest.mark.parametrize("settings", [{"epochs": 1_000_000}, {"learning_rate_multiplier": 1e9}])
def test_forged_settings_for_an_accepted_dataset_posted_to_submit_are_refused(
    stack, events, ledger, tuning, settings
):
    name = (
        f"manual/{unique('forged-settings')}.jsonl"  # outside incoming/: no real request competes
    )
    data = dataset(name, 20)
    generation = str(stack.upload(data, name))
    request = forged_request(stack, name, generation, data, **settings)
    answer = post_to_submit(stack, request)
    assert answer.status_code < 300, answer.text
    refused = wait_type(events, uri(stack, name), EventType.JOB_REFUSED)
    assert "report" in refused.payload.error or "limits" in refused.payload.error
    assert (
        ledger.get(request.idempotency_key) is None
        and jobs_for(tuning, stack, request.idempotency_key) == []
    )


def test_accepted_request_replayed_with_other_settings_is_refused(stack, events, ledger, tuning):
    name = f"incoming/{unique('replay')}.jsonl"
    data = dataset(name, 20)
    generation = str(stack.upload(data, name))
    accepted = wait_type(events, uri(stack, name), EventType.DATASET_ACCEPTED)
    wait_type(events, uri(stack, name), *END_EVENTS)
    import msgspec

    real = msgspec.convert(ledger.get(accepted.payload.idempotency_key).request, TuningRequest)
    settings = msgspec.structs.replace(
        real.settings, epochs=50
    )  # within the limits: only the report can tell
    content = content_key(real.training.sha256, None, settings)
    forged = msgspec.structs.replace(
        real,
        settings=settings,
        content_key=content,
        idempotency_key=idempotency_key(stack.bucket, name, generation, content),
    )
    assert post_to_submit(stack, forged).status_code < 300
    refused = wait_event(
        events,
        lambda e: (
            e.type == EventType.JOB_REFUSED and e.payload.idempotency_key == forged.idempotency_key
        ),
    )
    assert "accepted another request" in refused.payload.error


# --- 6. event ids per dataset -------------------------------------------------------------------


def test_two_manifests_on_one_file_have_distinct_event_ids(stack, events, ledger, tuning):
    stem = unique("twin")
    part = f"incoming/{stem}/parts/train.jsonl"
    stack.upload(dataset(stem, 20), part)
    with SlotHolder(stack, events, tuning):
        keys = []
        for epochs in (4, 5):
            manifest = f"incoming/{stem}-e{epochs}.tuning.json"
            stack.upload(
                json.dumps({"training": part, "settings": {"epochs": epochs}}).encode(), manifest
            )
            keys.append(
                wait_event(
                    events,
                    lambda e: (
                        e.subject == uri(stack, part)
                        and e.type == EventType.JOB_QUEUED
                        and e.payload.idempotency_key not in keys
                    ),
                ).payload.idempotency_key
            )
        from typer.testing import CliRunner

        from autotune.cli import app

        for key in keys:
            result = CliRunner().invoke(app, ["cancel", key, "--state-dir", str(stack.state_dir)])
            assert result.exit_code == 0, result.output
        for key in keys:
            wait_event(
                events,
                lambda e, key=key: (
                    e.type == EventType.JOB_CANCELLED and e.payload.idempotency_key == key
                ),
            )
    mine = [
        r.event
        for r in events.events_for(uri(stack, part))
        if r.event.payload.idempotency_key in keys
    ]
    for kind in (EventType.JOB_QUEUED, EventType.JOB_CANCELLED):
        ids = [e.id for e in mine if e.type == kind]
        assert len(ids) == 2 and len(set(ids)) == 2, (kind, ids)


# --- 4. a record the ledger cannot write is quarantined ------------------------------------------


def test_a_record_too_large_to_write_is_quarantined_and_the_queue_moves_on(stack, events, ledger):
    from datetime import timedelta

    import msgspec

    from autotune.adapters.ledger import _document
    from autotune.jobs.lifecycle import move, new_record

    name = f"manual/{unique('oversized')}.jsonl"
    key = uuid.uuid4().hex[:40]
    now = datetime.now(UTC) - timedelta(hours=1)
    record = new_record(
        idempotency_key=key,
        content_key=uuid.uuid4().hex[:40],
        dataset_uri=uri(stack, name),
        generation="1",
        now=now,
        model=stack.config.defaults.model,
        region=stack.config.defaults.region,
    )
    expired = move(
        record, LedgerState.SUBMITTING, now, attempts=1, claim_expires_at=record.created_at
    )  # claim long expired
    from google.api_core.exceptions import InvalidArgument

    from autotune.jobs.lifecycle import timestamp

    # The size is found on a twin whose claim has not expired (no tick touches it), same lengths.
    twin_key = uuid.uuid4().hex[:40]
    twin = msgspec.structs.replace(
        expired, idempotency_key=twin_key, claim_expires_at=timestamp(now + timedelta(days=2))
    )

    def write(target, key: str, size: int) -> bool:
        try:
            ledger.records_ref.document(key).set(
                _document(
                    msgspec.structs.replace(
                        target, request={"settings": {"display_name": "n" * size}}
                    )
                )
            )
            return True
        except InvalidArgument as exc:  # over the entity size limit
            print("TOO LARGE:", exc)
            return False

    low, high = (
        1_000_000,
        1_048_576,
    )  # the largest record the emulator still takes: any later move is too large
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if write(twin, twin_key, middle) else (low, middle)
    ledger.records_ref.document(twin_key).delete()
    assert write(expired, key, low)

    other = f"incoming/{unique('behind-oversized')}.jsonl"
    stack.upload(dataset(other, 20), other)
    failed = wait_type(events, uri(stack, name), EventType.JOB_FAILED)
    assert "quarantined" in failed.payload.error, failed.payload.error
    assert wait_type(events, uri(stack, other), *END_EVENTS).type == EventType.JOB_SUCCEEDED
    assert ledger.get(key).state == LedgerState.FAILED


# --- 3. poison cannot starve recovery -------------------------------------------------------------


def test_many_poison_manifests_do_not_starve_a_lost_upload(make_local_stack):
    """No validate function: every upload's notification is lost, and the status function's
    reconciliation takes them in, oldest first, at most 20 a pass. 22 poison manifests are older
    than the one genuine upload."""
    from autotune.intake.reconciliation import MAX_UPLOADS_PER_PASS

    lonely = make_local_stack(
        functions={"validate": None},
        job_seconds=1.0,
        tick_seconds=1.0,
        reconcile_every_seconds=2,
        reconcile_after_seconds=3,
    )
    listener = lonely.listen_events()
    try:
        stem = unique("poison")
        part = f"incoming/{stem}/parts/train.jsonl"
        lonely.upload(dataset(stem, 20), part)
        manifests = [
            f"incoming/{stem}-{i:02d}.tuning.json" for i in range(MAX_UPLOADS_PER_PASS + 2)
        ]
        for i, manifest in enumerate(manifests):
            lonely.upload(
                json.dumps(
                    {"training": part, "settings": {"display_name": f"n{i}\ud800"}}
                ).encode(),
                manifest,
            )
        time.sleep(1.0)  # the genuine upload is the youngest: last in line by age
        lost = f"incoming/{unique('lost')}.jsonl"
        lonely.upload(dataset(lost, 20), lost)
        done = wait_type(listener, uri(lonely, lost), *END_EVENTS, timeout=WAIT * 2)
        assert done.type == EventType.JOB_SUCCEEDED
        for manifest in manifests:
            event = wait_type(listener, uri(lonely, manifest), EventType.DATASET_REJECTED)
            assert event.payload.counts == {"unusable_text": 1}
    finally:
        listener.close()
        lonely.stop()


# --- 8. queue order, terminal escapes, media that is the pipeline's own -------------------------


def test_a_manifest_uploaded_last_on_an_old_training_file_does_not_jump_the_queue(
    stack, events, ledger, tuning
):
    """The queue is in the order of the uploads that started the work: the manifest's, not its
    training file's (uploaded before everything else here)."""
    stem = unique("late-manifest")
    part, manifest, plain = (
        f"incoming/{stem}/parts/train.jsonl",
        f"incoming/{stem}.tuning.json",
        f"incoming/{stem}-a.jsonl",
    )
    stack.upload(dataset(stem, 20), part)
    with SlotHolder(stack, events, tuning):
        stack.upload(dataset(plain, 20), plain)
        first = wait_type(events, uri(stack, plain), EventType.JOB_QUEUED)
        stack.upload(json.dumps({"training": part}).encode(), manifest)
        last = wait_type(events, uri(stack, part), EventType.JOB_QUEUED)
    for queued in (first, last):
        assert wait_type(events, queued.subject, *END_EVENTS).type == EventType.JOB_SUCCEEDED
    [plain_job] = jobs_for(tuning, stack, first.payload.idempotency_key)
    [manifest_job] = jobs_for(tuning, stack, last.payload.idempotency_key)
    # One slot: the job created second could only be created after the first one ended.
    assert plain_job.create_time < manifest_job.create_time, (
        plain_job.create_time,
        manifest_job.create_time,
    )


# An object name an uploader chose: retitles the window, clears the screen, reverses the text.
HOSTILE_STEM = "\x1b]0;owned\x07\x1b[2J\u202e"
RAW_CONTROLS = ("\x1b", "\x07", "\u202e", "\x9b")


def run_command(stack, *args: str) -> subprocess.CompletedProcess:
    command = Path(sys.executable).with_name("autotune")
    # Wide enough that the table never folds a name (the escaped form is looked for whole), and
    # no forced colour: any escape sequence in the output would be the uploader's.
    env = {k: v for k, v in os.environ.items() if k not in {"FORCE_COLOR", "TTY_COMPATIBLE"}} | {
        "COLUMNS": "400"
    }
    return subprocess.run(
        [str(command), *args, "--state-dir", str(stack.state_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_terminal_escapes_in_object_names_reach_no_terminal_raw(stack, events):
    """Through the real commands in a process of their own: a tuned dataset (ledger record) and a
    rejected one (known by its report only) under names that would rewrite the reader's terminal."""
    tuned, rejected = (
        f"incoming/{HOSTILE_STEM}{unique(tag)}.jsonl"
        for tag in ("hostile-tuned", "hostile-rejected")
    )
    stack.upload(dataset(tuned, 20), tuned)
    stack.upload(invalid_lines(3), rejected)
    assert wait_type(events, uri(stack, tuned), *END_EVENTS).type == EventType.JOB_SUCCEEDED
    wait_type(events, uri(stack, rejected), EventType.DATASET_REJECTED)
    escaped = "\\x1b]0;owned\\x07\\x1b[2J\\u202e"
    commands = [
        ("jobs",),
        ("status", tuned),
        ("status", uri(stack, rejected)),
        ("report", rejected),
    ]
    for args in commands:
        result = run_command(stack, *args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        for stream in (result.stdout, result.stderr):
            assert not [c for c in RAW_CONTROLS if c in stream], (args, stream)
        assert escaped in result.stdout, (args, result.stdout)
        if args == ("jobs",):
            for name in (tuned, rejected):
                assert name.replace(HOSTILE_STEM, escaped) in result.stdout, (name, result.stdout)


@pytest.mark.parametrize("target", ["report", "pinned copy", "manifest", "itself"])
def test_media_naming_the_pipelines_own_objects_is_refused_on_its_line(
    stack, events, ledger, target
):
    name = f"incoming/{unique('media-self')}.jsonl"
    if target == "itself":
        pointed = name
    elif target == "manifest":
        pointed = f"incoming/{unique('some')}.tuning.json"
        stack.upload(json.dumps({"training": "incoming/elsewhere.jsonl"}).encode(), pointed)
    else:
        other = f"incoming/{unique('media-other')}.jsonl"
        stack.upload(dataset(other, 20), other)
        accepted = wait_type(events, uri(stack, other), EventType.DATASET_ACCEPTED)
        if target == "report":
            pointed = accepted.payload.report_uri.removeprefix(f"gs://{stack.bucket}/")
        else:
            wait_type(
                events, uri(stack, other), EventType.JOB_SUBMITTED, EventType.JOB_QUEUED
            )  # the record is written
            pointed = ledger.get(accepted.payload.idempotency_key).request["training"][
                "pinned_object"
            ]
    assert (
        stack.storage_client().bucket(stack.bucket).get_blob(pointed) is not None
        or target == "itself"
    )
    lines = dataset(name, 20).splitlines(keepends=True)
    media = {
        "role": "user",
        "parts": [
            {"fileData": {"mimeType": "image/png", "fileUri": uri(stack, pointed)}},
            {"text": "What is in the picture?"},
        ],
    }
    lines[6] = (
        json.dumps(
            {"contents": [media, {"role": "model", "parts": [{"text": "a circle"}]}]}
        ).encode()
        + b"\n"
    )
    stack.upload(b"".join(lines), name)
    rejected = wait_type(
        events, uri(stack, name), EventType.DATASET_REJECTED, EventType.DATASET_ACCEPTED
    )
    assert rejected.type == EventType.DATASET_REJECTED
    counts = rejected.payload.counts
    assert counts["media_is_pipeline_object"] == 1 and "file_not_found" not in counts, counts
    report_name = rejected.payload.report_uri.removeprefix(f"gs://{stack.bucket}/")
    report = json.loads(
        stack.storage_client().bucket(stack.bucket).blob(report_name).download_as_bytes()
    )
    [issue] = [
        i for i in report["errors"] if i["severity"] == "error"
    ]  # a few-examples warning may come too
    assert (issue["code"], issue["line"], issue["role"]) == (
        "media_is_pipeline_object",
        7,
        "train",
    ), issue
    assert issue["file"] == report["files"]["train"]["name"] and issue["file"].startswith(
        "gs://"
    ), issue
    assert uri(stack, pointed) in issue["message"]


# --- 7. a ledger that came back empty -------------------------------------------------------------


def test_firestore_emulator_restarted_empty_does_not_resubmit_tuned_or_skipped_datasets(
    stack, events, ledger, tuning
):
    """Last in this module: the restart empties the stack's ledger."""
    from autotune.jobs.lifecycle import parse_timestamp

    name, again = f"incoming/{unique('tuned-once')}.jsonl", f"incoming/{unique('same-bytes')}.jsonl"
    data = dataset(name, 20)
    stack.upload(data, name)
    tuned = wait_type(events, uri(stack, name), *END_EVENTS)
    assert tuned.type == EventType.JOB_SUCCEEDED
    stack.upload(data, again)
    skipped = wait_type(
        events,
        uri(stack, again),
        EventType.JOB_SKIPPED,
        EventType.JOB_SUBMITTED,
        EventType.JOB_QUEUED,
    )
    assert skipped.type == EventType.JOB_SKIPPED
    # Submit is done with both (outboxes cleared, deliveries answered) before the ledger goes: a
    # delivery cut by the restart would come again into the empty ledger, which is another story.
    deadline = time.monotonic() + WAIT
    while any(ledger.get(e.payload.idempotency_key).outbox for e in (tuned, skipped)):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    time.sleep(2.0)

    stack.restart("firestore")
    restarted = datetime.now(UTC)
    turns = stack.firestore_client().collection(f"{stack.config.ledger_collection}-turns")
    every = stack.config.reconcile_every_seconds
    settled = restarted.timestamp() + stack.config.reconcile_after_seconds + 1

    def last_pass_started() -> float:
        next_at = (turns.document("reconcile").get().to_dict() or {}).get("next_at")
        return parse_timestamp(next_at).timestamp() - every if next_at else 0.0

    deadline = time.monotonic() + WAIT
    while (
        last_pass_started() < settled + every
    ):  # two passes at least, both after the uploads settled
        assert time.monotonic() < deadline, "no reconciliation pass ran after the restart"
        time.sleep(1.0)
    assert [job.name for job in jobs_for(tuning, stack, tuned.payload.idempotency_key)] == [
        tuned.payload.job_name
    ]
    assert jobs_for(tuning, stack, skipped.payload.idempotency_key) == []
    assert [
        r for r in ledger.records() if r.dataset_uri in {uri(stack, name), uri(stack, again)}
    ] == []
