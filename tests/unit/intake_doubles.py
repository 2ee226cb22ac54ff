"""In-memory stand-ins for the dataset bucket and Pub/Sub, for the validate core and reconciliation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from autotune.events import TuningEvent
from autotune.intake.objects import REPORT_VALID_METADATA, ObjectGone, StoredObject
from autotune.intake.reconciliation import ListedObject
from autotune.jobs.request import TuningRequest, decode_request, encode_request

BUCKET = "data-bucket"
NOW = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


class MemoryStore:
    """Objects and reports of one bucket; `now` stamps each write's `updated` time (tests move it)."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[StoredObject, bytes]] = {}
        self.reports: dict[str, bytes] = {}
        self.report_valid: dict[str, bool] = {}
        self.pages: dict[str, bytes] = {}
        self.updated: dict[str, datetime] = {}
        self.chunks_read = 0
        self.effects: list[str] = []
        self.now = NOW
        self._generation = 1000

    def put(
        self, name: str, data: bytes, metadata: dict | None = None, content_encoding: str = ""
    ) -> StoredObject:
        self._generation += 1
        obj = StoredObject(
            bucket=BUCKET,
            name=name,
            generation=str(self._generation),
            size=len(data),
            metadata=metadata or {},
            content_encoding=content_encoding,
        )
        self.objects[name] = (obj, data)
        self.updated[name] = self.now
        return obj

    def stat(self, name: str) -> StoredObject | None:
        found = self.objects.get(name)
        return found[0] if found else None

    def _data(self, name: str, generation: str) -> bytes:
        found = self.objects.get(name)
        if not found or found[0].generation != generation:
            raise ObjectGone(f"{name}#{generation}")
        return found[1]

    def read_chunks(self, name: str, generation: str) -> Iterator[bytes]:
        data = self._data(name, generation)
        for start in range(0, len(data), 7):  # odd chunk size: lines straddle chunks
            self.chunks_read += 1
            yield data[start : start + 7]

    def read_bytes(self, name: str, generation: str) -> bytes:
        return self._data(name, generation)

    def pin(self, name: str, generation: str, pinned_name: str) -> StoredObject:
        data = self._data(name, generation)
        existing = self.objects.get(pinned_name)
        if existing is not None and existing[1] == data:
            return existing[0]
        self.effects.append(f"pin {pinned_name}")
        source = self.objects[name][0]
        self._generation += 1
        copy = StoredObject(
            bucket=BUCKET,
            name=pinned_name,
            generation=str(self._generation),
            size=len(data),
            content_encoding=source.content_encoding,
        )
        self.objects[pinned_name] = (copy, data)
        self.updated[pinned_name] = self.now
        return copy

    def write_split_file(self, name: str, data: bytes) -> StoredObject:
        existing = self.objects.get(name)
        if existing is not None and existing[1] == data:
            return existing[0]
        self.effects.append(f"split {name}")
        return self.put(name, data)

    def write_report(self, name: str, data: bytes, *, valid: bool) -> None:
        self.effects.append(f"report {name}")
        self.reports[name] = data
        self.report_valid[name] = valid
        self.updated[name] = self.now

    def write_html_report(self, name: str, data: bytes) -> None:
        self.effects.append(f"page {name}")
        self.pages[name] = data
        self.updated[name] = self.now

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        for name, (obj, _) in sorted(self.objects.items()):
            if name.startswith(prefix):
                yield ListedObject(obj, self.updated[name])
        for name, valid in sorted(self.report_valid.items()):
            if name.startswith(prefix):
                metadata = {REPORT_VALID_METADATA: "true" if valid else "false"}
                yield ListedObject(
                    StoredObject(bucket=BUCKET, name=name, generation="1", metadata=metadata),
                    self.updated[name],
                )
        for name in sorted(self.pages):  # listed like any object: no verdict metadata
            if name.startswith(prefix):
                yield ListedObject(
                    StoredObject(bucket=BUCKET, name=name, generation="1"), self.updated[name]
                )


class MemoryBus:
    def __init__(self, effects: list[str], fail_requests: bool = False) -> None:
        self.events: list[TuningEvent] = []
        self.requests: list[TuningRequest] = []
        self.effects = effects
        self.fail_requests = fail_requests

    def publish_request(self, request: TuningRequest) -> None:
        if self.fail_requests:
            raise ConnectionError("pubsub unavailable")
        # Round-trip: what submit will decode.
        self.requests.append(decode_request(encode_request(request)))
        self.effects.append("request")

    def publish_event(self, event: TuningEvent) -> None:
        self.events.append(event)
        self.effects.append(f"event {event.type.value}")
