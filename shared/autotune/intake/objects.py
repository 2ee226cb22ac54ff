"""The objects of the dataset bucket as the intake sees them: which are datasets, what their
reports and pinned copies are called, and the two ports the intake writes through (the bucket,
the event bus)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from autotune.events import EventPublisher
from autotune.jobs.request import TuningRequest

DATASET_SUFFIX = ".jsonl"
MANIFEST_SUFFIX = ".tuning.json"
PARTS_FOLDER = "parts"
# Cloud Storage names and Pub/Sub attribute values stop at 1024 bytes (UTF-8). A dataset whose
# report name or gs:// URI (the ce-subject of every event) is longer could never be reported on
# or announced: every publish would fail and the upload would be retried into the dead-letter topic.
NAME_LIMIT_BYTES = 1024

# Metadata on every report object: "true" (accepted) or "false" (rejected).
REPORT_VALID_METADATA = "autotune-valid"
# In an accepted report: the keys of the request validate published for it, so submit acts only
# on that request (autotune.jobs.request_checks).
REPORT_REQUEST_FIELD = "accepted_request"
# In an accepted report of a split upload: the fraction, the counts, the limits applied, the files.
SPLIT_REPORT_FIELD = "validation_split"

# Validated bytes are copied here, named by their sha256, and the job reads the copy: an overwrite
# of the uploaded object after validation cannot change what a queued or submitting job trains on.
PINNED_FOLDER = "pinned/"


class UnreadableEvent(ValueError):
    """The storage event does not say which object version it is about."""


class ObjectGone(LookupError):
    """The object (at that generation) no longer exists: a newer upload replaced it, or it was deleted."""


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    name: str
    generation: str
    size: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    # Content-Encoding as stored ("" for none). Reads are raw (never decompressed), so the
    # report's sha256 covers the stored bytes; an encoded object is refused (CONTENT_ENCODED).
    content_encoding: str = ""

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


class DatasetStore(Protocol):
    def stat(self, name: str) -> StoredObject | None: ...
    # Both read the stored bytes as they are (no decompressive transcoding).
    def read_chunks(
        self, name: str, generation: str
    ) -> Iterator[bytes]: ...  # lazy; raises ObjectGone
    def read_bytes(
        self, name: str, generation: str
    ) -> bytes: ...  # small objects; raises ObjectGone
    # A copy of exactly that generation under `pinned_name` (server-side, so the bytes are the
    # ones validated); an existing copy with the same checksums is kept as is. Raises ObjectGone
    # when that generation was replaced or deleted meanwhile.
    def pin(self, name: str, generation: str, pinned_name: str) -> StoredObject: ...
    # `data` under `name` unless an object of exactly these bytes is already there (then that one
    # is returned as it is, same generation): the split files of one upload are written once.
    def write_split_file(self, name: str, data: bytes) -> StoredObject: ...
    # `valid` goes into the report object's metadata (REPORT_VALID_METADATA), so reconciliation
    # tells accepted from rejected uploads by listing the reports, without reading each one.
    def write_report(self, name: str, data: bytes, *, valid: bool) -> None: ...
    # The report's HTML page (text/html), written just before the JSON report it shows.
    def write_html_report(self, name: str, data: bytes) -> None: ...


class EventBus(EventPublisher, Protocol):
    """The events, and the tuning requests the intake hands to submit."""

    def publish_request(self, request: TuningRequest) -> object: ...  # returns once Pub/Sub has it


def stored_object_from_event(data: object) -> StoredObject:
    """The object of a `google.cloud.storage.object.v1.*` CloudEvent's data (a JSON API object)."""
    if not isinstance(data, Mapping):
        raise UnreadableEvent(f"event data is {type(data).__name__}, not a storage object")
    bucket, name, generation = data.get("bucket"), data.get("name"), data.get("generation")
    if not isinstance(bucket, str) or not bucket or not isinstance(name, str) or not name:
        raise UnreadableEvent("event data has no bucket and object name")
    if generation is None or not str(generation).isdigit():
        raise UnreadableEvent(f"event data for {name!r} has no numeric generation")
    size = data.get("size")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise UnreadableEvent(f"event data for {name!r} has metadata that is not a map")
    return StoredObject(
        bucket=bucket,
        name=name,
        generation=str(generation),
        size=int(size) if size is not None and str(size).isdigit() else None,
        metadata={str(k): str(v) for k, v in metadata.items()},
        content_encoding=str(data.get("contentEncoding") or ""),
    )


def classify(object_name: str, incoming_prefix: str, reports_prefix: str = "") -> tuple[str, str]:
    """("dataset" | "manifest" | "ignored", why)."""
    if not object_name.startswith(incoming_prefix):
        return "ignored", f"outside {incoming_prefix}"
    if reports_prefix and object_name.startswith(reports_prefix):
        return "ignored", f"the pipeline's own output under {reports_prefix}"
    if object_name.endswith("/"):
        return "ignored", "a folder placeholder"
    if object_name.endswith(MANIFEST_SUFFIX):
        return "manifest", "a manifest"
    if object_name.endswith(DATASET_SUFFIX):
        folders = object_name[len(incoming_prefix) :].split("/")[:-1]
        if PARTS_FOLDER in folders:
            return "ignored", f"in a {PARTS_FOLDER}/ folder: left to the manifest that names it"
        return "dataset", "a dataset"
    return "ignored", f"not a dataset ({DATASET_SUFFIX}) or a manifest ({MANIFEST_SUFFIX})"


def name_unusable(name: str) -> str | None:
    """An object name that cannot even be written into a report's name (only a forged event has one)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return "the object name is not encodable as UTF-8"
    return None


def pinned_object_name(reports_prefix: str, sha256: str) -> str:
    return f"{reports_prefix}{PINNED_FOLDER}{sha256}{DATASET_SUFFIX}"


def name_too_long(uri: str, report_name: str) -> str | None:
    """Why a dataset's names cannot be used (see NAME_LIMIT_BYTES), or None."""
    for what, text in (
        ("its gs:// URI (the ce-subject of its events)", uri),
        ("its report's object name", report_name),
    ):
        size = len(text.encode())
        if size > NAME_LIMIT_BYTES:
            return f"{what} would be {size} bytes; at most {NAME_LIMIT_BYTES} are allowed"
    return None


REPORT_SUFFIX = ".json"
HTML_REPORT_SUFFIX = ".html"


def report_object_name(reports_prefix: str, object_name: str, generation: str) -> str:
    return f"{reports_prefix}{object_name}/{generation}{REPORT_SUFFIX}"


def html_report_name(json_report_name: str) -> str:
    """reports/<object>/<generation>.json -> reports/<object>/<generation>.html (the page beside it)"""
    if not json_report_name.endswith(REPORT_SUFFIX):
        raise ValueError(
            f"{json_report_name!r} is not a JSON report's name (it does not end in {REPORT_SUFFIX})"
        )
    return json_report_name[: -len(REPORT_SUFFIX)] + HTML_REPORT_SUFFIX
