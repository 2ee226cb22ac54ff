"""Faults on the local stack: a function process killed mid-flight and restarted, the tuning
service answering 500 and 429 at a 30% rate, two status ticks at once, the Pub/Sub emulator
restarted while messages are in flight. After each, every dataset reaches an end state exactly
once (one distinct end event, one ledger record, at most one tuning job per dataset version).

One stack serves the module: validate and submit run behind thin wrappers
(tests/integration/functions/holding_*.py) that hold at a chosen moment, so a kill lands
mid-flight by construction rather than by luck of timing.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from google.api_core.exceptions import InternalServerError
from sample_data import conversation_dataset as dataset
from sample_data import unique

from autotune.adapters.bus import PubSubBus
from autotune.adapters.catalog import ProjectCatalog
from autotune.adapters.ledger import FirestoreLedger
from autotune.adapters.tuning_service import VertexTuningService
from autotune.events import EventType
from autotune.jobs.job_spec import KEY_LABEL
from autotune.jobs.lifecycle import ENDED_STATES
from autotune.jobs.pipeline import Pipeline
from autotune.jobs.tick import status_tick
from autotune_local.stack import FunctionSource

pytestmark = pytest.mark.integration

FUNCTIONS = Path(__file__).resolve().parent / "functions"
END_TYPES = {
    EventType.DATASET_REJECTED,
    EventType.JOB_SUCCEEDED,
    EventType.JOB_FAILED,
    EventType.JOB_CANCELLED,
    EventType.JOB_SKIPPED,
}
WAIT = 240.0  # generous: the machine is shared; nothing here measures speed


@pytest.fixture(scope="module")
def stack(make_local_stack):
    return make_local_stack(
        max_concurrent_jobs=2,
        job_seconds=3.0,
        tick_seconds=1.0,
        # Reconciliation often, over uploads a few seconds old: lost messages are found within the test.
        reconcile_every_seconds=2,
        reconcile_after_seconds=12,
        functions={
            "validate": FunctionSource(FUNCTIONS / "holding_validate.py", "validate"),
            "submit": FunctionSource(FUNCTIONS / "holding_submit.py", "submit"),
        },
        extra_env={"AUTOTUNE_TEST_CLAIM_SECONDS": "6", "AUTOTUNE_TEST_HOLD_SECONDS": "3"},
    )


@pytest.fixture
def events(stack):
    listener = stack.listen_events()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def ledger(stack):
    return FirestoreLedger(stack.firestore_client(), stack.config.ledger_collection)


def upload_all(stack, names: list[str]) -> list[str]:
    for name in names:
        stack.upload(dataset(name), name)
    return [f"gs://{stack.bucket}/{name}" for name in names]


def wait_log(stack, process: str, text: str, timeout: float = WAIT) -> None:
    log = stack.log_dir / f"{process}.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{text!r} never appeared in {log.name}")


def jobs_by_label(stack) -> Counter:
    return Counter({label: len(jobs) for label, jobs in labelled_jobs(stack).items()})


def labelled_jobs(stack) -> dict[str, list[str]]:
    """Each dataset label's tuning jobs on the emulator, as "name state created-at" lines."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform_v1

    client = aiplatform_v1.GenAiTuningServiceClient(
        transport="rest",
        client_options={"api_endpoint": stack.config.vertex_endpoint},
        credentials=AnonymousCredentials(),
    )
    parent = f"projects/{stack.project}/locations/{stack.config.defaults.region}"
    for attempt in range(20):  # the fault test makes the emulator answer 500 on purpose
        try:
            found: dict[str, list[str]] = {}
            for job in client.list_tuning_jobs(request={"parent": parent}):
                found.setdefault(job.labels.get(KEY_LABEL, ""), []).append(
                    f"{job.name} {job.state.name} {job.create_time}"
                )
            return found
        except InternalServerError:
            if attempt == 19:
                raise
    raise AssertionError("unreachable")


def doubled_jobs(stack, ledger, keys=None) -> list[str]:
    """What a test failing on a second job needs to say: each doubled label's jobs and its
    record's history (who claimed, took over, created or adopted, and when)."""
    records = {r.idempotency_key: r for r in ledger.records()}
    lines = []
    for label, jobs in labelled_jobs(stack).items():
        if len(jobs) > 1 and (keys is None or label in keys):
            record = records.get(label)
            history = (
                [f"{t.at} {t.state} {t.reason}" for t in record.history]
                if record
                else ["no record"]
            )
            lines.append(f"{label}: jobs {jobs}; history {history}")
    return lines


