"""The submit/status Pipeline wired to the real services: Firestore ledger, Vertex AI, Pub/Sub.

One place for this wiring, shared by functions/submit, functions/status and the CLI.
"""

from __future__ import annotations

from autotune.config import PipelineConfig
from autotune.submission import Pipeline, ProjectCatalog


def connect_pipeline(config: PipelineConfig) -> Pipeline:
    from google.cloud import pubsub_v1, storage

    from autotune.adapters.bus import PubSubBus
    from autotune.adapters.ledger import FirestoreLedger
    from autotune.adapters.storage import GcsDatasetStore
    from autotune.adapters.tuning_service import VertexTuningService

    return Pipeline(
        ledger=FirestoreLedger.from_config(config.project, config.ledger_collection),
        service=VertexTuningService(config.vertex_endpoint),
        publisher=PubSubBus(pubsub_v1.PublisherClient(), config),
        catalog=ProjectCatalog(),
        project=config.project,
        max_jobs=config.max_concurrent_jobs,
        service_account=config.tuning_service_account,
        dataset_bucket=config.bucket,
        datasets=GcsDatasetStore(storage.Client(project=config.project), config.bucket),
        reports_prefix=config.reports_prefix,
    )
