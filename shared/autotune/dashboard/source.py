"""What the dashboard reads, through the adapters the functions use: the ledger (FirestoreLedger),
the bucket (GcsDatasetStore) and tuning-events (a pull subscription of the page's own). Nothing
here writes to the pipeline: the only thing created is that subscription, deleted on close.

The same code serves the local stack and a deployed project: the Google client libraries find
the emulators through STORAGE_EMULATOR_HOST, FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST,
and Google Cloud through Application Default Credentials.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from autotune.config import PipelineConfig
from autotune.dashboard.view import Listing, build_view, reports_to_read
from autotune.events import TuningEvent
from autotune.intake.objects import HTML_REPORT_SUFFIX, REPORT_SUFFIX

EVENTS_KEPT = 200
PULL_SECONDS = 2.0  # one pull's wait: also how long closing waits for the pulling thread
VIEW_FRESH_SECONDS = 1.0  # several pages polling at once share one reading
REPORT_SUFFIXES = (REPORT_SUFFIX, HTML_REPORT_SUFFIX)


class EventFeed:
    """The newest tuning-events, pulled in a background thread from a subscription of its own."""

    def __init__(self, subscriber: Any, config: PipelineConfig, *, keep: int = EVENTS_KEPT) -> None:
        self._subscriber = subscriber
        self._config = config
        self._keep = keep
        self._events: OrderedDict[str, TuningEvent] = OrderedDict()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.subscription = subscriber.subscription_path(
            config.project, f"autotune-dashboard-{uuid.uuid4().hex[:12]}"
        )
        self.note = ""

    def _subscribe(self) -> None:
        self._subscriber.create_subscription(
            request={
                "name": self.subscription,
                "topic": self._config.topic_path(self._config.events_topic),
                "ack_deadline_seconds": 30,
                # A page killed before it could delete its subscription leaves it for a day at most.
                "expiration_policy": {"ttl": {"seconds": 24 * 3600}},
                "message_retention_duration": {"seconds": 600},
            }
        )

    def start(self) -> EventFeed:
        """Subscribe; when that is refused (no Pub/Sub permission), the page says so and shows the rest."""
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exceptions

        try:
            self._subscribe()
        except (gexc.GoogleAPIError, auth_exceptions.GoogleAuthError) as exc:
            self.note = f"event stream unavailable: cannot subscribe to {self._config.events_topic} ({getattr(exc, 'message', None) or exc})"
            return self
        self.note = f"events on {self._config.events_topic} since {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC"
        self._thread = threading.Thread(
            target=self._pull_until_closed, name="dashboard-events", daemon=True
        )
        self._thread.start()
        return self

    def events(self) -> list[TuningEvent]:
        with self._lock:
            return list(self._events.values())

    def _pull_until_closed(self) -> None:
        from google.api_core import exceptions as gexc

        from autotune.events import from_pubsub_message

        while not self._stopping.is_set():
            try:
                response = self._subscriber.pull(
                    subscription=self.subscription,
                    max_messages=100,
                    timeout=PULL_SECONDS,
                    retry=None,
                )
            except gexc.NotFound:
                # The subscription is gone (a restarted Pub/Sub emulator starts empty): subscribe again.
                try:
                    self._subscribe()
                except gexc.GoogleAPIError:
                    self._stopping.wait(1.0)
                continue
            except gexc.GoogleAPIError:
                self._stopping.wait(1.0)
                continue
            ack_ids = []
            for item in response.received_messages:
                ack_ids.append(item.ack_id)
                try:
                    event = from_pubsub_message(
                        bytes(item.message.data), dict(item.message.attributes)
                    )
                except Exception:
                    continue
                with self._lock:
                    self._events[event.id or item.message.message_id] = (
                        event  # a redelivered copy replaces itself
                    )
                    while len(self._events) > self._keep:
                        self._events.popitem(last=False)
            if ack_ids:
                try:
                    self._subscriber.acknowledge(subscription=self.subscription, ack_ids=ack_ids)
                except gexc.GoogleAPIError:
                    pass  # redelivered later and dropped as a copy by its id

    def close(self) -> None:
        from google.api_core import exceptions as gexc

        self._stopping.set()
        if self._thread is None:
            return
        self._thread.join(timeout=PULL_SECONDS + 1)
        try:
            self._subscriber.delete_subscription(subscription=self.subscription, timeout=5)
        except gexc.GoogleAPIError:
            pass


class PipelineReader:
    """One project's uploads, reports, ledger and events, read on demand for the page."""

    def __init__(
        self,
        config: PipelineConfig,
        store: Any,
        ledger: Any,
        feed: EventFeed | None,
        *,
        on_google_cloud: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config
        self._store = store
        self._ledger = ledger
        self._feed = feed
        self._on_google_cloud = on_google_cloud
        self._clock = clock
        self._reports: dict[
            str, tuple[str, dict | None]
        ] = {}  # report name -> (generation read, document)
        self._lock = threading.Lock()
        self._last: tuple[float, dict[str, Any]] | None = None

    def view(self) -> dict[str, Any]:
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < VIEW_FRESH_SECONDS:
                return self._last[1]
            view = self._read()
            self._last = (time.monotonic(), view)
            return view

    def _read(self) -> dict[str, Any]:
        listing = Listing(
            uploads=list(self._store.list_objects(self.config.incoming_prefix)),
            reports=list(self._store.list_objects(self.config.reports_prefix)),
            records=self._ledger.records(),
            slots=self._ledger.slots(),
        )
        generations = {r.stored.name: r.stored.generation for r in listing.reports}
        wanted = reports_to_read(listing, self.config)
        documents = {name: self._report(name, generations.get(name, "")) for name in wanted}
        return build_view(
            listing,
            documents,
            self.config,
            events=self._feed.events() if self._feed else (),
            events_note=self._feed.note if self._feed else "no event subscription",
            now=self._clock(),
            on_google_cloud=self._on_google_cloud,
        )

    def _report(self, name: str, generation: str) -> dict | None:
        import json

        known = self._reports.get(name)
        if known is not None and known[0] == generation:
            return known[1]
        try:
            document = json.loads(self._store.read_bytes(name, generation))
        except (ValueError, LookupError):
            document = None
        document = document if isinstance(document, dict) else None
        self._reports[name] = (generation, document)
        return document

    def report_object(self, name: str) -> bytes | None:
        """A stored report's bytes; None for anything that is not a report object (the page serves
        reports, never datasets) or that does not exist."""
        if not name.startswith(self.config.reports_prefix) or not name.endswith(REPORT_SUFFIXES):
            return None
        stored = self._store.stat(name)
        if stored is None:
            return None
        try:
            return self._store.read_bytes(name, stored.generation)
        except LookupError:
            return None

    def close(self) -> None:
        if self._feed is not None:
            self._feed.close()


def connect(
    config: PipelineConfig, *, on_google_cloud: bool, events: bool = True
) -> PipelineReader:
    """The reader on the default Google clients: the emulators when their variables are set, else
    the project with Application Default Credentials."""
    from google.cloud import firestore, pubsub_v1, storage

    from autotune.adapters.ledger import FirestoreLedger
    from autotune.adapters.storage import GcsDatasetStore

    store = GcsDatasetStore(storage.Client(project=config.project), config.bucket)
    ledger = FirestoreLedger(firestore.Client(project=config.project), config.ledger_collection)
    feed = EventFeed(pubsub_v1.SubscriberClient(), config).start() if events else None
    return PipelineReader(config, store, ledger, feed, on_google_cloud=on_google_cloud)
