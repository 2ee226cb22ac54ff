"""Google client libraries bound to one local stack by its addresses, not by os.environ.

The functions themselves find the emulators through STORAGE_EMULATOR_HOST and friends, as the
client libraries intend; these builders serve the tools that talk to a stack from outside
(`autotune demo`, `autotune upload`, the tests), where two stacks may share one process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from google.api_core import exceptions as gexc
from google.api_core import gapic_v1
from google.auth.credentials import AnonymousCredentials
from google.cloud import pubsub_v1, storage
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

from autotune.adapters.jobs import GoogleClients
from autotune.events import TuningEvent, from_pubsub_message

if TYPE_CHECKING:
    from google.pubsub_v1.services.subscriber.client import OptionalRetry


# Deleting a listener's subscription is tidying up: not worth waiting long for.
CLOSE_TIMEOUT_SECONDS = 10.0


def storage_client(env: Mapping[str, str]) -> storage.Client:
    return storage.Client(
        project=env["AUTOTUNE_PROJECT"],
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": env["STORAGE_EMULATOR_HOST"]},
    )


def publisher_client(env: Mapping[str, str]) -> pubsub_v1.PublisherClient:
    channel = grpc.insecure_channel(env["PUBSUB_EMULATOR_HOST"])
    return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel))


def subscriber_client(env: Mapping[str, str]) -> pubsub_v1.SubscriberClient:
    channel = grpc.insecure_channel(env["PUBSUB_EMULATOR_HOST"])
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


def google_clients(env: Mapping[str, str]) -> GoogleClients:
    """The clients autotune.adapters.jobs.connect_pipeline builds a pipeline on, bound to this stack."""
    return GoogleClients(
        firestore=firestore_client(env),
        publisher=publisher_client(env),
        storage=storage_client(env),
    )


def upload_object(
    client: storage.Client,
    bucket: str,
    object_name: str,
    data: bytes | Path,
    *,
    metadata: Mapping[str, str] | None = None,
    content_type: str | None = None,
) -> int:
    blob = client.bucket(bucket).blob(object_name)
    if metadata:
        blob.metadata = dict(metadata)
    if isinstance(data, Path):
        blob.upload_from_filename(str(data), content_type=content_type)
    else:
        blob.upload_from_string(data, content_type=content_type or "application/octet-stream")
    return int(blob.generation)


@dataclass
class ReceivedEvent:
    event: TuningEvent
    attributes: dict[str, str]
    data: bytes


@dataclass
class EventListener:
    """A pull subscription of one's own on tuning-events; created before the uploads it watches."""

    subscriber: pubsub_v1.SubscriberClient
    subscription: str
    received: list[ReceivedEvent] = field(default_factory=list)

    @classmethod
    def create(
        cls,
        subscriber: pubsub_v1.SubscriberClient,
        project: str,
        topic: str,
        name: str | None = None,
    ) -> EventListener:
        subscription = subscriber.subscription_path(
            project, name or f"listener-{uuid.uuid4().hex[:12]}"
        )
        subscriber.create_subscription(
            name=subscription, topic=f"projects/{project}/topics/{topic}", ack_deadline_seconds=60
        )
        return cls(subscriber, subscription)

    def poll(
        self, timeout: float = 1.0, *, retry: OptionalRetry = gapic_v1.method.DEFAULT
    ) -> list[ReceivedEvent]:
        """Pull what is there (waiting up to `timeout`), acknowledge it, and keep it in `received`.
        The library's default retry rides out an unavailable emulator for up to a minute;
        `retry=None` fails at once instead (a caller that checks whether the emulator is gone)."""
        try:
            response = self.subscriber.pull(
                subscription=self.subscription, max_messages=100, timeout=timeout, retry=retry
            )
        except (gexc.DeadlineExceeded, gexc.RetryError):
            return []
        fresh = []
        for item in response.received_messages:
            attributes = dict(item.message.attributes)
            data = bytes(item.message.data)
            fresh.append(ReceivedEvent(from_pubsub_message(data, attributes), attributes, data))
        if response.received_messages:
            try:
                self.subscriber.acknowledge(
                    subscription=self.subscription,
                    ack_ids=[m.ack_id for m in response.received_messages],
                    retry=retry,
                )
            except gexc.GoogleAPIError:
                # The events were received all the same. Unacknowledged, Pub/Sub delivers them
                # again after the ack deadline (copies with the same ce-id), unless the emulator
                # went away with them. `GoogleAPIError` because a default retry that runs out
                # raises `RetryError`, which is not a `GoogleAPICallError`.
                pass
        self.received.extend(fresh)
        return fresh

    def wait_for(
        self, predicate: Callable[[ReceivedEvent], bool], *, timeout: float = 60.0
    ) -> ReceivedEvent:
        """The first event (already received or arriving within `timeout`) that matches."""
        deadline = time.monotonic() + timeout
        for seen in self.received:
            if predicate(seen):
                return seen
        while time.monotonic() < deadline:
            for seen in self.poll(timeout=min(2.0, max(0.1, deadline - time.monotonic()))):
                if predicate(seen):
                    return seen
        raise TimeoutError(
            f"no matching event on {self.subscription} within {timeout:.0f} s; received: "
            + ", ".join(f"{r.event.type.value} {r.event.subject}" for r in self.received)
        )

    def events_for(self, dataset_uri: str) -> list[ReceivedEvent]:
        return [r for r in self.received if r.event.subject == dataset_uri]

    def close(self) -> None:
        """Delete the subscription, best effort and without riding out an unreachable emulator
        (its subscriptions go with it)."""
        try:
            self.subscriber.delete_subscription(
                subscription=self.subscription, retry=None, timeout=CLOSE_TIMEOUT_SECONDS
            )
        except gexc.GoogleAPIError:
            pass


def firestore_client(env: Mapping[str, str]):
    """The Firestore client reads FIRESTORE_EMULATOR_HOST once, when built: set it just for that."""
    import os

    from google.cloud import firestore

    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = env["FIRESTORE_EMULATOR_HOST"]
    try:
        return firestore.Client(project=env["AUTOTUNE_PROJECT"], credentials=AnonymousCredentials())
    finally:
        if previous is None:
            del os.environ["FIRESTORE_EMULATOR_HOST"]
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous
