"""Exactly one tuning job per dataset, the queue under the quota, completions recorded: the
local stack (Pub/Sub, Firestore, fake-gcs-server emulators, the tuning emulator, the three
functions) driven through the real Google client libraries.

Every test uses datasets of its own (unique text), waits for them to end, and judges order and
concurrency from what the ledger and the service recorded, never from how fast things went.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests
from sample_data import conversation_dataset as dataset
from sample_data import unique

from autotune.adapters.bus import PubSubBus
from autotune.adapters.catalog import ProjectCatalog
from autotune.adapters.ledger import FirestoreLedger
from autotune.adapters.tuning_service import VertexTuningService
from autotune.events import EventType
from autotune.jobs.job_spec import KEY_LABEL
from autotune.jobs.lifecycle import LedgerState, parse_timestamp
from autotune.jobs.pipeline import Pipeline
from autotune.jobs.request import DatasetRef, TuningRequest, content_key, idempotency_key
from autotune.jobs.submit import submit_request
from autotune.settings import TuningSettings

pytestmark = pytest.mark.integration

END_EVENTS = {EventType.JOB_SUCCEEDED, EventType.JOB_FAILED, EventType.JOB_CANCELLED}
WAIT = 120.0  # generous: the machine is shared; nothing here measures speed


@pytest.fixture(scope="module")
def stack(local_stack):
    return local_stack


@pytest.fixture(scope="module")
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


def wait_event(events, dataset_uri: str, *types: EventType, timeout: float = WAIT):
    wanted = {*types, EventType.DATASET_REJECTED}
    event = events.wait_for(
        lambda r: r.event.subject == dataset_uri and r.event.type in wanted, timeout=timeout
    ).event
    assert event.type in types, f"{dataset_uri} was rejected: {event.payload.counts}"
    return event


def types_for(events, dataset_uri: str) -> list[str]:
    return [r.event.type.value.rsplit(".", 1)[1] for r in events.events_for(dataset_uri)]


def jobs_labelled(tuning, stack, key: str):
    parent = f"projects/{stack.project}/locations/{stack.config.defaults.region}"
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    client = aiplatform_v1.GenAiTuningServiceClient(
        transport="rest",
        client_options={"api_endpoint": stack.config.vertex_endpoint},
        credentials=AnonymousCredentials(),
    )
    return list(
        client.list_tuning_jobs(request={"parent": parent, "filter": f'labels.{KEY_LABEL}="{key}"'})
    )


def emulator_control(stack, route: str, body: dict) -> dict:
    answer = requests.post(
        f"{stack.config.vertex_endpoint}/emulator/{route}", json=body, timeout=10
    )
    answer.raise_for_status()
    return answer.json()


def finalize_event(stack, name: str) -> tuple[dict[str, str], bytes]:
    """The storage CloudEvent the event bridge makes of fake-gcs-server's notification for `name`."""
    from autotune_local.event_bridge import cloud_event_for

    host = stack.env["STORAGE_EMULATOR_HOST"]
    resource = requests.get(
        f"{host}/storage/v1/b/{stack.bucket}/o/{urllib.parse.quote(name, safe='')}", timeout=10
    ).json()
    push = {
        "message": {
            "data": base64.b64encode(json.dumps(resource).encode()).decode(),
            "attributes": {
                "bucketId": stack.bucket,
                "objectId": name,
                "eventType": "OBJECT_FINALIZE",
                "objectGeneration": str(resource["generation"]),
            },
            "messageId": uuid.uuid4().hex,
        },
        "subscription": "test",
    }
    return cloud_event_for({"kind": "storage"}, stack.project, push)


def test_same_finalize_event_ten_times_at_once_gives_one_job(stack, events, ledger, tuning):
    name = f"incoming/{unique('tenfold')}.jsonl"
    stack.upload(dataset(name), name)
    headers, body = finalize_event(stack, name)
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(
            pool.map(
                lambda _: requests.post(
                    stack.env["AUTOTUNE_VALIDATE_URL"], headers=headers, data=body, timeout=120
                ),
                range(10),
            )
        )
    assert all(a.status_code < 300 for a in answers), [
        a.text for a in answers if a.status_code >= 300
    ]

    done = wait_event(events, uri(stack, name), *END_EVENTS)
    assert done.type == EventType.JOB_SUCCEEDED
    assert len(jobs_labelled(tuning, stack, done.payload.idempotency_key)) == 1
    records = [r for r in ledger.records() if r.dataset_uri == uri(stack, name)]
    assert len(records) == 1 and records[0].state == LedgerState.SUCCEEDED
    assert types_for(events, uri(stack, name)).count("submitted") == 1


def test_crash_between_create_and_ledger_write_gives_no_second_job(stack, events, ledger, tuning):
    """The submit core with the stack's real Firestore and tuning emulator, and a ledger that dies
    right after the job is created. The stack's status function takes the claim over once it
    expires and adopts the job it finds by label."""
    name = f"manual/{unique('crash')}.jsonl"  # outside incoming/: the validate function leaves it alone
    data = dataset(name)
    generation = str(stack.upload(data, name))
    settings = TuningSettings(
        model="gemini-2.5-flash", epochs=1, region=stack.config.defaults.region
    )
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    content = content_key(sha, None, settings)
    request = TuningRequest(
        idempotency_key=idempotency_key(stack.bucket, name, generation, content),
        content_key=content,
        training=DatasetRef(
            bucket=stack.bucket, object=name, generation=generation, sha256=sha, size=len(data)
        ),
        settings=settings,
        report_uri=f"gs://{stack.bucket}/reports/{name}/{generation}.json",
        requested_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    )

    class Crash(Exception):
        pass

    class DyingLedger(FirestoreLedger):
        """Dies on the first update of the SUBMITTING record once its job exists (the claim's
        confirmation before the create goes through)."""

        def update(self, key, decide):
            record = self.get(key)
            assert record is not None, key
            if record.state == LedgerState.SUBMITTING and jobs_labelled(tuning, stack, key):
                raise Crash("the process died after create, before recording the job")
            return super().update(key, decide)

    pipeline = Pipeline(
        ledger=DyingLedger(stack.firestore_client(), stack.config.ledger_collection),
        service=tuning,
        publisher=PubSubBus(stack.publisher(), stack.config),
        catalog=ProjectCatalog(),
        project=stack.project,
        max_jobs=stack.config.max_concurrent_jobs,
        claim_seconds=3.0,
    )
    with pytest.raises(Crash):
        submit_request(pipeline, request)
    [created] = jobs_labelled(tuning, stack, request.idempotency_key)
    assert ledger.get(request.idempotency_key).state == LedgerState.SUBMITTING

    done = wait_event(events, uri(stack, name), *END_EVENTS)
    assert done.type == EventType.JOB_SUCCEEDED and done.payload.job_name == created.name
    assert [j.name for j in jobs_labelled(tuning, stack, request.idempotency_key)] == [created.name]
    record = ledger.get(request.idempotency_key)
    assert any("adopted" in (t.reason or "") for t in record.history)
    assert types_for(events, uri(stack, name)) == ["submitted", "running", "succeeded"]


