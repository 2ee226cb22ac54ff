"""The ledger in Firestore: one document per dataset version, decided on in transactions.

Collections (names derived from `ledger_collection`, default "autotune-datasets"):
    <collection>/<idempotency key>        the LedgerRecord
    <collection>-content/<content key>    {"idempotency_key": first tuning of these bytes and settings}
    <collection>-slots/slots              {"active": {key: since}, "queued": {key: order}}
    <collection>-turns/<name>             {"next_at": RFC 3339}: periodic work one instance does
Every decision reads the documents it depends on inside the transaction, so Firestore
serialises competing decisions (the slots document is read by every claim and every move that
frees or takes a slot) and a losing transaction is retried on fresh data.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any, TypeVar

import msgspec
from google.api_core import exceptions as api_exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from autotune.intake.reconciliation import IntakeFailure
from autotune.jobs.documents import Change, ClaimView, Slots
from autotune.jobs.lifecycle import (
    LedgerRecord,
    LedgerState,
    parse_timestamp,
    timestamp,
)
from autotune.jobs.ports import UnwritableRecord

# Every decision reads the slots document, so concurrent transactions contend on it. Within one
# process they take turns (a lock: no point in racing a sibling thread); across processes a
# transaction that loses (ABORTED, e.g. the emulator's lock timeout) is retried after a jittered
# pause so the competitors do not collide again in step.
TRANSACTION_ATTEMPTS = 30
SLOTS_DOCUMENT = "slots"
LEDGER_STARTED = "ledger-started"  # in the turns collection: when this ledger began


T = TypeVar("T")


class FirestoreLedger:
    def __init__(self, client: firestore.Client, collection: str) -> None:
        self.client = client
        self.records_ref = client.collection(collection)
        self.content_ref = client.collection(f"{collection}-content")
        self.slots_ref = client.collection(f"{collection}-slots").document(SLOTS_DOCUMENT)
        self.turns_ref = client.collection(f"{collection}-turns")
        self.failures_ref = client.collection(f"{collection}-intake-failures")
        # The next time of each turn as last seen here: a turn's time only moves forward, so until
        # then the answer is "not yet" without a transaction on every status tick.
        self._turn_not_before: dict[str, datetime] = {}
        self._turn = threading.Lock()

    def claim(self, key: str, content_key: str, decide: Callable[[ClaimView], Change]) -> Change:
        record_ref = self.records_ref.document(key)
        content_ref = self.content_ref.document(content_key)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> Change:
            record = _record(record_ref.get(transaction=transaction))
            owner_key = (content_ref.get(transaction=transaction).to_dict() or {}).get(
                "idempotency_key"
            )
            owner = None
            if owner_key and owner_key != key:
                owner = _record(self.records_ref.document(owner_key).get(transaction=transaction))
            elif owner_key == key:
                owner = record
            slots = _slots(self.slots_ref.get(transaction=transaction))
            change = decide(ClaimView(record=record, content_owner=owner, slots=slots))
            self._write(transaction, record_ref, change)
            if change.content_owner_key is not None:
                transaction.set(content_ref, {"idempotency_key": change.content_owner_key})
            return change

        return self._transact(run)

    def update(
        self, key: str, decide: Callable[[LedgerRecord, Slots], Change | None]
    ) -> Change | None:
        return self._update(
            key, lambda record, slots: None if record is None else decide(record, slots)
        )

    def update_or_absent(
        self, key: str, decide: Callable[[LedgerRecord | None, Slots], Change | None]
    ) -> Change | None:
        return self._update(key, decide)

    def _update(
        self, key: str, decide: Callable[[LedgerRecord | None, Slots], Change | None]
    ) -> Change | None:
        record_ref = self.records_ref.document(key)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> Change | None:
            record = _record(record_ref.get(transaction=transaction))
            slots = _slots(self.slots_ref.get(transaction=transaction))
            change = decide(record, slots)
            if change is not None:
                self._write(transaction, record_ref, change)
            return change

        return self._transact(run)

    def _transact(self, run: Callable[[firestore.Transaction], T]) -> T:
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                with self._turn:
                    return run(self.client.transaction(max_attempts=1))
            except api_exceptions.InvalidArgument as exc:
                if _unwritable(exc):
                    raise UnwritableRecord(str(exc)) from exc
                raise
            except (api_exceptions.Aborted, ValueError) as exc:
                if isinstance(exc.__cause__, api_exceptions.InvalidArgument) and _unwritable(
                    exc.__cause__
                ):
                    raise UnwritableRecord(str(exc.__cause__)) from exc
                lost = isinstance(exc, api_exceptions.Aborted) or isinstance(
                    exc.__cause__, api_exceptions.Aborted
                )
                if not lost or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
            time.sleep(random.uniform(0.0, min(2.0, 0.05 * 2**attempt)))
        raise AssertionError("unreachable")

    def _write(self, transaction: firestore.Transaction, record_ref: Any, change: Change) -> None:
        if change.record is not None:
            transaction.set(record_ref, _document(change.record))
        if change.slots is not None:
            transaction.set(self.slots_ref, msgspec.to_builtins(change.slots))

    def get(self, key: str) -> LedgerRecord | None:
        return _record(self.records_ref.document(key).get())

    def records(self, states: Collection[LedgerState] | None = None) -> list[LedgerRecord]:
        query: firestore.CollectionReference | firestore.Query = self.records_ref
        if states is not None:
            query = query.where(filter=FieldFilter("state", "in", [str(s) for s in states]))
        return sorted(
            (_stored_record(snap) for snap in query.stream()),
            key=lambda r: (r.created_at, r.idempotency_key),
        )

    def with_outbox(self) -> list[LedgerRecord]:
        return [
            _stored_record(snap)
            for snap in self.records_ref.where(
                filter=FieldFilter("has_outbox", "==", True)
            ).stream()
        ]

    def clear_outbox(self, key: str, event_ids: Collection[str]) -> None:
        record_ref = self.records_ref.document(key)
        published = set(event_ids)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> None:
            record = _record(record_ref.get(transaction=transaction))
            if record is None or not record.outbox:
                return
            left = tuple(event for event in record.outbox if event.id not in published)
            if len(left) != len(record.outbox):
                transaction.set(record_ref, _document(msgspec.structs.replace(record, outbox=left)))

        self._transact(run)

    def slots(self) -> Slots:
        return _slots(self.slots_ref.get())

    def report_uris_since(self, since: str) -> set[str]:
        query = self.records_ref.where(filter=FieldFilter("created_at", ">=", since)).select(
            ["report_uri"]
        )
        return {uri for snap in query.stream() if (uri := (snap.to_dict() or {}).get("report_uri"))}

    def started_at(self, now: datetime) -> datetime:
        started_ref = self.turns_ref.document(LEDGER_STARTED)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> datetime:
            known = (started_ref.get(transaction=transaction).to_dict() or {}).get("at")
            if known:
                return parse_timestamp(known)
            transaction.set(started_ref, {"at": timestamp(now)})
            return now

        return self._transact(run)

    def intake_failures(self) -> dict[str, IntakeFailure]:
        found = {}
        for snap in self.failures_ref.stream():
            data = snap.to_dict() or {}
            found[str(data.get("upload", ""))] = IntakeFailure(
                error=str(data.get("error", "")),
                times=int(data.get("times", 1)),
                at=parse_timestamp(data["at"]),
            )
        return found

    def record_intake_failure(self, upload: str, error: str, now: datetime) -> IntakeFailure:
        # Document id: a hash (an object name may hold any character, a document id may not).
        failure_ref = self.failures_ref.document(hashlib.sha256(upload.encode()).hexdigest())

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> IntakeFailure:
            data = failure_ref.get(transaction=transaction).to_dict() or {}
            times = int(data.get("times", 0)) + 1 if data.get("error") == error else 1
            transaction.set(
                failure_ref,
                {"upload": upload, "error": error, "times": times, "at": timestamp(now)},
            )
            return IntakeFailure(error=error, times=times, at=now)

        return self._transact(run)

    def take_turn(self, name: str, now: datetime, every_seconds: float) -> bool:
        """True for the first caller of each period of `every_seconds`, across instances."""
        known = self._turn_not_before.get(name)
        if known is not None and known > now:
            return False
        turn_ref = self.turns_ref.document(name)

        @firestore.transactional
        def run(transaction: firestore.Transaction) -> tuple[bool, datetime]:
            next_at = (turn_ref.get(transaction=transaction).to_dict() or {}).get("next_at")
            if next_at and parse_timestamp(next_at) > now:
                return False, parse_timestamp(next_at)
            due = now + timedelta(seconds=every_seconds)
            transaction.set(turn_ref, {"next_at": timestamp(due)})
            return True, due

        taken, self._turn_not_before[name] = self._transact(run)
        return taken


def _unwritable(exc: api_exceptions.InvalidArgument) -> bool:
    """A refusal for what the record holds (over the maximum entity size), not for the moment
    (an emulator restarted under a transaction answers 400 "Transaction is invalid or expired")."""
    message = str(exc).lower()
    return "size" in message and "transaction" not in message


def _document(record: LedgerRecord) -> dict[str, Any]:
    # has_outbox lets the status tick find unpublished events with one equality query.
    return {**msgspec.to_builtins(record), "has_outbox": bool(record.outbox)}


def _record(snapshot: Any) -> LedgerRecord | None:
    return _stored_record(snapshot) if snapshot.exists else None


def _stored_record(snapshot: Any) -> LedgerRecord:
    """The record of a snapshot that exists (a query streams only those)."""
    data = snapshot.to_dict()
    data.pop("has_outbox", None)
    return msgspec.convert(data, LedgerRecord)


def _slots(snapshot: Any) -> Slots:
    return msgspec.convert(snapshot.to_dict() or {}, Slots) if snapshot.exists else Slots()
