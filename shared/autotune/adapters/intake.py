"""The validate core (dataset_intake) wired to Cloud Storage and Pub/Sub.

One place for this wiring, shared by functions/validate and by the status function's
reconciliation pass, which takes lost uploads in with the very same code.
"""

from __future__ import annotations

from autotune.adapters.storage import GcsDatasetStore
from autotune.config import PipelineConfig
from autotune.intake.ports import IntakeDeps


def connect_intake(config: PipelineConfig) -> tuple[IntakeDeps, GcsDatasetStore]:
    """The intake's dependencies, and the dataset bucket (which also lists its objects)."""
    from google.cloud import pubsub_v1, storage

    from autotune.adapters.bus import PubSubBus
    from autotune.adapters.media import GcsMediaInspector
    from autotune.validation import DatasetSource, validate_dataset

    client = storage.Client(project=config.project)
    store = GcsDatasetStore(client, config.bucket)
    deps = IntakeDeps(
        store=store,
        bus=PubSubBus(pubsub_v1.PublisherClient(), config),
        validate_dataset=validate_dataset,
        dataset_source=DatasetSource,
        media=GcsMediaInspector(client),
    )
    return deps, store