def test_five_datasets_under_quota_one_run_one_at_a_time_in_upload_order(
    stack, events, ledger, tuning
):
    assert stack.config.max_concurrent_jobs == 1
    names = [f"incoming/{unique(f'five-{i}')}.jsonl" for i in range(5)]
    peak = {"active": 0}
    stop = threading.Event()

    def watch_emulator():
        while not stop.is_set():
            jobs = requests.get(
                f"{stack.config.vertex_endpoint}/emulator/state", timeout=10
            ).json()["jobs"]
            active = sum(
                n
                for state, n in jobs.items()
                if state in {"JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"}
            )
            peak["active"] = max(peak["active"], active)
            stop.wait(0.2)

    watcher = threading.Thread(target=watch_emulator, daemon=True)
    watcher.start()
    try:
        stack.upload(dataset(names[0]), names[0])
        wait_event(events, uri(stack, names[0]), EventType.JOB_SUBMITTED)
        for name in names[1:]:
            stack.upload(
                dataset(name), name
            )  # waits while the slot is taken (or runs if all before it ended)
            wait_event(events, uri(stack, name), EventType.JOB_QUEUED, EventType.JOB_SUBMITTED)
        ends = [
            wait_event(events, uri(stack, name), *END_EVENTS, timeout=WAIT * 2) for name in names
        ]
    finally:
        stop.set()
        watcher.join()
    assert [e.type for e in ends] == [EventType.JOB_SUCCEEDED] * 5
    assert peak["active"] <= 1
    records = sorted(
        (ledger.get(e.payload.idempotency_key) for e in ends),
        key=lambda r: _entered(r, LedgerState.SUBMITTING),
    )
    assert [r.dataset_uri for r in records] == [uri(stack, n) for n in names]  # FIFO: upload order
    for earlier, later in zip(records, records[1:]):
        assert _entered(later, LedgerState.SUBMITTING) >= _entered(
            earlier, LedgerState.SUCCEEDED
        )  # never two at once
    for name in names:
        assert types_for(events, uri(stack, name)).count("succeeded") == 1


def _entered(record, state):
    return max(parse_timestamp(t.at) for t in record.history if t.state == state)


def test_a_job_told_to_fail_gives_a_failed_event_with_its_error(stack, events, ledger):
    emulator_control(stack, "fail-next", {"message": "emulator: example 7 has an empty model turn"})
    name = f"incoming/{unique('doomed')}.jsonl"
    stack.upload(dataset(name), name)
    failed = wait_event(events, uri(stack, name), *END_EVENTS)
    assert failed.type == EventType.JOB_FAILED
    assert failed.payload.error == "emulator: example 7 has an empty model turn"
    record = ledger.get(failed.payload.idempotency_key)
    assert record.state == LedgerState.FAILED and record.error == failed.payload.error
    assert ledger.slots().active == {}


def test_service_429_leaves_the_dataset_queued_and_it_runs_later(stack, events, ledger):
    emulator_control(stack, "faults", {"next429": 1})
    name = f"incoming/{unique('throttled')}.jsonl"
    stack.upload(dataset(name), name)
    queued = wait_event(events, uri(stack, name), EventType.JOB_QUEUED)
    assert "429" in queued.payload.reason
    done = wait_event(events, uri(stack, name), *END_EVENTS)
    assert done.type == EventType.JOB_SUCCEEDED
    states = [t.state for t in ledger.get(done.payload.idempotency_key).history]
    assert (
        states[:3] == [LedgerState.ACCEPTED, LedgerState.SUBMITTING, LedgerState.QUEUED]
        and states[-1] == LedgerState.SUCCEEDED
    )


def test_reupload_of_the_same_bytes_is_skipped_unless_forced(stack, events, ledger, tuning):
    name = f"incoming/{unique('again')}.jsonl"
    data = dataset(name)
    stack.upload(data, name)
    first = wait_event(events, uri(stack, name), *END_EVENTS)
    assert first.type == EventType.JOB_SUCCEEDED

    second_generation = str(stack.upload(data, name))
    skipped = events.wait_for(
        lambda r: (
            r.event.subject == uri(stack, name)
            and r.event.payload.generation == second_generation
            and r.event.type in {EventType.JOB_SKIPPED, EventType.JOB_SUBMITTED}
        ),
        timeout=WAIT,
    ).event
    assert skipped.type == EventType.JOB_SKIPPED
    assert (
        "autotune-force" in skipped.payload.reason
        and skipped.payload.job_name == first.payload.job_name
    )

    third_generation = str(stack.upload(data, name, metadata={"autotune-force": "true"}))
    forced = events.wait_for(
        lambda r: (
            r.event.subject == uri(stack, name)
            and r.event.payload.generation == third_generation
            and r.event.type in END_EVENTS
        ),
        timeout=WAIT,
    ).event
    assert (
        forced.type == EventType.JOB_SUCCEEDED and forced.payload.job_name != first.payload.job_name
    )
    submitted = [
        r.event
        for r in events.events_for(uri(stack, name))
        if r.event.type == EventType.JOB_SUBMITTED
        and r.event.payload.generation == third_generation
    ]
    assert "autotune-force" in submitted[0].payload.reason