def assert_each_ends_exactly_once(
    stack, events, ledger, uris: list[str], *, timeout: float = WAIT
) -> dict[str, EventType]:
    """Every dataset has one end event (distinct ce-ids), one ledger record in an end state and at
    most one tuning job; returns each dataset's end."""
    deadline = time.monotonic() + timeout
    ended: dict[str, set[str]] = {}
    while time.monotonic() < deadline:
        events.poll(timeout=1.0)
        ended = {
            u: {r.event.id for r in events.events_for(u) if r.event.type in END_TYPES} for u in uris
        }
        if all(ended.values()):
            break
    missing = [u for u, ids in ended.items() if not ids]
    assert not missing, f"no end state for {missing}"
    settle = time.monotonic() + 5.0  # a second end would show up now, if there were one
    while time.monotonic() < settle:
        events.poll(timeout=1.0)
    ends = {}
    for u in uris:
        end_events = {
            r.event.id: r.event for r in events.events_for(u) if r.event.type in END_TYPES
        }
        assert len(end_events) == 1, (
            f"{u} ended {len(end_events)} times: {[e.type.value for e in end_events.values()]}"
        )
        ends[u] = next(iter(end_events.values())).type
    records = [r for r in ledger.records() if r.dataset_uri in uris]
    assert Counter(r.dataset_uri for r in records) == Counter(
        {u: 1 for u, t in ends.items() if t != EventType.DATASET_REJECTED}
    )
    assert all(r.state in ENDED_STATES for r in records), [
        (r.dataset_uri, r.state) for r in records
    ]
    doubled = doubled_jobs(stack, ledger, {r.idempotency_key for r in records})
    assert not doubled, f"a dataset version has two tuning jobs: {doubled}"
    return ends


def test_validate_killed_mid_flight_is_delivered_again_and_ends_once(stack, events, ledger):
    name = f"incoming/{unique('hold-validate')}.jsonl"
    [uri] = upload_all(stack, [name])
    wait_log(stack, "validate", name)  # the function has the event and holds it
    stack.restart("validate")
    ends = assert_each_ends_exactly_once(stack, events, ledger, [uri])
    assert ends[uri] == EventType.JOB_SUCCEEDED
    accepted = {
        r.event.id for r in events.events_for(uri) if r.event.type == EventType.DATASET_ACCEPTED
    }
    assert len(accepted) == 1


def test_submit_killed_between_job_create_and_ledger_write_adopts_the_job(stack, events, ledger):
    name = f"incoming/{unique('hold-after-create')}.jsonl"
    [uri] = upload_all(stack, [name])
    wait_log(stack, "submit", "fault test: job created, holding")
    stack.restart("submit")  # the job exists; the ledger still says SUBMITTING
    ends = assert_each_ends_exactly_once(stack, events, ledger, [uri])
    assert ends[uri] == EventType.JOB_SUCCEEDED
    [record] = [r for r in ledger.records() if r.dataset_uri == uri]
    assert any("adopted" in (t.reason or "") for t in record.history)
    assert jobs_by_label(stack)[record.idempotency_key] == 1


def test_submit_killed_with_a_burst_in_flight_loses_and_doubles_nothing(stack, events, ledger):
    names = [f"incoming/{unique(f'burst-{i}')}.jsonl" for i in range(6)]
    uris = upload_all(stack, names)
    events.wait_for(
        lambda r: r.event.subject in uris and r.event.type == EventType.JOB_SUBMITTED, timeout=WAIT
    )
    stack.restart("submit")
    ends = assert_each_ends_exactly_once(stack, events, ledger, uris)
    assert set(ends.values()) == {EventType.JOB_SUCCEEDED}


