"""The submit/status Pipeline wired to the real services: Firestore ledger, Vertex AI, Pub/Sub.

One place for this wiring, shared by functions/submit, functions/status and the CLI.
"""

from __future__ import annotations

import os

from autotune.adapters.catalog import ProjectCatalog
from autotune.config import PipelineConfig
from autotune.jobs.decisions import CREATE_SETTLE_SECONDS
from autotune.jobs.pipeline import Pipeline

# Overrides for fault tests and the local stack; production keeps the defaults (the deadline of
# each tuning service call, and the pause after a create without an answer).
CALL_TIMEOUT_VARIABLE = "AUTOTUNE_TUNING_CALL_TIMEOUT_SECONDS"
CREATE_SETTLE_VARIABLE = "AUTOTUNE_TUNING_CREATE_SETTLE_SECONDS"


def connect_pipeline(config: PipelineConfig) -> Pipeline:
    from google.cloud import pubsub_v1, storage

    from autotune.adapters.bus import PubSubBus
    from autotune.adapters.ledger import FirestoreLedger
    from autotune.adapters.storage import GcsDatasetStore
    from autotune.adapters.tuning_service import (
        CALL_TIMEOUT_SECONDS,
        VertexTuningService,
    )

    call_timeout = float(os.environ.get(CALL_TIMEOUT_VARIABLE, CALL_TIMEOUT_SECONDS))
    create_settle = float(os.environ.get(CREATE_SETTLE_VARIABLE, CREATE_SETTLE_SECONDS))

    return Pipeline(
        ledger=FirestoreLedger.from_config(config.project, config.ledger_collection),
        service=VertexTuningService(config.vertex_endpoint, call_timeout=call_timeout),
        publisher=PubSubBus(pubsub_v1.PublisherClient(), config),
        catalog=ProjectCatalog(),
        project=config.project,
        max_jobs=config.max_concurrent_jobs,
        service_account=config.tuning_service_account,
        dataset_bucket=config.bucket,
        create_settle_seconds=create_settle,
        datasets=GcsDatasetStore(storage.Client(project=config.project), config.bucket),
        reports_prefix=config.reports_prefix,
    )
