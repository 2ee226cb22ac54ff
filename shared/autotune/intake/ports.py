"""The intake's ports: what the validate function (and the status function's reconciliation) hand
the core of autotune.intake.upload, so that it reads no module-level clients and unit tests can
hand it in-memory ones. Apart from the core because every caller builds an IntakeDeps, while only
the core needs what it does with them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from autotune.intake.objects import DatasetStore, EventBus
from autotune.settings import TuningSettings

if TYPE_CHECKING:
    from autotune.validation import DatasetSource, MediaInspector, ValidationReport


class DatasetValidator(Protocol):
    """autotune.validation.validate_dataset, as the intake calls it. Handed in, not imported: the
    status function's reconciliation imports this module without needing the validator until a
    lost upload turns up."""

    def __call__(
        self,
        training: DatasetSource,
        *,
        settings: TuningSettings,
        validation: DatasetSource | None = None,
        media: MediaInspector | None = None,
        dataset_bucket: str | None = None,
        allowed_media_buckets: Collection[str] = (),
        prices: Mapping[str, float] | None = None,
    ) -> ValidationReport: ...


class SourceFactory(Protocol):
    """autotune.validation.DatasetSource, as the intake builds one per file."""

    def __call__(
        self, *, name: str, chunks: Iterable[bytes], size: int | None = None
    ) -> DatasetSource: ...


@dataclass(frozen=True)
class IntakeDeps:
    store: DatasetStore
    bus: EventBus
    validate_dataset: DatasetValidator
    dataset_source: SourceFactory
    media: MediaInspector | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
