"""The dashboard's event feed: its own subscription, copies dropped by ce-id, the newest kept,
the subscription deleted on close, and a refused subscription said on the page."""

import threading
import time
from types import SimpleNamespace

from google.api_core import exceptions as gexc

from autotune.config import PipelineConfig
from autotune.dashboard.source import EventFeed
from autotune.events import EventPayload, EventType, make_event, to_pubsub_message

CONFIG = PipelineConfig(project="p", bucket="b")


class FakeSubscriber:
    """Pub/Sub's subscriber API as the feed uses it; messages handed out once each."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.created: list[dict] = []
        self.deleted: list[str] = []
        self.acked: list[str] = []
        self.waiting: list[tuple[bytes, dict]] = []
        self.lock = threading.Lock()

    def subscription_path(self, project: str, name: str) -> str:
        return f"projects/{project}/subscriptions/{name}"

    def create_subscription(self, request: dict) -> None:
        if self.refuse:
            raise gexc.PermissionDenied("pubsub.subscriptions.create denied")
        self.created.append(request)

    def pull(
        self, subscription: str, max_messages: int, timeout: float, retry: object
    ) -> SimpleNamespace:
        with self.lock:
            batch, self.waiting = self.waiting[:max_messages], self.waiting[max_messages:]
        if not batch:
            time.sleep(0.02)
        return SimpleNamespace(
            received_messages=[
                SimpleNamespace(
                    ack_id=f"ack-{i}",
                    message=SimpleNamespace(data=data, attributes=attributes, message_id=str(i)),
                )
                for i, (data, attributes) in enumerate(batch)
            ]
        )

    def acknowledge(self, subscription: str, ack_ids: list[str]) -> None:
        self.acked.extend(ack_ids)

    def delete_subscription(self, subscription: str, timeout: float) -> None:
        self.deleted.append(subscription)


def event(n: int):
    return make_event(
        EventType.JOB_QUEUED,
        EventPayload(dataset_uri=f"gs://b/incoming/{n}.jsonl", generation="1", state="QUEUED"),
    )


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the feed did not catch up"
        time.sleep(0.01)


def test_the_feed_keeps_the_newest_events_once_each_and_deletes_its_subscription():
    subscriber = FakeSubscriber()
    feed = EventFeed(subscriber, CONFIG, keep=3).start()
    [request] = subscriber.created
    assert (
        request["topic"] == "projects/p/topics/tuning-events"
        and "/autotune-dashboard-" in request["name"]
    )
    assert (
        request["expiration_policy"]["ttl"]["seconds"] == 86400
    )  # a killed page's subscription goes away by itself
    messages = [to_pubsub_message(event(n)) for n in range(5)]
    with subscriber.lock:
        subscriber.waiting = [
            *messages,
            messages[4],
            (b"not an event", {"ce-type": "someone.else"}),
        ]
    wait_until(lambda: len(subscriber.acked) == 7)
    assert [e.subject for e in feed.events()] == [
        "gs://b/incoming/2.jsonl",
        "gs://b/incoming/3.jsonl",
        "gs://b/incoming/4.jsonl",
    ]
    assert "events on tuning-events since" in feed.note
    feed.close()
    assert subscriber.deleted == [request["name"]]


def test_a_refused_subscription_is_said_and_nothing_pulls():
    subscriber = FakeSubscriber(refuse=True)
    feed = EventFeed(subscriber, CONFIG).start()
    assert feed.note.startswith("event stream unavailable: cannot subscribe to tuning-events")
    assert "denied" in feed.note and feed.events() == []
    feed.close()
    assert subscriber.deleted == []


def test_a_subscription_lost_with_a_restarted_emulator_is_made_again(monkeypatch):
    subscriber = FakeSubscriber()
    lost = threading.Event()
    pull = subscriber.pull

    def pull_once_lost(**kwargs):
        if not lost.is_set():
            lost.set()
            raise gexc.NotFound("subscription does not exist")
        return pull(**kwargs)

    monkeypatch.setattr(subscriber, "pull", pull_once_lost)
    feed = EventFeed(subscriber, CONFIG).start()
    wait_until(lambda: len(subscriber.created) == 2)
    assert subscriber.created[0]["name"] == subscriber.created[1]["name"]
    with subscriber.lock:
        subscriber.waiting = [to_pubsub_message(event(1))]
    wait_until(lambda: len(feed.events()) == 1)
    feed.close()


def test_an_acknowledgement_whose_retry_runs_out_leaves_the_feed_pulling(monkeypatch):
    # A default retry that runs out raises RetryError, which is not a GoogleAPICallError: the
    # feed's thread must outlive it, or the page's event stream stops for good.
    subscriber = FakeSubscriber()
    refused = threading.Event()
    acknowledge = subscriber.acknowledge

    def acknowledge_once_refused(**kwargs):
        if not refused.is_set():
            refused.set()
            raise gexc.RetryError("Timeout of 60.0s exceeded", gexc.ServiceUnavailable("down"))
        acknowledge(**kwargs)

    monkeypatch.setattr(subscriber, "acknowledge", acknowledge_once_refused)
    feed = EventFeed(subscriber, CONFIG).start()
    with subscriber.lock:
        subscriber.waiting = [to_pubsub_message(event(1))]
    wait_until(refused.is_set)
    with subscriber.lock:
        subscriber.waiting = [to_pubsub_message(event(2))]
    wait_until(lambda: len(feed.events()) == 2)
    assert subscriber.acked == ["ack-0"]
    feed.close()
