"""The functions as functions-framework serves them, with in-memory ledger, service, bucket and bus
handed to them through their `configure`: what the entry points decode, acknowledge and refuse."""

import base64
import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from functions_framework import create_app
from intake_doubles import MemoryBus, MemoryStore
from job_doubles import (
    FakeTuningService,
    MemoryLedger,
    RecordingPublisher,
    SteppingClock,
    StubCatalog,
    make_request,
)

from autotune.intake.ports import IntakeDeps
from autotune.jobs.lifecycle import LedgerState
from autotune.jobs.pipeline import Pipeline
from autotune.jobs.request import TuningRequest, encode_request
from autotune.validation import DatasetSource, validate_dataset

ROOT = Path(__file__).resolve().parents[2]

PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"


@pytest.fixture
def pipeline():
    return Pipeline(
        ledger=MemoryLedger(),
        service=FakeTuningService(),
        publisher=RecordingPublisher(),
        catalog=StubCatalog(),
        project="p",
        clock=SteppingClock(),
    )


def serve(name: str, pipeline: Pipeline, intake: tuple[IntakeDeps, MemoryStore] | None = None):
    app = create_app(
        target=name, source=str(ROOT / "functions" / name / "main.py"), signature_type="cloudevent"
    )
    function = sys.modules["main"]  # the module functions-framework just loaded from that source
    if name == "status":  # with its reconciliation's intake
        store = MemoryStore()
        function.configure(
            pipeline=lambda: pipeline, intake=lambda: intake or (memory_intake(store), store)
        )
    else:
        function.configure(pipeline=lambda: pipeline)
    return app.test_client()


def memory_intake(store: MemoryStore) -> IntakeDeps:
    return IntakeDeps(
        store=store,
        bus=MemoryBus(store.effects),
        validate_dataset=validate_dataset,
        dataset_source=DatasetSource,
    )


def published_requests(intake: IntakeDeps) -> list[TuningRequest]:
    assert isinstance(intake.bus, MemoryBus)
    return intake.bus.requests


def cloud_event(data: bytes, message_id: str = "m-1") -> tuple[dict, str]:
    """What Eventarc (or the local event bridge) POSTs for a Pub/Sub message, binary mode."""
    headers = {
        "ce-specversion": "1.0",
        "ce-id": message_id,
        "ce-type": PUBSUB_TYPE,
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/tuning-requests",
        "Content-Type": "application/json",
    }
    body = {
        "message": {
            "data": base64.b64encode(data).decode(),
            "attributes": {},
            "messageId": message_id,
        },
        "subscription": "projects/p/subscriptions/submit-push",
    }
    return headers, json.dumps(body)


def test_submit_acknowledges_a_request_and_creates_the_job(pipeline):
    client = serve("submit", pipeline)
    request = make_request()
    headers, body = cloud_event(encode_request(request))
    assert client.post("/", headers=headers, data=body).status_code == 200
    assert (
        client.post("/", headers=headers, data=body).status_code == 200
    )  # redelivery: acknowledged no-op
    assert pipeline.ledger.get(request.idempotency_key).state == LedgerState.SUBMITTED
    assert len(pipeline.service.created) == 1


def test_submit_refuses_a_poison_message_so_it_is_dead_lettered(pipeline, capsys):
    client = serve("submit", pipeline)
    headers, body = cloud_event(b"not json at all", message_id="m-poison")
    assert client.post("/", headers=headers, data=body).status_code == 500
    log = capsys.readouterr().out
    assert "dead-letter" in log and "m-poison" in log and "not JSON" in log


def test_submit_also_takes_a_raw_pubsub_push(pipeline):
    """A push subscription aimed straight at the function: functions-framework turns the push
    envelope into the same CloudEvent data ({"message": {...}})."""
    client = serve("submit", pipeline)
    request = make_request()
    push = {
        "message": {
            "data": base64.b64encode(encode_request(request)).decode(),
            "messageId": "7",
            "attributes": {},
        },
        "subscription": "projects/p/subscriptions/direct",
    }
    assert client.post("/", json=push).status_code == 200
    assert pipeline.ledger.get(request.idempotency_key).state == LedgerState.SUBMITTED


