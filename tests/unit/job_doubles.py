"""In-memory stand-ins for the ledger, the tuning service and the event bus, for the submit and
status core. The ledger serialises decisions with a lock, as Firestore transactions do."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from autotune.events import TuningEvent
from autotune.jobs.documents import Change, ClaimView, Slots
from autotune.jobs.lifecycle import JobSnapshot, LedgerRecord, LedgerState
from autotune.jobs.pipeline import Pipeline
from autotune.jobs.ports import ErrorKind, TuningServiceError
from autotune.jobs.request import (
    DatasetRef,
    TuningRequest,
    content_key,
    idempotency_key,
)
from autotune.settings import TuningSettings


class MemoryLedger:
    def __init__(self) -> None:
        self.docs: dict[str, LedgerRecord] = {}
        self.content: dict[str, str] = {}
        self.slot_doc = Slots()
        self.lock = threading.Lock()
        self.max_active_seen = 0
        self.turns: dict[str, datetime] = {}

    def claim(self, key: str, content_key: str, decide: Callable[[ClaimView], Change]) -> Change:
        with self.lock:
            owner_key = self.content.get(content_key)
            view = ClaimView(
                record=self.docs.get(key),
                content_owner=self.docs.get(owner_key or ""),
                slots=self.slot_doc,
            )
            change = decide(view)
            self._write(key, change)
            if change.content_owner_key is not None:
                self.content[content_key] = change.content_owner_key
            return change

    def update(
        self, key: str, decide: Callable[[LedgerRecord, Slots], Change | None]
    ) -> Change | None:
        return self.update_or_absent(
            key, lambda record, slots: None if record is None else decide(record, slots)
        )

    def update_or_absent(
        self, key: str, decide: Callable[[LedgerRecord | None, Slots], Change | None]
    ) -> Change | None:
        with self.lock:
            record = self.docs.get(key)
            change = decide(record, self.slot_doc)
            if change is not None:
                self._write(key, change)
            return change

    def _write(self, key: str, change: Change) -> None:
        if change.record is not None:
            self.docs[key] = change.record
        if change.slots is not None:
            self.slot_doc = change.slots
            self.max_active_seen = max(self.max_active_seen, len(change.slots.active))

    def get(self, key: str) -> LedgerRecord | None:
        return self.docs.get(key)

    def records_list(self) -> list[LedgerRecord]:
        return list(self.docs.values())

    def records(self, states: Collection[LedgerState] | None = None) -> list[LedgerRecord]:
        with self.lock:
            found = [r for r in self.docs.values() if states is None or r.state in states]
        return sorted(found, key=lambda r: (r.created_at, r.idempotency_key))

    def with_outbox(self) -> list[LedgerRecord]:
        with self.lock:
            return [r for r in self.docs.values() if r.outbox]

    def clear_outbox(self, key: str, event_ids: Collection[str]) -> None:
        with self.lock:
            record = self.docs.get(key)
            if record is None:  # as Firestore: nothing to clear is no error
                return
            left = tuple(event for event in record.outbox if event.id not in set(event_ids))
            self.docs[key] = msgspec.structs.replace(record, outbox=left)

    def slots(self) -> Slots:
        return self.slot_doc

    def report_uris_since(self, since: str) -> set[str]:
        with self.lock:
            return {
                r.report_uri for r in self.docs.values() if r.report_uri and r.created_at >= since
            }

    def started_at(self, now: datetime) -> datetime:
        # A ledger as old as the tests' uploads unless a test says it began later (a restart).
        return self.__dict__.setdefault("started", datetime(2000, 1, 1, tzinfo=UTC))

    def intake_failures(self) -> dict:
        return dict(self.__dict__.get("failures", {}))

    def record_intake_failure(self, upload: str, error: str, now: datetime):
        from autotune.intake.reconciliation import IntakeFailure

        failures = self.__dict__.setdefault("failures", {})
        previous = failures.get(upload)
        times = previous.times + 1 if previous is not None and previous.error == error else 1
        failures[upload] = IntakeFailure(error=error, times=times, at=now)
        return failures[upload]

    def take_turn(self, name: str, now: datetime, every_seconds: float) -> bool:
        with self.lock:
            if self.turns.get(name, now) > now:
                return False
            self.turns[name] = now + timedelta(seconds=every_seconds)
            return True


class FakeTuningService:
    """Jobs in a dict; a test moves them with `finish`, and queues errors with `fail_next`."""

    def __init__(self, quota: int = 100) -> None:
        self.jobs: dict[str, JobSnapshot] = {}
        self.created: list[tuple[str, Mapping[str, Any]]] = []
        self.cancelled: list[str] = []
        self.errors: list[TuningServiceError] = []
        self.lookup_errors: list[TuningServiceError] = []  # raised by the label lookups
        self.answers_lost = 0  # creates that make their job and then raise a transient error
        self.hidden_from_lookup: set[str] = (
            set()
        )  # jobs a label lookup does not show yet (list lag)
        self.quota = quota
        # One-shot hooks for tests that make something happen meanwhile (another submitter, a
        # status tick): the next label lookup answers, with the jobs as they were, only after
        # `after_next_lookup` ran; `before_next_create` runs as the next create is on its way.
        self.after_next_lookup: Callable[[], object] | None = None
        self.before_next_create: Callable[[], object] | None = None
        self.lock = threading.Lock()
        self.ids = itertools.count(1)

    def fail_next(self, kind: ErrorKind, message: str = "boom", code: int | None = None) -> None:
        self.errors.append(TuningServiceError(kind, message, code))

    def _maybe_fail(self) -> None:
        if self.errors:
            raise self.errors.pop(0)

    def find_by_label(self, parent: str, key: str, value: str) -> JobSnapshot | None:
        found = self.jobs_with_label(parent, key, value)
        return found[0] if found else None

    def jobs_with_label(self, parent: str, key: str, value: str) -> list[JobSnapshot]:
        with self.lock:
            if self.lookup_errors:
                raise self.lookup_errors.pop(0)
            found = [
                job
                for job in self.jobs.values()
                if job.name.startswith(parent)
                and job.labels.get(key) == value
                and job.name not in self.hidden_from_lookup
            ]
        _run_once(self, "after_next_lookup")
        return found

    def create(self, parent: str, job: Mapping[str, Any]) -> JobSnapshot:
        _run_once(self, "before_next_create")
        with self.lock:
            self._maybe_fail()
            active = sum(
                1
                for j in self.jobs.values()
                if j.state in {"JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING"}
            )
            if active >= self.quota:
                raise TuningServiceError(ErrorKind.QUOTA, "quota exceeded", 429)
            name = f"{parent}/tuningJobs/{next(self.ids)}"
            snap = JobSnapshot(
                name=name, state="JOB_STATE_PENDING", labels=dict(job.get("labels", {}))
            )
            self.jobs[name] = snap
            self.created.append((parent, job))
            if self.answers_lost > 0:
                self.answers_lost -= 1
                raise TuningServiceError(
                    ErrorKind.TRANSIENT, "ReadTimeout: the answer to create was lost"
                )
            return snap

    def get(self, name: str) -> JobSnapshot:
        with self.lock:
            self._maybe_fail()
            if name not in self.jobs:
                raise TuningServiceError(ErrorKind.NOT_FOUND, f"{name} not found", 404)
            return self.jobs[name]

    def cancel(self, name: str) -> None:
        with self.lock:
            self.cancelled.append(name)
            self.jobs[name] = msgspec.structs.replace(
                self.jobs[name], state="JOB_STATE_CANCELLED", error="CANCELED"
            )

    def set_state(self, name: str, state: str, **fields: Any) -> None:
        with self.lock:
            started = state in {"JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"} or fields.pop(
                "started", False
            )
            self.jobs[name] = msgspec.structs.replace(
                self.jobs[name], state=state, started=started, **fields
            )

    def succeed(self, name: str) -> None:
        number = name.rsplit("/", 1)[1]
        self.set_state(
            name,
            "JOB_STATE_SUCCEEDED",
            tuned_model=f"projects/p/locations/us-central1/models/{number}@1",
            endpoint=f"projects/p/locations/us-central1/endpoints/{number}",
            stats={"tuningDatasetExampleCount": "3", "totalBillableTokenCount": "90"},
        )


def _run_once(service: FakeTuningService, hook_name: str) -> None:
    hook = getattr(service, hook_name)
    setattr(service, hook_name, None)
    if hook is not None:
        hook()


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[TuningEvent] = []
        self.lock = threading.Lock()

    def publish_event(self, event: TuningEvent) -> None:
        with self.lock:
            self.events.append(event)

    def types(self) -> list[str]:
        return [e.type.value.rsplit(".", 1)[1] for e in self.events]


class StubCatalog:
    def regions(self, model: str) -> Collection[str] | None:
        return {"us-central1", "europe-west4"} if model.startswith("gemini") else None

    def adapter_sizes(self, model: str) -> Collection[int]:
        return (1, 4) if model == "gemini-1.5-pro-002" else (1, 2, 4, 8, 16)

    def default_adapter_size(self, model: str) -> int | None:
        return 4 if model == "gemini-1.5-pro-002" else None

    def adapter_size_enum(self, size: int) -> str:
        return {
            1: "ADAPTER_SIZE_ONE",
            2: "ADAPTER_SIZE_TWO",
            4: "ADAPTER_SIZE_FOUR",
            8: "ADAPTER_SIZE_EIGHT",
            16: "ADAPTER_SIZE_SIXTEEN",
        }[size]


class SteppingClock:
    """now() that a test moves forward by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_request(
    name: str = "incoming/data.jsonl",
    *,
    generation: str = "1764000000000001",
    sha256: str = "a" * 64,
    bucket: str = "bkt",
    model: str = "gemini-2.5-flash",
    region: str = "us-central1",
    epochs: int | str = 3,
    adapter_size: int | str | None = None,
    force: bool = False,
) -> TuningRequest:
    settings = TuningSettings(model=model, epochs=epochs, adapter_size=adapter_size, region=region)
    content = content_key(sha256, None, settings)
    return TuningRequest(
        idempotency_key=idempotency_key(bucket, name, generation, content),
        content_key=content,
        training=DatasetRef(
            bucket=bucket, object=name, generation=generation, sha256=sha256, size=100
        ),
        settings=settings,
        report_uri=f"gs://{bucket}/reports/{name}/{generation}.json",
        force=force,
        example_count=3,
        estimated_billable_tokens=90,
        requested_at="2026-11-25T12:00:00Z",
    )


def memory_pipeline(
    ledger: MemoryLedger | None = None, **overrides: Any
) -> tuple[Pipeline, MemoryLedger, FakeTuningService, RecordingPublisher, SteppingClock]:
    """The job pipeline over the in-memory doubles: one slot, 60 s claims, project "p"."""
    ledger = ledger if ledger is not None else MemoryLedger()
    service, bus, clock = FakeTuningService(), RecordingPublisher(), SteppingClock()
    settings: dict[str, Any] = {"project": "p", "max_jobs": 1, "claim_seconds": 60, **overrides}
    pipeline = Pipeline(
        ledger=ledger,
        service=service,
        publisher=bus,
        catalog=StubCatalog(),
        clock=clock,
        **settings,
    )
    return pipeline, ledger, service, bus, clock
