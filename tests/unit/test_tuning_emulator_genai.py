"""google-genai's client.tunings, unchanged, against the tuning emulator: it speaks Vertex AI's
v1beta1 routes, and needs nothing but a token credential (a fake one here)."""

import threading
from http.server import ThreadingHTTPServer

import pytest
from google import genai
from google.genai import types
from google.oauth2.credentials import Credentials

from autotune_local.tuning_emulator import MemoryStore, TuningEmulator, make_handler

DATA = "gs://bkt/incoming/data.jsonl"
LINE = b'{"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "hello"}]}]}\n'


@pytest.fixture
def emulator():
    service = TuningEmulator(store=MemoryStore({DATA: LINE * 5}), quota=2, job_seconds=60)
    paths: list[str] = []

    # A class made per emulator at run time: mypy takes no call as a base class.
    class Recording(make_handler(service)):  # type: ignore[misc]
        def _dispatch(self, method):
            paths.append(f"{method} {self.path.split('?')[0]}")
            super()._dispatch(method)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = genai.Client(
        vertexai=True,
        project="p",
        location="us-central1",
        credentials=Credentials(token="fake-token"),
        http_options=types.HttpOptions(base_url=f"http://127.0.0.1:{server.server_port}/"),
    )
    yield service, client, paths
    server.shutdown()
    server.server_close()


@pytest.mark.filterwarnings(
    "ignore::UserWarning"
)  # "the SDK's tuning implementation is experimental"
def test_tune_get_list_cancel_through_client_tunings(emulator):
    service, client, paths = emulator
    job = client.tunings.tune(
        base_model="gemini-2.5-flash",
        training_dataset=types.TuningDataset(gcs_uri=DATA),
        config=types.CreateTuningJobConfig(
            epoch_count=2, tuned_model_display_name="genai-run", labels={"team": "a"}
        ),
    )
    assert job.state == types.JobState.JOB_STATE_QUEUED and job.labels == {"team": "a"}
    stored = service.jobs[job.name].body
    assert (
        stored["supervisedTuningSpec"]["hyperParameters"]["epochCount"] == "2"
        and stored["tunedModelDisplayName"] == "genai-run"
    )
    assert client.tunings.get(name=job.name).name == job.name
    assert [listed.name for listed in client.tunings.list()] == [job.name]
    client.tunings.cancel(name=job.name)
    assert client.tunings.get(name=job.name).state == types.JobState.JOB_STATE_CANCELLED
    assert all(
        path.split()[1].startswith("/v1beta1/projects/p/locations/us-central1/tuningJobs")
        for path in paths
    ), paths