def test_tuning_service_failing_30_percent_with_500_and_429(stack, events, ledger):
    """Every call to the service fails with 500 (30%) and every create with 429 (30%) while the
    datasets are submitted (until each has a job, or 45 s), then the service recovers. Each
    failure without an answer makes the next try wait longer (30 s, doubling, after four quick
    ones), so an error rate kept up for minutes would only make this test wait, not say more."""
    control = f"{stack.config.vertex_endpoint}/emulator/faults"
    requests.post(control, json={"rate429": 0.3, "rate500": 0.3}, timeout=10).raise_for_status()
    try:
        uris = upload_all(
            stack, [f"incoming/{unique(f'flaky-service-{i}')}.jsonl" for i in range(4)]
        )
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            events.poll(timeout=1.0)
            submitted = {
                r.event.subject for r in events.received if r.event.type == EventType.JOB_SUBMITTED
            }
            if set(uris) <= submitted:
                break
    finally:
        requests.post(control, json={"rate429": 0.0, "rate500": 0.0}, timeout=10).raise_for_status()
    ends = assert_each_ends_exactly_once(stack, events, ledger, uris, timeout=WAIT * 2)
    # An end is an end (FAILED after MAX_FAILED_ATTEMPTS is allowed); in practice they succeed.
    assert set(ends.values()) <= {EventType.JOB_SUCCEEDED, EventType.JOB_FAILED}
    # The faults really were met: by submit, or by status when it created a job for a dataset
    # it promoted from the queue (with two slots, most jobs here start that way).
    callers = "".join(
        (stack.log_dir / f"{name}.log").read_text(errors="replace") for name in ("submit", "status")
    )
    assert "injected" in callers


def test_two_status_ticks_at_once_double_nothing(stack, events, ledger):
    """The stack's status function and a second instance (this process: another Firestore
    client, another lock) tick together, over and over, while datasets queue and run."""
    second_instance = Pipeline(
        ledger=FirestoreLedger(stack.firestore_client(), stack.config.ledger_collection),
        service=VertexTuningService(stack.config.vertex_endpoint),
        publisher=PubSubBus(stack.publisher(), stack.config),
        catalog=ProjectCatalog(),
        project=stack.project,
        max_jobs=stack.config.max_concurrent_jobs,
    )
    tick_event = {
        "ce-specversion": "1.0",
        "ce-source": "//test",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "Content-Type": "application/json",
    }
    body = json.dumps({"message": {"data": "", "messageId": "x"}, "subscription": "test"}).encode()
    stop = threading.Event()

    def tick_together() -> None:
        with ThreadPoolExecutor(max_workers=3) as pool:
            while not stop.is_set():
                futures: list[Future[object]] = [
                    pool.submit(
                        requests.post,
                        stack.env["AUTOTUNE_STATUS_URL"],
                        headers={**tick_event, "ce-id": uuid.uuid4().hex},
                        data=body,
                        timeout=120,
                    )
                    for _ in range(2)
                ]
                futures.append(pool.submit(status_tick, second_instance))
                for future in futures:
                    future.result()

    ticker = threading.Thread(target=tick_together, daemon=True)
    ticker.start()
    try:
        uris = upload_all(stack, [f"incoming/{unique(f'ticks-{i}')}.jsonl" for i in range(6)])
        ends = assert_each_ends_exactly_once(stack, events, ledger, uris)
    finally:
        stop.set()
        ticker.join()
    assert set(ends.values()) == {EventType.JOB_SUCCEEDED}
    for uri in uris:
        kinds = Counter(
            r.event.type for r in {r.event.id: r for r in events.events_for(uri)}.values()
        )
        assert (
            kinds[EventType.JOB_SUBMITTED]
            == kinds[EventType.JOB_RUNNING]
            == kinds[EventType.JOB_SUCCEEDED]
            == 1
        ), (uri, kinds)