def test_status_tick_records_the_end_and_always_acknowledges(pipeline):
    submit_client = serve("submit", pipeline)
    request = make_request()
    headers, body = cloud_event(encode_request(request))
    submit_client.post("/", headers=headers, data=body)
    status_client = serve("status", pipeline)
    pipeline.service.succeed(pipeline.ledger.get(request.idempotency_key).job_name)
    tick_headers, tick_body = cloud_event(b'{"time": "2026-11-25T12:00:00Z"}', message_id="tick-1")
    assert status_client.post("/", headers=tick_headers, data=tick_body).status_code == 200
    assert pipeline.ledger.get(request.idempotency_key).state == LedgerState.SUCCEEDED

    class BrokenLedger(MemoryLedger):
        def with_outbox(self):
            raise ConnectionError("Firestore unavailable")

    pipeline.ledger = BrokenLedger()
    assert status_client.post("/", headers=tick_headers, data=tick_body).status_code == 200


def test_a_status_tick_takes_in_an_upload_whose_notification_was_lost(pipeline, monkeypatch):
    """The status function's reconciliation pass, wired as deployed: once per period."""
    monkeypatch.setenv("AUTOTUNE_BUCKET", "data-bucket")
    monkeypatch.setenv("AUTOTUNE_RECONCILE_EVERY_SECONDS", "60")
    monkeypatch.setenv("AUTOTUNE_RECONCILE_AFTER_SECONDS", "300")
    store = MemoryStore()
    store.now = pipeline.clock() - timedelta(seconds=600)
    example = {
        "contents": [
            {"role": "user", "parts": [{"text": "Q?"}]},
            {"role": "model", "parts": [{"text": "A."}]},
        ]
    }
    upload = store.put("incoming/lost.jsonl", (json.dumps(example) + "\n").encode() * 20)
    intake = memory_intake(store)
    status_client = serve("status", pipeline, (intake, store))
    tick_headers, tick_body = cloud_event(b"{}", message_id="tick-1")
    assert status_client.post("/", headers=tick_headers, data=tick_body).status_code == 200
    [request] = published_requests(intake)
    assert request.training.uri == upload.uri
    assert status_client.post("/", headers=tick_headers, data=tick_body).status_code == 200
    assert len(published_requests(intake)) == 1  # the next pass is a period away


def test_validate_serves_with_the_configuration_and_intake_it_is_handed():
    """functions/validate's injection point: a storage event in, the verdict through the intake
    it was configured with (no Google client built)."""
    from intake_doubles import BUCKET

    from autotune.config import PipelineConfig

    store = MemoryStore()
    example = {
        "contents": [
            {"role": "user", "parts": [{"text": "Q?"}]},
            {"role": "model", "parts": [{"text": "A."}]},
        ]
    }
    upload = store.put("incoming/served.jsonl", (json.dumps(example) + "\n").encode() * 20)
    intake = memory_intake(store)
    app = create_app(
        target="validate",
        source=str(ROOT / "functions" / "validate" / "main.py"),
        signature_type="cloudevent",
    )
    sys.modules["main"].configure(
        config=lambda: PipelineConfig(project="p", bucket=BUCKET), deps=lambda: intake
    )
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "e-1",
        "ce-type": "google.cloud.storage.object.v1.finalized",
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{BUCKET}",
        "ce-subject": f"objects/{upload.name}",
        "Content-Type": "application/json",
    }
    body = {
        "bucket": BUCKET,
        "name": upload.name,
        "generation": upload.generation,
        "size": str(upload.size),
    }
    assert app.test_client().post("/", headers=headers, data=json.dumps(body)).status_code == 200
    [request] = published_requests(intake)
    assert request.training.uri == upload.uri
    assert json.loads(next(iter(store.reports.values())))["valid"] is True
