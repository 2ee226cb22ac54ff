"""The bucket, topics and subscriptions of the local stack.

Each function is wired to its topic by a push subscription to the event bridge, with a
dead-letter topic of its own (and a retry policy only when asked: see StackOptions.retry_policy).
A pull subscription on every dead-letter topic keeps what lands there (a topic without
subscriptions drops messages), so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1, storage
from google.protobuf import duration_pb2

from autotune.config import PipelineConfig

if TYPE_CHECKING:
    from autotune_local.stack import StackOptions, Subscriptions

# The longest Pub/Sub allows: a big dataset takes a while to validate.
ACK_DEADLINE_SECONDS = 600


def create_topics_and_subscriptions(
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
    config: PipelineConfig,
    *,
    bridge_url: str,
    functions: Sequence[str],
    storage_topic: str,
    subscriptions: Subscriptions,
    options: StackOptions,
) -> None:
    source_topics = {
        "validate": storage_topic,
        "submit": config.requests_topic,
        "status": config.ticks_topic,
    }
    for topic in {storage_topic, config.events_topic, config.requests_topic, config.ticks_topic}:
        _create_topic(publisher, config.project, topic)
    for name in functions:
        dead_letter = subscriptions.dead_letter[name]
        _create_topic(publisher, config.project, dead_letter)
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(config.project, dead_letter),
                "topic": publisher.topic_path(config.project, dead_letter),
                "ack_deadline_seconds": 60,
            }
        )
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(config.project, subscriptions.push[name]),
                "topic": publisher.topic_path(config.project, source_topics[name]),
                "push_config": {"push_endpoint": f"{bridge_url}/{name}"},
                "ack_deadline_seconds": ACK_DEADLINE_SECONDS,
                "dead_letter_policy": {
                    "dead_letter_topic": publisher.topic_path(config.project, dead_letter),
                    "max_delivery_attempts": options.max_delivery_attempts,
                },
                **(
                    {
                        "retry_policy": {
                            "minimum_backoff": duration_pb2.Duration(
                                seconds=options.retry_min_backoff_seconds
                            ),
                            "maximum_backoff": duration_pb2.Duration(
                                seconds=options.retry_max_backoff_seconds
                            ),
                        }
                    }
                    if options.retry_policy
                    else {}
                ),
            }
        )


def create_bucket(client: storage.Client, bucket: str) -> None:
    try:
        client.create_bucket(bucket)
    except gexc.Conflict:
        pass


def _create_topic(publisher: pubsub_v1.PublisherClient, project: str, topic: str) -> None:
    try:
        publisher.create_topic(name=publisher.topic_path(project, topic))
    except gexc.AlreadyExists:
        pass
