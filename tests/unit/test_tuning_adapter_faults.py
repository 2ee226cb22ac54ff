"""The adapter against the tuning emulator's faults, as the real service has them: deadlines on
every call, bounded retries honouring RetryInfo, job states beyond the client library's enum,
faults after a create, list lag, asynchronous cancel, per-region quota; and the ledger keeping a
bounded stats summary."""

import threading
import time

import msgspec
import pytest
from job_doubles import make_request

from autotune.adapters.catalog import ProjectCatalog
from autotune.adapters.tuning_service import VertexTuningService, retry_delay, retry_info_seconds
from autotune.jobs.job_spec import KEY_LABEL, build_job_spec
from autotune.jobs.lifecycle import JobSnapshot, LedgerState, apply_job_snapshot, new_record
from autotune.jobs.ports import ErrorKind, TuningServiceError
from autotune_local.tuning_emulator import MemoryStore, TuningEmulator, make_server

LINE = b'{"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "hello"}]}]}\n'


class Sleeps:
    def __init__(self):
        self.waited: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waited.append(seconds)


@pytest.fixture
def world():
    store = MemoryStore(
        {make_request(name=f"incoming/d{i}.jsonl").training.uri: LINE * 5 for i in range(4)}
    )
    service = TuningEmulator(store=store, quota=4, job_seconds=60)
    server = make_server(service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sleeps = Sleeps()
    adapter = VertexTuningService(
        f"http://127.0.0.1:{server.server_port}", call_timeout=1.0, sleep=sleeps
    )
    yield service, adapter, sleeps
    server.shutdown()
    server.server_close()


def spec(i: int = 0, region: str = "us-central1"):
    return build_job_spec(
        make_request(name=f"incoming/d{i}.jsonl", region=region),
        project="p",
        catalog=ProjectCatalog(),
    )


def test_a_503_with_retry_info_is_retried_after_the_delay_it_asks(world):
    service, adapter, sleeps = world
    job = adapter.create(spec().parent, spec().body)
    service.faults.next503 = 1
    assert adapter.get(job.name).name == job.name
    assert sleeps.waited == [1.0]  # the emulator's RetryInfo says 1s


def test_a_request_rate_429_on_every_call_is_retried_a_bounded_number_of_times(world):
    service, adapter, sleeps = world
    job = adapter.create(spec().parent, spec().body)
    service.faults.rateLimit429 = 1.0
    for call in (
        lambda: adapter.get(job.name),
        lambda: adapter.find_by_label(spec().parent, KEY_LABEL, "x"),
        lambda: adapter.cancel(job.name),
    ):
        with pytest.raises(TuningServiceError) as caught:
            call()
        assert caught.value.kind == ErrorKind.QUOTA and caught.value.retry_after == 1.0
    assert len(sleeps.waited) == 3 * (adapter.attempts - 1)
    with pytest.raises(TuningServiceError):
        adapter.create(spec(1).parent, spec(1).body)
    assert len(sleeps.waited) == 3 * (adapter.attempts - 1)  # create is never retried here


def test_retry_info_is_read_from_rest_and_grpc_details_and_a_long_one_is_not_waited_out():
    from google.protobuf import duration_pb2
    from google.rpc import error_details_pb2

    assert (
        retry_info_seconds(
            [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}]
        )
        == 2.5
    )
    grpc_detail = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(seconds=3, nanos=500_000_000)
    )
    assert retry_info_seconds([error_details_pb2.ErrorInfo(reason="X"), grpc_detail]) == 3.5
    assert retry_info_seconds([{"@type": "type.googleapis.com/google.rpc.ErrorInfo"}]) is None
    assert retry_delay(600.0, 1) is None
    delay = retry_delay(None, 1)
    assert delay is not None and 0.5 <= delay <= 1.0


def test_a_create_that_stalls_past_the_deadline_fails_transient_and_its_job_exists(world):
    service, adapter, _ = world
    service.faults.nextAfterCreateStall, service.faults.stallSeconds = 1, 3.0
    started = time.monotonic()
    with pytest.raises(TuningServiceError) as caught:
        adapter.create(spec().parent, spec().body)
    assert caught.value.kind == ErrorKind.TRANSIENT and time.monotonic() - started < 2.9
    assert (
        adapter.find_by_label(
            spec().parent, KEY_LABEL, make_request(name="incoming/d0.jsonl").idempotency_key
        )
        is not None
    )


@pytest.mark.parametrize(
    ("fault", "code"), [("nextAfterCreate500", 500), ("nextAfterCreate503", 503)]
)
def test_a_create_answering_5xx_after_making_its_job(world, fault, code):
    service, adapter, _ = world
    setattr(service.faults, fault, 1)
    with pytest.raises(TuningServiceError) as caught:
        adapter.create(spec().parent, spec().body)
    assert caught.value.kind == ErrorKind.TRANSIENT and caught.value.code == code
    assert len(service.jobs) == 1


def test_a_create_slower_than_the_deadline_makes_its_job_after_the_client_gave_up(world):
    service, adapter, _ = world
    service.faults.createDelaySeconds = 2.0
    with pytest.raises(TuningServiceError) as caught:
        adapter.create(spec().parent, spec().body)
    assert caught.value.kind == ErrorKind.TRANSIENT and not service.jobs
    deadline = time.monotonic() + 10
    while not service.jobs:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_list_lag_hides_a_new_job_for_a_while(world):
    service, adapter, _ = world
    service.faults.listLagSeconds = 1.5
    job = adapter.create(spec().parent, spec().body)
    key = make_request(name="incoming/d0.jsonl").idempotency_key
    assert adapter.find_by_label(spec().parent, KEY_LABEL, key) is None
    time.sleep(1.6)
    assert adapter.find_by_label(spec().parent, KEY_LABEL, key).name == job.name


