"""The tuning service as Vertex AI really behaves, on the local stack: a create slower than the
client's deadline, a create that makes its job and then answers 5xx, a list that lags, a
submitter killed after its create while the service answers 500, job states no client knows,
and an asynchronous cancel. After each: exactly one running job per dataset, the pipeline's
slots never below what the service runs, and every dataset ends once.

One stack serves the module: the client's deadline is 2 s and a create without an answer is
looked for again after 6 s, so each case runs in seconds; submit and status run behind thin
wrappers (tests/integration/functions) that hold after a create, expire claims after 6 s and run
out of attempts after 3.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from sample_data import conversation_dataset as dataset
from sample_data import unique

from autotune.adapters.bus import PubSubBus
from autotune.adapters.catalog import ProjectCatalog
from autotune.adapters.ledger import FirestoreLedger
from autotune.adapters.tuning_service import VertexTuningService, state_name
from autotune.events import EventType
from autotune.jobs.cancel import cancel
from autotune.jobs.job_spec import KEY_LABEL
from autotune.jobs.lifecycle import LedgerState
from autotune.jobs.pipeline import Pipeline
from autotune_local.stack import FunctionSource

pytestmark = pytest.mark.integration

FUNCTIONS = Path(__file__).resolve().parent / "functions"
END_TYPES = {
    EventType.JOB_SUCCEEDED,
    EventType.JOB_FAILED,
    EventType.JOB_CANCELLED,
    EventType.JOB_SKIPPED,
}
WAIT = 240.0  # generous: the machine is shared; nothing here measures speed


@pytest.fixture(scope="module")
def stack(make_local_stack):
    return make_local_stack(
        max_concurrent_jobs=1,
        quota=4,
        job_seconds=8.0,
        tick_seconds=1.0,
        functions={
            "submit": FunctionSource(FUNCTIONS / "holding_submit.py", "submit"),
            "status": FunctionSource(FUNCTIONS / "quick_status.py", "status"),
        },
        extra_env={
            "AUTOTUNE_TEST_CLAIM_SECONDS": "6",
            "AUTOTUNE_TEST_MAX_FAILED_ATTEMPTS": "3",
            "AUTOTUNE_TUNING_CALL_TIMEOUT_SECONDS": "2",
            "AUTOTUNE_TUNING_CREATE_SETTLE_SECONDS": "6",
        },
    )


@pytest.fixture
def events(stack):
    listener = stack.listen_events()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def ledger(stack):
    return FirestoreLedger(stack.firestore_client(), stack.config.ledger_collection)


@pytest.fixture(autouse=True)
def calm_service(stack):
    yield
    control(
        stack,
        "faults",
        {
            "rate500": 0.0,
            "rate503": 0.0,
            "rateLimit429": 0.0,
            "createDelaySeconds": 0.0,
            "listLagSeconds": 0.0,
            "nextAfterCreate500": 0,
            "nextAfterCreate503": 0,
            "nextAfterCreateStall": 0,
        },
    )
    control(
        stack,
        "config",
        {"reportState": None, "cancellingSeconds": 0.0, "cancelEndsAnywayShare": 0.0},
    )
    wait_until(
        lambda: not any(state in ACTIVE for state in control(stack, "state", method="GET")["jobs"]),
        "the emulator's jobs to end",
    )


ACTIVE = {
    "JOB_STATE_QUEUED",
    "JOB_STATE_PENDING",
    "JOB_STATE_RUNNING",
    "JOB_STATE_CANCELLING",
    "42",
}


def control(stack, route: str, body: dict | None = None, method: str = "POST") -> dict:
    answer = requests.request(
        method, f"{stack.config.vertex_endpoint}/emulator/{route}", json=body, timeout=10
    )
    answer.raise_for_status()
    return answer.json()


def wait_until(predicate, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def upload(stack, stem: str) -> str:
    name = f"incoming/{unique(stem)}.jsonl"
    stack.upload(dataset(name), name)
    return f"gs://{stack.bucket}/{name}"


def record_of(ledger, dataset_uri: str):
    found = [r for r in ledger.records() if r.dataset_uri == dataset_uri]
    return found[0] if found else None


def labelled_jobs(stack) -> dict[str, list]:
    """Every job on the emulator by its dataset label, read past any injected fault or list lag."""
    service = VertexTuningService(stack.config.vertex_endpoint)
    client = service._client("us-central1")
    parent = f"projects/{stack.project}/locations/{stack.config.defaults.region}"
    by_label: dict[str, list] = {}
    for job in client.list_tuning_jobs(request={"parent": parent}):
        by_label.setdefault(job.labels.get(KEY_LABEL, ""), []).append(job)
    return by_label


def ends_once(events, dataset_uri: str, timeout: float = WAIT) -> EventType:
    events.wait_for(
        lambda r: r.event.subject == dataset_uri and r.event.type in END_TYPES, timeout=timeout
    )
    settle = time.monotonic() + 4.0  # a second end would show up now, if there were one
    while time.monotonic() < settle:
        events.poll(timeout=1.0)
    ends = {
        r.event.id: r.event.type
        for r in events.events_for(dataset_uri)
        if r.event.type in END_TYPES
    }
    assert len(ends) == 1, f"{dataset_uri} ended {len(ends)} times: {list(ends.values())}"
    return next(iter(ends.values()))


def one_job_for(stack, ledger, dataset_uri: str) -> None:
    record = record_of(ledger, dataset_uri)
    jobs = labelled_jobs(stack).get(record.idempotency_key, [])
    kept = [job for job in jobs if state_name(job.state) != "JOB_STATE_CANCELLED"]
    assert len(kept) == 1 and kept[0].name == record.job_name, [
        (job.name, state_name(job.state)) for job in jobs
    ]


def test_a_create_slower_than_the_client_deadline_gives_one_job(stack, events, ledger):
    """The issue's first reproduction: the create outlasts the client's deadline and makes its
    job afterwards; the next attempt waits for it to show, finds it by label and adopts it."""
    control(stack, "faults", {"createDelaySeconds": 4.0})
    uri = upload(stack, "slow-create")
    wait_until(
        lambda: (r := record_of(ledger, uri)) and r.create_unanswered, "the create to time out"
    )
    control(stack, "faults", {"createDelaySeconds": 0.0})
    assert ends_once(events, uri) == EventType.JOB_SUCCEEDED
    one_job_for(stack, ledger, uri)
    record = record_of(ledger, uri)
    assert any("adopted" in (t.reason or "") for t in record.history)


@pytest.mark.parametrize(
    "fault", ["nextAfterCreate500", "nextAfterCreate503", "nextAfterCreateStall"]
)
def test_a_create_that_makes_its_job_then_fails_gives_one_job(stack, events, ledger, fault):
    control(stack, "faults", {fault: 1, "stallSeconds": 5.0})
    uri = upload(stack, f"after-create-{fault[15:].lower()}")
    assert ends_once(events, uri) == EventType.JOB_SUCCEEDED
    one_job_for(stack, ledger, uri)
    assert any("adopted" in (t.reason or "") for t in record_of(ledger, uri).history)


def test_a_list_lagging_past_the_settle_pause_gives_a_second_job_which_is_cancelled(
    stack, events, ledger
):
    """What list lag can still do: the create's answer is lost and the job stays out of lists
    longer than the settle pause, so a second job is made. The status tick finds it once lists
    show it, cancels it, records it on the dataset and announces it; the dataset ends once."""
    control(stack, "config", {"jobSeconds": 20.0})
    control(stack, "faults", {"nextAfterCreate500": 1, "listLagSeconds": 9.0})
    try:
        uri = upload(stack, "list-lag")
        duplicate = events.wait_for(
            lambda r: r.event.subject == uri and r.event.type == EventType.JOB_DUPLICATE_CANCELLED,
            timeout=WAIT,
        )
    finally:
        control(stack, "config", {"jobSeconds": 8.0})
    record = record_of(ledger, uri)
    assert (
        record.duplicate_jobs == (duplicate.event.payload.job_name,)
        and duplicate.event.payload.job_name != record.job_name
    )
    assert ends_once(events, uri) == EventType.JOB_SUCCEEDED
    one_job_for(stack, ledger, uri)


def test_submit_killed_after_create_then_500s_never_gives_up_nor_frees_the_slot(
    stack, events, ledger
):
    """The issue's second reproduction: submit dies after its create reached the service, then the
    service answers 500 to everything while the record runs out of attempts. The record keeps
    its slot (a second upload waits), and adopts the job once the service answers again."""
    first = upload(stack, "hold-after-create")
    from test_faults import wait_log

    wait_log(stack, "submit", "fault test: job created, holding")
    control(stack, "faults", {"rate500": 1.0})
    stack.restart("submit")
    wait_until(lambda: record_of(ledger, first).failed_attempts > 3, "the attempts to run out")
    second = upload(stack, "waits-for-the-slot")
    wait_until(
        lambda: (r := record_of(ledger, second)) and r.state == LedgerState.QUEUED,
        "the second dataset to queue",
    )
    time.sleep(3.0)  # a few more ticks of 500s
    held = record_of(ledger, first)
    assert held.state == LedgerState.SUBMITTING and held.idempotency_key in ledger.slots().active
    assert not [r for r in events.events_for(first) if r.event.type == EventType.JOB_FAILED]
    jobs = control(stack, "state", method="GET")["jobs"]  # past the injected 500s
    assert sum(n for state, n in jobs.items() if state in ACTIVE) <= 1, (
        jobs
    )  # the held dataset's own job only: the second waits
    control(stack, "faults", {"rate500": 0.0})
    assert ends_once(events, first) == EventType.JOB_SUCCEEDED
    assert ends_once(events, second) == EventType.JOB_SUCCEEDED
    one_job_for(stack, ledger, first)
    assert any("adopted" in (t.reason or "") for t in record_of(ledger, first).history)


@pytest.mark.parametrize("number", [10, 11, 42])
def test_job_states_no_client_knows_are_recorded_and_polled_on(stack, events, ledger, number):
    control(stack, "config", {"jobSeconds": 16.0})
    try:
        uri = upload(stack, f"state-{number}")
        events.wait_for(
            lambda r: r.event.subject == uri and r.event.type == EventType.JOB_RUNNING, timeout=WAIT
        )
        control(stack, "config", {"reportState": number})
        expected = {10: "JOB_STATE_UPDATING", 11: "JOB_STATE_PARTIALLY_SUCCEEDED", 42: "42"}[number]
        record = wait_until(
            lambda: (r := record_of(ledger, uri)) and r.job_state == expected and r,
            f"job_state {expected}",
        )
        control(stack, "config", {"reportState": None})
    finally:
        control(stack, "config", {"jobSeconds": 8.0})
    if number == 11:  # PARTIALLY_SUCCEEDED is an end: it may already have moved the record
        assert record.state in {LedgerState.RUNNING, LedgerState.SUCCEEDED}
    else:
        assert record.state == LedgerState.RUNNING
    assert ends_once(events, uri) == EventType.JOB_SUCCEEDED
    if number == 42:
        log = (stack.log_dir / "status.log").read_text(errors="replace")
        assert log.count("a job state autotune does not know") >= 1


def connect(stack) -> Pipeline:
    return Pipeline(
        ledger=FirestoreLedger(stack.firestore_client(), stack.config.ledger_collection),
        service=VertexTuningService(stack.config.vertex_endpoint),
        publisher=PubSubBus(stack.publisher(), stack.config),
        catalog=ProjectCatalog(),
        project=stack.project,
        max_jobs=stack.config.max_concurrent_jobs,
    )


@pytest.mark.parametrize(
    ("share", "end"), [(0.0, EventType.JOB_CANCELLED), (1.0, EventType.JOB_SUCCEEDED)]
)
def test_cancel_is_asynchronous_and_the_ledger_follows_what_the_service_reports(
    stack, events, ledger, share, end
):
    control(stack, "config", {"cancellingSeconds": 4.0, "cancelEndsAnywayShare": share})
    uri = upload(stack, f"cancel-{int(share)}")
    events.wait_for(
        lambda r: r.event.subject == uri and r.event.type == EventType.JOB_RUNNING, timeout=WAIT
    )
    key = record_of(ledger, uri).idempotency_key
    assert cancel(connect(stack), key).value == "cancelled"
    record = wait_until(
        lambda: (r := record_of(ledger, uri)) and r.job_state == "JOB_STATE_CANCELLING" and r,
        "CANCELLING",
    )
    assert (
        record.state == LedgerState.RUNNING and key in ledger.slots().active
    )  # still holding the service's quota
    assert ends_once(events, uri) == end
    assert (
        record_of(ledger, uri).state
        == {
            EventType.JOB_CANCELLED: LedgerState.CANCELLED,
            EventType.JOB_SUCCEEDED: LedgerState.SUCCEEDED,
        }[end]
    )
