"""`autotune up --notify-url URL`: the local stack pushes tuning-events to a receiver on this
machine, the way `autotune deploy --notify-url` does on Google Cloud, with two differences of
the Pub/Sub emulator: it sends no OIDC token (no Authorization header), and it stores the
job-end filter without applying it, so every event arrives and the receiver filters on ce-type.
"""

from __future__ import annotations

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from autotune.config import PipelineConfig
from autotune.job_end_notice import NOTIFY_SUBSCRIPTION, job_end_filter


def subscribe_notify_url(
    subscriber: pubsub_v1.SubscriberClient, config: PipelineConfig, url: str
) -> str:
    """The push subscription (its path) delivering tuning-events to `url`; an existing one is
    pointed at `url`."""
    path = subscriber.subscription_path(config.project, NOTIFY_SUBSCRIPTION)
    try:
        subscriber.create_subscription(
            request={
                "name": path,
                "topic": f"projects/{config.project}/topics/{config.events_topic}",
                "push_config": {"push_endpoint": url},
                "filter": job_end_filter(),
                "ack_deadline_seconds": 60,
            }
        )
    except gexc.AlreadyExists:
        subscriber.modify_push_config(
            request={"subscription": path, "push_config": {"push_endpoint": url}}
        )
    return path
