"""The Vertex AI adapter (GAPIC REST client) against the tuning emulator in a thread: snapshots,
label lookup, and every error classified the way submit needs."""

import threading

import pytest
from job_doubles import make_request

from autotune.adapters.catalog import ProjectCatalog
from autotune.adapters.tuning_service import VertexTuningService
from autotune.jobs.job_spec import KEY_LABEL, build_job_spec
from autotune.jobs.ports import ErrorKind, TuningServiceError
from autotune_local import processes
from autotune_local.tuning_emulator import MemoryStore, TuningEmulator, make_server

REQUEST = make_request(bucket="bkt", name="incoming/data.jsonl")
LINE = b'{"contents": [{"role": "user", "parts": [{"text": "hi there"}]}, {"role": "model", "parts": [{"text": "hello"}]}]}\n'


@pytest.fixture
def emulator():
    service = TuningEmulator(
        store=MemoryStore({REQUEST.training.uri: LINE * 20}), quota=1, job_seconds=0.5
    )
    server = make_server(service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield service, VertexTuningService(f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    server.server_close()


def spec(name: str = "incoming/data.jsonl"):
    return build_job_spec(make_request(name, bucket="bkt"), project="p", catalog=ProjectCatalog())


def test_create_find_get(emulator):
    _, adapter = emulator
    job_spec = spec()
    assert adapter.find_by_label(job_spec.parent, KEY_LABEL, REQUEST.idempotency_key) is None
    created = adapter.create(job_spec.parent, job_spec.body)
    assert created.state == "JOB_STATE_QUEUED" and created.labels == {
        KEY_LABEL: REQUEST.idempotency_key
    }
    assert (
        adapter.find_by_label(job_spec.parent, KEY_LABEL, REQUEST.idempotency_key).name
        == created.name
    )
    import time

    deadline = time.monotonic() + 30
    while (seen := adapter.get(created.name)).state != "JOB_STATE_SUCCEEDED":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert seen.started and seen.tuned_model.endswith("@1") and seen.endpoint
    assert seen.stats["tuningDatasetExampleCount"] == "20"
    assert "truncatedExampleIndices" not in seen.stats  # empty lists are left out


@pytest.mark.parametrize(
    ("setup", "kind", "code", "message"),
    [
        ("quota", ErrorKind.QUOTA, 429, "Quota exceeded"),
        ("missing", ErrorKind.PERMANENT, 400, "does not exist"),
        ("fault500", ErrorKind.TRANSIENT, 500, "injected internal error"),
    ],
)
def test_errors_are_classified_with_the_services_own_message(emulator, setup, kind, code, message):
    service, adapter = emulator
    job_spec = spec()
    if setup == "quota":
        adapter.create(job_spec.parent, job_spec.body)
    elif setup == "missing":
        job_spec = spec("incoming/missing.jsonl")
    else:
        service.faults.next500 = 1
    with pytest.raises(TuningServiceError) as caught:
        adapter.create(job_spec.parent, job_spec.body)
    assert caught.value.kind == kind and caught.value.code == code
    assert message in caught.value.message
    assert "http://" not in caught.value.message  # the service's words, not the client's URL prefix


def test_unknown_job_and_unreachable_service(emulator):
    _, adapter = emulator
    with pytest.raises(TuningServiceError) as caught:
        adapter.get("projects/p/locations/us-central1/tuningJobs/1")
    assert caught.value.kind == ErrorKind.NOT_FOUND
    nobody = VertexTuningService(f"http://127.0.0.1:{processes.free_port()}")
    with pytest.raises(TuningServiceError) as caught:
        nobody.get("projects/p/locations/us-central1/tuningJobs/1")
    assert caught.value.kind == ErrorKind.TRANSIENT


def test_a_refused_label_filter_falls_back_to_matching_labels_client_side(emulator):
    """Should Vertex AI refuse the `labels.KEY="VALUE"` filter (400), adoption still works."""
    from google.api_core import exceptions as api_exceptions

    _, adapter = emulator
    job_spec = spec()
    created = adapter.create(job_spec.parent, job_spec.body)
    real = adapter._client("us-central1")
    seen_filters = []

    class FilterRefusingClient:
        def list_tuning_jobs(self, request, timeout):
            assert timeout == adapter.call_timeout  # a deadline on every page of every list
            seen_filters.append(request.get("filter"))
            if request.get("filter"):
                raise api_exceptions.BadRequest("Unsupported filter")
            return real.list_tuning_jobs(request=request, timeout=timeout)

    adapter._clients[adapter.endpoint] = FilterRefusingClient()
    assert (
        adapter.find_by_label(job_spec.parent, KEY_LABEL, REQUEST.idempotency_key).name
        == created.name
    )
    assert adapter.find_by_label(job_spec.parent, KEY_LABEL, "0" * 40) is None
    assert seen_filters == [
        f'labels.{KEY_LABEL}="{REQUEST.idempotency_key}"',
        None,
        f'labels.{KEY_LABEL}="{"0" * 40}"',
        None,
    ]