def test_poison_request_ends_in_the_dead_letter_topic(stack):
    publisher, subscriber = stack.publisher(), stack.subscriber()
    poison = b'{"schema_version": 1, "idempotency_key": "not-a-request"}'
    marker = unique("poison")
    publisher.publish(
        stack.config.topic_path(stack.config.requests_topic), poison, marker=marker
    ).result(timeout=30)
    dead_letter = subscriber.subscription_path(
        stack.project, stack.subscriptions.dead_letter["submit"]
    )
    import time

    deadline = time.monotonic() + WAIT
    found = None
    while found is None and time.monotonic() < deadline:
        response = subscriber.pull(subscription=dead_letter, max_messages=10, timeout=5)
        for item in response.received_messages:
            subscriber.acknowledge(subscription=dead_letter, ack_ids=[item.ack_id])
            if item.message.attributes.get("marker") == marker:
                found = item.message
    assert found is not None and bytes(found.data) == poison
    log = (stack.log_dir / "submit.log").read_text()
    reasons = [
        json.loads(line)
        for line in log.splitlines()
        if line.startswith("{") and "dead-letter" in line
    ]
    assert any(
        "missing required field `content_key`" in entry.get("reason", "") for entry in reasons
    )


def test_cli_shows_the_ledger_and_cancels_a_queued_dataset(stack, events, ledger):
    from typer.testing import CliRunner

    from autotune.cli import app

    runner = CliRunner()
    first, second = f"incoming/{unique('cli-a')}.jsonl", f"incoming/{unique('cli-b')}.jsonl"
    usual = requests.get(f"{stack.config.vertex_endpoint}/emulator/state", timeout=10).json()[
        "jobSeconds"
    ]
    emulator_control(
        stack, "config", {"jobSeconds": 600}
    )  # the first job runs until it is cancelled
    try:
        stack.upload(dataset(first), first)
        wait_event(events, uri(stack, first), EventType.JOB_SUBMITTED)
    finally:
        emulator_control(stack, "config", {"jobSeconds": usual})
    stack.upload(dataset(second), second)
    wait_event(events, uri(stack, second), EventType.JOB_QUEUED)

    listed = runner.invoke(app, ["jobs", "--json", "--state-dir", str(stack.state_dir)])
    assert listed.exit_code == 0, listed.output
    by_uri = {r["dataset_uri"]: r for r in json.loads(listed.output)}
    assert by_uri[uri(stack, second)]["state"] == "QUEUED"

    cancelled = runner.invoke(
        app, ["cancel", second.rsplit("/", 1)[1], "--state-dir", str(stack.state_dir)]
    )
    assert cancelled.exit_code == 0, cancelled.output
    assert (
        wait_event(events, uri(stack, second), EventType.JOB_CANCELLED).payload.state == "CANCELLED"
    )

    job_name = wait_event(events, uri(stack, first), EventType.JOB_SUBMITTED).payload.job_name
    cancel_running = runner.invoke(
        app, ["cancel", job_name.rsplit("/", 1)[1], "--state-dir", str(stack.state_dir)]
    )
    assert cancel_running.exit_code == 0, cancel_running.output
    ended = wait_event(events, uri(stack, first), *END_EVENTS)
    assert ended.type == EventType.JOB_CANCELLED

    shown = runner.invoke(app, ["status", uri(stack, first), "--state-dir", str(stack.state_dir)])
    assert shown.exit_code == 0 and "CANCELLED" in shown.output and job_name in shown.output
    missing = runner.invoke(
        app, ["status", "gs://nowhere/none.jsonl", "--state-dir", str(stack.state_dir)]
    )
    assert missing.exit_code == 1


