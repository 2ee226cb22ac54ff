"""The submit/status Pipeline wired to the real services: Firestore ledger, Vertex AI, Pub/Sub,
Cloud Storage.

The one place this wiring is done, used by functions/submit, functions/status and the CLI. By
default each client library finds its service through the process environment, as in a deployed
function; a tool that talks to a local stack from outside hands in clients bound to that stack.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from autotune.config import PipelineConfig
from autotune.jobs.decisions import CREATE_SETTLE_SECONDS
from autotune.jobs.pipeline import Pipeline

if TYPE_CHECKING:
    from google.cloud import firestore, pubsub_v1, storage

# Overrides for fault tests and the local stack; production keeps the defaults (the deadline of
# each tuning service call, and the pause after a create without an answer).
CALL_TIMEOUT_VARIABLE = "AUTOTUNE_TUNING_CALL_TIMEOUT_SECONDS"
CREATE_SETTLE_VARIABLE = "AUTOTUNE_TUNING_CREATE_SETTLE_SECONDS"


@dataclass(frozen=True)
class GoogleClients:
    """The client libraries a pipeline talks through."""

    firestore: firestore.Client
    publisher: pubsub_v1.PublisherClient
    storage: storage.Client

    @classmethod
    def from_environment(cls, project: str) -> GoogleClients:
        from google.cloud import firestore, pubsub_v1, storage

        return cls(
            firestore.Client(project=project),
            pubsub_v1.PublisherClient(),
            storage.Client(project=project),
        )


def connect_pipeline(
    config: PipelineConfig,
    *,
    clients: GoogleClients | None = None,
    environ: Mapping[str, str] | None = None,
) -> Pipeline:
    """`environ`: where the two overrides above are read (default: the process environment)."""
    from autotune.adapters.bus import PubSubBus
    from autotune.adapters.catalog import ProjectCatalog
    from autotune.adapters.ledger import FirestoreLedger
    from autotune.adapters.storage import GcsDatasetStore
    from autotune.adapters.tuning_service import (
        CALL_TIMEOUT_SECONDS,
        VertexTuningService,
    )

    env = os.environ if environ is None else environ
    clients = clients or GoogleClients.from_environment(config.project)
    call_timeout = float(env.get(CALL_TIMEOUT_VARIABLE, CALL_TIMEOUT_SECONDS))
    create_settle = float(env.get(CREATE_SETTLE_VARIABLE, CREATE_SETTLE_SECONDS))

    return Pipeline(
        ledger=FirestoreLedger(clients.firestore, config.ledger_collection),
        service=VertexTuningService(config.vertex_endpoint, call_timeout=call_timeout),
        publisher=PubSubBus(clients.publisher, config),
        catalog=ProjectCatalog(),
        project=config.project,
        max_jobs=config.max_concurrent_jobs,
        service_account=config.tuning_service_account,
        dataset_bucket=config.bucket,
        create_settle_seconds=create_settle,
        datasets=GcsDatasetStore(clients.storage, config.bucket),
        reports_prefix=config.reports_prefix,
    )
