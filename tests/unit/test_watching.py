"""`autotune watch`'s loop and its listener when the Pub/Sub emulator misbehaves or goes away:
an acknowledgement whose retry runs out (a `RetryError`, not a `GoogleAPICallError`), a pull
that fails, a copy delivered again, a subscription that cannot be deleted. The subscriber here
answers as the client library does; the loop and the listener are the real ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from google.api_core import exceptions as gexc

from autotune.events import EventPayload, EventType, TuningEvent, to_pubsub_message
from autotune_local import watching
from autotune_local.clients import EventListener
from autotune_local.watching import SeenEvents, follow_events

GONE = gexc.RetryError(
    "Timeout of 60.0s exceeded, last exception: 503 failed to connect to all addresses",
    gexc.ServiceUnavailable("failed to connect"),
)


def event(event_id: str, kind: EventType = EventType.DATASET_ACCEPTED) -> TuningEvent:
    return TuningEvent(
        type=kind,
        payload=EventPayload(dataset_uri=f"gs://b/incoming/{event_id}.jsonl", generation="1"),
        time="2026-12-03T12:00:00Z",
        id=event_id,
    )


def message(ack_id: str, ev: TuningEvent) -> SimpleNamespace:
    data, attributes = to_pubsub_message(ev)
    return SimpleNamespace(ack_id=ack_id, message=SimpleNamespace(data=data, attributes=attributes))


@dataclass
class ScriptedSubscriber:
    """Answers each pull with the next item of `pulls` (a list of messages, or an error to raise)."""

    pulls: list[list[SimpleNamespace] | Exception]
    ack_error: Exception | None = None
    delete_error: Exception | None = None
    acknowledged: list[str] = field(default_factory=list)
    pull_retries: list[object] = field(default_factory=list)
    deleted: list[dict] = field(default_factory=list)

    def pull(self, *, subscription, max_messages, timeout, retry):
        self.pull_retries.append(retry)
        answer = self.pulls.pop(0) if self.pulls else []
        if isinstance(answer, Exception):
            raise answer
        return SimpleNamespace(received_messages=answer)

    def acknowledge(self, *, subscription, ack_ids, retry):
        if self.ack_error is not None:
            raise self.ack_error
        self.acknowledged.extend(ack_ids)

    def delete_subscription(self, **request):
        self.deleted.append(request)
        if self.delete_error is not None:
            raise self.delete_error


def listener(subscriber: ScriptedSubscriber) -> EventListener:
    return EventListener(subscriber, "projects/p/subscriptions/watch")  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watching, "PAUSE_AFTER_ERROR_SECONDS", 0.0)


def test_an_acknowledgement_that_runs_out_of_retries_still_delivers_the_events() -> None:
    subscriber = ScriptedSubscriber([[message("a1", event("e1"))]], ack_error=GONE)
    received = listener(subscriber).poll(timeout=1.0)
    assert [r.event.id for r in received] == ["e1"]


def test_an_acknowledgement_refused_by_the_service_still_delivers_the_events() -> None:
    subscriber = ScriptedSubscriber(
        [[message("a1", event("e1"))]], ack_error=gexc.ServiceUnavailable("down")
    )
    assert [r.event.id for r in listener(subscriber).poll(timeout=1.0)] == ["e1"]


def test_events_are_acknowledged_when_the_emulator_answers() -> None:
    subscriber = ScriptedSubscriber([[message("a1", event("e1")), message("a2", event("e2"))]])
    listener(subscriber).poll(timeout=1.0)
    assert subscriber.acknowledged == ["a1", "a2"]


def test_closing_when_the_emulator_is_gone_neither_raises_nor_rides_out_a_retry() -> None:
    subscriber = ScriptedSubscriber([], delete_error=GONE)
    listener(subscriber).close()
    assert subscriber.deleted[0]["retry"] is None and subscriber.deleted[0]["timeout"] > 0


def test_the_stack_stopping_while_an_acknowledgement_retries_ends_the_watch_cleanly() -> None:
    # What CI once saw: events arrive, `autotune down` stops the emulator before they are
    # acknowledged, the acknowledgement's retry runs out. The watch shows them and reports the
    # stack gone instead of dying with a traceback.
    subscriber = ScriptedSubscriber([[message("a1", event("e1"))]], ack_error=GONE)
    shown: list[str] = []
    running = iter([False])
    stopped = follow_events(
        listener(subscriber),
        show=lambda e: shown.append(e.id),
        source_running=lambda: next(running),
    )
    assert stopped is True and shown == ["e1"]


@pytest.mark.parametrize(
    "error", [GONE, gexc.ServiceUnavailable("connection refused"), gexc.DeadlineExceeded("slow")]
)
def test_a_failed_pull_is_waited_out_while_the_stack_runs(error: Exception) -> None:
    subscriber = ScriptedSubscriber([error, [message("a1", event("e1"))]])
    shown: list[str] = []
    running = iter([True, False])
    stopped = follow_events(
        listener(subscriber),
        show=lambda e: shown.append(e.id),
        source_running=lambda: next(running),
    )
    assert stopped is True and shown == ["e1"]
    # The watch asks the emulator once, without the library's minute of retries, so that it
    # notices a stopped stack at once.
    assert subscriber.pull_retries == [None, None]


def test_a_copy_delivered_again_is_shown_once() -> None:
    first = event("e1")
    subscriber = ScriptedSubscriber(
        [[message("a1", first)], [message("a2", first), message("a3", event("e2"))]]
    )
    shown: list[str] = []
    running = iter([True, False])
    follow_events(
        listener(subscriber),
        show=lambda e: shown.append(e.id),
        source_running=lambda: next(running),
    )
    assert shown == ["e1", "e2"]


def test_the_watch_ends_at_its_deadline_while_the_stack_runs() -> None:
    subscriber = ScriptedSubscriber([])
    assert (
        follow_events(
            listener(subscriber), show=lambda e: None, source_running=lambda: True, deadline=0.0
        )
        is False
    )


def test_events_without_an_id_are_all_shown_and_old_ids_are_forgotten() -> None:
    seen = SeenEvents(size=2)
    assert seen.first_time(event("")) and seen.first_time(event(""))
    assert [seen.first_time(event(i)) for i in ("a", "b", "a", "c", "a")] == [
        True,
        True,
        False,
        True,
        True,  # "a" was the oldest of three: forgotten, so shown again
    ]