def test_with_500s_injected_every_dataset_still_gets_exactly_one_job(make_local_stack):
    """A stack of its own where 15 % of the tuning service's answers are 500: submits are
    redelivered or taken over by the tick, polls retried, and still one job per dataset."""
    stack = make_local_stack(
        job_seconds=2.0, tick_seconds=1.0, fault_rate_500=0.15, max_concurrent_jobs=2
    )
    listener = stack.listen_events()
    try:
        names = [f"incoming/{unique(f'flaky-{i}')}.jsonl" for i in range(4)]
        for name in names:
            stack.upload(dataset(name), name)
        ends = [
            wait_event(listener, uri(stack, name), *END_EVENTS, timeout=WAIT * 2) for name in names
        ]
        assert [e.type for e in ends] == [EventType.JOB_SUCCEEDED] * 4
        tuning = VertexTuningService(stack.config.vertex_endpoint)
        emulator_control(stack, "faults", {"rate500": 0.0})
        for end in ends:
            assert len(jobs_labelled(tuning, stack, end.payload.idempotency_key)) == 1
        for name in names:
            assert types_for(listener, uri(stack, name)).count("succeeded") == 1
    finally:
        listener.close()
        stack.stop()


def test_overlapping_status_ticks_double_nothing(stack, events, ledger, tuning):
    """Ticks fired at the status function all at once, while this process runs the status step
    too (another process on the same Firestore): every move and event still happens once."""
    from autotune.jobs.tick import status_tick

    names = [f"incoming/{unique(f'overlap-{i}')}.jsonl" for i in range(2)]
    stack.upload(dataset(names[0]), names[0])
    wait_event(events, uri(stack, names[0]), EventType.JOB_SUBMITTED)
    stack.upload(dataset(names[1]), names[1])
    wait_event(events, uri(stack, names[1]), EventType.JOB_QUEUED, EventType.JOB_SUBMITTED)

    pipeline = Pipeline(
        ledger=ledger,
        service=tuning,
        publisher=PubSubBus(stack.publisher(), stack.config),
        catalog=ProjectCatalog(),
        project=stack.project,
        max_jobs=stack.config.max_concurrent_jobs,
    )
    tick_headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": f"//pubsub.googleapis.com/projects/{stack.project}/topics/{stack.config.ticks_topic}",
        "Content-Type": "application/json",
    }
    tick_body = json.dumps(
        {
            "message": {"data": base64.b64encode(b"{}").decode(), "messageId": "t"},
            "subscription": "test",
        }
    )

    def burst(i: int) -> None:
        if i % 3 == 0:
            status_tick(pipeline)
        else:
            requests.post(
                stack.env["AUTOTUNE_STATUS_URL"],
                headers={**tick_headers, "ce-id": uuid.uuid4().hex},
                data=tick_body,
                timeout=120,
            )

    import time

    deadline = time.monotonic() + WAIT * 2
    with ThreadPoolExecutor(max_workers=6) as pool:
        while not all(
            ledger_state(ledger, stack, n)
            in {LedgerState.SUCCEEDED, LedgerState.FAILED, LedgerState.CANCELLED}
            for n in names
        ):
            assert time.monotonic() < deadline, [ledger_state(ledger, stack, n) for n in names]
            list(pool.map(burst, range(6)))
    for name in names:
        wait_event(events, uri(stack, name), *END_EVENTS)
    events.poll(timeout=2.0)  # a duplicate would have been published by now
    for name in names:
        kinds = types_for(events, uri(stack, name))
        assert [kinds.count(k) for k in ("submitted", "running", "succeeded")] == [1, 1, 1], kinds
    keys = [
        r.idempotency_key
        for r in ledger.records()
        if r.dataset_uri in {uri(stack, n) for n in names}
    ]
    assert [len(jobs_labelled(tuning, stack, key)) for key in keys] == [1, 1]


def ledger_state(ledger, stack, name):
    found = [r for r in ledger.records() if r.dataset_uri == uri(stack, name)]
    return found[0].state if found else None
