"""The interfaces the job orchestration sees: the ledger, the tuning service, the event
publisher, the dataset bucket and the model catalog. Adapters implement them for the Google
services (autotune.adapters), tests with in-memory doubles."""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from autotune.jobs.documents import Change, ClaimView, Slots
from autotune.jobs.lifecycle import JobSnapshot, LedgerRecord, LedgerState


class Ledger(Protocol):
    def claim(
        self, key: str, content_key: str, decide: Callable[[ClaimView], Change]
    ) -> Change: ...

    def update(
        self, key: str, decide: Callable[[LedgerRecord, Slots], Change | None]
    ) -> Change | None:
        """Run `decide` on the record and the slots in one transaction; write what it returns. A
        missing record is left missing: `decide` is not run, the answer is None."""

    def update_or_absent(
        self, key: str, decide: Callable[[LedgerRecord | None, Slots], Change | None]
    ) -> Change | None:
        """As `update`, except that a missing record is handed to `decide` as None (a slot whose
        record is gone is released this way)."""

    def get(self, key: str) -> LedgerRecord | None: ...

    def records(self, states: Collection[LedgerState] | None = None) -> list[LedgerRecord]: ...

    def with_outbox(self) -> list[LedgerRecord]: ...

    def clear_outbox(self, key: str, event_ids: Collection[str]) -> None: ...

    def slots(self) -> Slots: ...


class UnwritableRecord(Exception):
    """The ledger refused to write a record for what it holds (e.g. over Firestore's 1 MiB entity
    limit): retrying can never help; the status tick quarantines it."""


class ErrorKind(enum.StrEnum):
    QUOTA = "quota"  # 429 RESOURCE_EXHAUSTED: wait in the queue
    PERMANENT = "permanent"  # 400 and the like: the request will never work
    TRANSIENT = "transient"  # 5xx, timeouts: try again later
    NOT_FOUND = "not_found"


class TuningServiceError(Exception):
    def __init__(self, kind: ErrorKind, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.code = kind, message, code
        self.retry_after: float | None = None  # seconds, from the error's google.rpc.RetryInfo


class TuningService(Protocol):
    def find_by_label(self, parent: str, key: str, value: str) -> JobSnapshot | None: ...

    def jobs_with_label(self, parent: str, key: str, value: str) -> list[JobSnapshot]: ...

    def create(self, parent: str, job: Mapping[str, Any]) -> JobSnapshot: ...

    def get(self, name: str) -> JobSnapshot: ...

    def cancel(self, name: str) -> None: ...


class ValidatedDatasets(Protocol):
    """The dataset bucket as submit re-checks it (autotune.jobs.request_checks)."""

    def read_report(self, name: str) -> bytes | None: ...

    def generation_of(self, name: str) -> str | None: ...


class ModelCatalog(Protocol):
    """The catalog facts submit needs (autotune.catalog provides them)."""

    def regions(self, model: str) -> Collection[str] | None: ...  # None: unknown model

    def adapter_sizes(self, model: str) -> Collection[int]: ...

    def default_adapter_size(self, model: str) -> int | None: ...

    def adapter_size_enum(self, size: int) -> str: ...