@pytest.mark.parametrize(
    ("number", "state"),
    [(10, "JOB_STATE_UPDATING"), (11, "JOB_STATE_PARTIALLY_SUCCEEDED"), (42, "42")],
)
def test_job_states_beyond_the_first_ten_and_unknown_to_the_library(world, number, state):
    service, adapter, _ = world
    service.job_seconds = 0.4
    job = adapter.create(spec().parent, spec().body)
    service.job_seconds = 60
    service.jobs[job.name].seconds = 60  # RUNNING for a minute from now on
    service.jobs[job.name].created = time.time() - 30
    service.report_state = number
    seen = adapter.get(job.name)
    assert seen.state == state
    [listed] = adapter.jobs_with_label(
        spec().parent, KEY_LABEL, make_request(name="incoming/d0.jsonl").idempotency_key
    )
    assert listed.state == state


def test_cancel_passes_through_cancelling(world):
    service, adapter, _ = world
    service.cancelling_seconds = 1.0
    job = adapter.create(spec().parent, spec().body)
    adapter.cancel(job.name)
    assert adapter.get(job.name).state == "JOB_STATE_CANCELLING"
    adapter.cancel(job.name)  # a second cancel while it settles is no error
    time.sleep(1.1)
    assert adapter.get(job.name).state == "JOB_STATE_CANCELLED"


def test_a_share_of_cancelled_jobs_end_as_they_would_have(world):
    service, adapter, _ = world
    service.cancel_ends_anyway_share = 1.0
    service.job_seconds = 1.0
    job = adapter.create(spec().parent, spec().body)
    adapter.cancel(job.name)
    assert adapter.get(job.name).state == "JOB_STATE_CANCELLING"
    time.sleep(1.1)
    assert adapter.get(job.name).state == "JOB_STATE_SUCCEEDED"


def test_quota_counts_every_region_by_default_and_per_region_when_asked(world):
    service, adapter, _ = world
    service.quota = 1
    adapter.create(spec(0).parent, spec(0).body)
    with pytest.raises(TuningServiceError) as caught:
        adapter.create(spec(1, "europe-west4").parent, spec(1, "europe-west4").body)
    assert caught.value.kind == ErrorKind.QUOTA
    service.quota_scope = "region"
    assert adapter.create(spec(1, "europe-west4").parent, spec(1, "europe-west4").body).name


def test_a_2_mb_stats_payload_leaves_a_small_record_without_training_text():
    secret = "TRAINING-TEXT-" + "x" * 200
    stats = {
        "tuningDatasetExampleCount": "20000",
        "totalBillableTokenCount": "123456789",
        "totalTruncatedExampleCount": "7",
        "truncatedExampleIndices": [str(i) for i in range(7)],
        "droppedExampleReasons": [f"example {i} too long: {secret}" for i in range(2000)],
        "userInputTokenDistribution": {
            "sum": "9",
            "mean": 3.5,
            "buckets": [{"count": 1, "left": i, "right": i + 1} for i in range(5000)],
        },
        "userDatasetExamples": [{"role": "user", "parts": [{"text": secret}]} for _ in range(6000)],
    }
    assert len(msgspec.json.encode(stats)) > 2_000_000
    record = new_record(
        idempotency_key="k" * 40,
        content_key="c",
        dataset_uri="gs://b/d.jsonl",
        generation="1",
        now=_now(),
    )
    record = msgspec.structs.replace(
        record, state=LedgerState.RUNNING, job_name="j", job_state="JOB_STATE_RUNNING"
    )
    seen = apply_job_snapshot(
        record,
        JobSnapshot(name="j", state="JOB_STATE_SUCCEEDED", started=True, stats=stats),
        _now(),
    )
    assert seen is not None
    encoded = msgspec.json.encode(seen)
    assert len(encoded) < 64 * 1024 and b"TRAINING-TEXT" not in encoded
    assert seen.tuning_data_stats == {
        "tuningDatasetExampleCount": "20000",
        "totalBillableTokenCount": "123456789",
        "totalTruncatedExampleCount": "7",
        "userInputTokenDistribution": {"sum": "9", "mean": 3.5},
        "truncatedExampleIndexCount": 7,
        "droppedExampleCount": 2000,
    }


def _now():
    from datetime import UTC, datetime

    return datetime(2026, 12, 2, tzinfo=UTC)


def test_a_claim_outlasts_the_longest_lookup_and_create_of_a_live_submitter():
    """A take-over must not race a create that is still running: a submitter's slowest path (a
    lookup retried to the end, waiting the longest RetryInfo allowed, then a create that runs to
    its deadline) ends before its claim expires."""
    from autotune.adapters import tuning_service as adapter
    from autotune.jobs.decisions import CLAIM_SECONDS

    slowest = (
        adapter.CALL_ATTEMPTS * adapter.CALL_TIMEOUT_SECONDS
        + (adapter.CALL_ATTEMPTS - 1) * adapter.RETRY_MAX_SECONDS
    )
    slowest += adapter.CALL_TIMEOUT_SECONDS
    assert slowest < CLAIM_SECONDS
