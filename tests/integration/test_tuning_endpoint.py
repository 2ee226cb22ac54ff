"""`autotune up --tuning-endpoint URL`: the local pipeline against another server that speaks the
v1 REST tuning API. Here that server is a second tuning emulator run by the test itself, in a
thread, reading datasets from the stack's own storage: every job lands on it, the stack starts no
emulator of its own, and a dataset runs end to end as usual."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sample_data import conversation_dataset as dataset
from sample_data import unique

from autotune.events import EventType
from autotune_local.tuning_emulator import FakeGcsStore, TuningEmulator, make_server

pytestmark = pytest.mark.integration


class StoreOnceKnown:
    """The stack's storage endpoint is known only after the stack started."""

    def __init__(self) -> None:
        self.store: FakeGcsStore | None = None

    def exists(self, uri: str) -> bool:
        return self._known().exists(uri)

    def lines(self, uri: str) -> Iterator[bytes]:
        return self._known().lines(uri)

    def _known(self) -> FakeGcsStore:
        assert self.store is not None, (
            "the tuning server was asked for data before the stack started"
        )
        return self.store


def test_the_stack_runs_against_another_tuning_server(make_local_stack):
    store = StoreOnceKnown()
    other = TuningEmulator(store=store, quota=2, job_seconds=3.0)
    server = make_server(other)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}"
        stack = make_local_stack(tuning_endpoint=endpoint, tick_seconds=1.0)
        store.store = FakeGcsStore(f"http://127.0.0.1:{stack.ports['storage']}")
        assert stack.config.vertex_endpoint == endpoint and "tuning" not in stack.ports
        assert "tuning" not in {proc.name for proc in stack.processes}
        listener = stack.listen_events()
        name = f"incoming/{unique('other-server')}.jsonl"
        stack.upload(dataset(name), name)
        uri = f"gs://{stack.bucket}/{name}"
        ended = listener.wait_for(
            lambda r: (
                r.event.subject == uri
                and r.event.type in {EventType.JOB_SUCCEEDED, EventType.JOB_FAILED}
            ),
            timeout=240,
        )
        listener.close()
        assert ended.event.type == EventType.JOB_SUCCEEDED
        assert [job.name for job in other.jobs.values()] == [ended.event.payload.job_name]
        stack.stop()
    finally:
        server.shutdown()
        server.server_close()
