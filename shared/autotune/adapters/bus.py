"""Pub/Sub through google-cloud-pubsub: TuningEvents on tuning-events, TuningRequests on tuning-requests.

Each publish waits until Pub/Sub has the message, so a caller that returns normally has
published; an error propagates, the function fails, and its trigger delivers the work again.
"""

from __future__ import annotations

from google.api_core import gapic_v1
from google.cloud import pubsub_v1

from autotune.config import PipelineConfig
from autotune.events import TuningEvent, to_pubsub_message
from autotune.jobs.request import SCHEMA_VERSION, TuningRequest, encode_request

PUBLISH_TIMEOUT_SECONDS = 60


class PubSubBus:
    def __init__(self, publisher: pubsub_v1.PublisherClient, config: PipelineConfig) -> None:
        self._publisher = publisher
        self._events_topic = config.topic_path(config.events_topic)
        self._requests_topic = config.topic_path(config.requests_topic)

    def publish_event(self, event: TuningEvent) -> str:
        data, attributes = to_pubsub_message(event)
        return self._publish(self._events_topic, data, attributes)

    def publish_request(self, request: TuningRequest) -> str:
        attributes = {
            "schema_version": str(SCHEMA_VERSION),
            "idempotency_key": request.idempotency_key,
            "dataset_uri": request.dataset_uri,
        }
        return self._publish(self._requests_topic, encode_request(request), attributes)

    def _publish(self, topic: str, data: bytes, attributes: dict[str, str]) -> str:
        # retry and timeout are the library's defaults, named so that no attribute can be
        # taken for one of them.
        future = self._publisher.publish(
            topic,
            data,
            retry=gapic_v1.method.DEFAULT,
            timeout=gapic_v1.method.DEFAULT,
            **attributes,
        )
        return future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