def test_pubsub_emulator_restarted_with_datasets_in_flight_keeps_what_the_ledger_holds(
    stack, ledger
):
    """The emulator keeps nothing across a restart (topics, subscriptions, messages): the stack
    creates its topics and subscriptions again. Datasets already in the ledger reach their end
    exactly once (the ledger drives them); one being validated during the restart, whose tuning
    request may be lost with the emulator, is taken in again by reconciliation and ends once too.
    Events not yet pulled are gone: see docs/RELIABILITY.md."""
    publisher = stack.publisher()
    probe_topic = publisher.topic_path(stack.project, unique("probe"))
    publisher.create_topic(name=probe_topic)
    listener = stack.listen_events()
    names = [f"incoming/{unique(f'pubsub-restart-{i}')}.jsonl" for i in range(4)]
    uris = upload_all(stack, names)
    claimed = {EventType.JOB_QUEUED, EventType.JOB_SUBMITTED}
    for uri in uris:  # each one is in the ledger: past the messages that a restart loses
        listener.wait_for(
            lambda r, uri=uri: r.event.subject == uri and r.event.type in claimed, timeout=WAIT
        )
    listener.close()
    held = f"incoming/{unique('hold-pubsub-restart')}.jsonl"
    [held_uri] = upload_all(stack, [held])
    wait_log(
        stack, "validate", held
    )  # validate holds it, then publishes its request into the restart

    stack.restart("pubsub")

    from google.api_core.exceptions import NotFound

    with pytest.raises(NotFound):
        stack.publisher().get_topic(topic=probe_topic)  # nothing survived the restart
    events = stack.listen_events()
    try:
        deadline = time.monotonic() + WAIT
        records = []
        while time.monotonic() < deadline:
            records = [r for r in ledger.records() if r.dataset_uri in uris]
            if len(records) == len(uris) and all(r.state in ENDED_STATES for r in records):
                break
            time.sleep(1.0)
        assert sorted(r.dataset_uri for r in records) == sorted(uris)
        assert {r.state.value for r in records} == {"SUCCEEDED"}
        assert not doubled_jobs(stack, ledger, {r.idempotency_key for r in records})
        after = f"incoming/{unique('after-restart')}.jsonl"
        [after_uri] = upload_all(stack, [after])  # the pipeline works again end to end
        ends = assert_each_ends_exactly_once(stack, events, ledger, [after_uri, held_uri])
        assert ends == {after_uri: EventType.JOB_SUCCEEDED, held_uri: EventType.JOB_SUCCEEDED}
    finally:
        events.close()


def test_a_lost_storage_notification_and_a_lost_tuning_request_are_taken_in_again(
    stack, events, ledger
):
    """What a restarted emulator (or, on Google Cloud, a dead-lettered validation) loses, made to
    happen on purpose: uploads while validate's subscription does not exist (their notifications
    go nowhere), and an upload while submit's does not (its tuning request goes nowhere).
    Reconciliation finds them from the bucket and the ledger; each ends exactly once, and a
    dataset that never lost anything is not taken in twice."""
    subscriber = stack.subscriber()

    def without_subscription(function: str):
        path = subscriber.subscription_path(stack.project, stack.subscriptions.push[function])
        saved = subscriber.get_subscription(subscription=path)
        subscriber.delete_subscription(subscription=path)
        return lambda: subscriber.create_subscription(request=saved)

    restore_validate = without_subscription("validate")
    no_notification = [f"incoming/{unique('lost-notification')}.jsonl"]
    bad_name = f"incoming/{unique('lost-notification-bad')}.jsonl"
    stack.upload(b'{"contents": [}\n', bad_name)
    no_notification_uris = upload_all(stack, no_notification) + [f"gs://{stack.bucket}/{bad_name}"]
    time.sleep(1.0)  # the storage emulator has published the notifications, to no subscription
    restore_validate()

    restore_submit = without_subscription("submit")
    [no_request_uri] = upload_all(stack, [f"incoming/{unique('lost-request')}.jsonl"])
    events.wait_for(
        lambda r: r.event.subject == no_request_uri and r.event.type == EventType.DATASET_ACCEPTED,
        timeout=WAIT,
    )
    time.sleep(1.0)  # validate published the request, to no subscription
    restore_submit()
    [untouched_uri] = upload_all(stack, [f"incoming/{unique('never-lost')}.jsonl"])

    uris = [*no_notification_uris, no_request_uri, untouched_uri]
    ends = assert_each_ends_exactly_once(stack, events, ledger, uris)
    assert ends == {
        no_notification_uris[0]: EventType.JOB_SUCCEEDED,
        no_notification_uris[1]: EventType.DATASET_REJECTED,
        no_request_uri: EventType.JOB_SUCCEEDED,
        untouched_uri: EventType.JOB_SUCCEEDED,
    }
    for uri in uris:
        verdicts = {
            r.event.id
            for r in events.events_for(uri)
            if r.event.type in {EventType.DATASET_ACCEPTED, EventType.DATASET_REJECTED}
        }
        assert len(verdicts) == 1, uri  # copies, if any, carry the same ce-id
    untouched = [
        r for r in events.events_for(untouched_uri) if r.event.type == EventType.DATASET_ACCEPTED
    ]
    assert len(untouched) == 1  # never taken in again
    log = (stack.log_dir / "status.log").read_text(errors="replace")
    assert "reconciliation: dataset accepted" in log and "reconciliation: dataset rejected" in log
