"""Cloud Storage through google-cloud-storage: the dataset bucket as the core's DatasetStore.

Reads are pinned to the generation the event announced, so a file replaced while it is being
validated is never half old, half new: the old generation is gone and `ObjectGone` says so.
Reads are raw: an object stored with a Content-Encoding is never decompressed on the way (the
intake refuses it), so sizes and checksums are those of the stored bytes. `pin` copies the
validated generation server-side (the copy names its source generation, so it is that version or
nothing): the tuning job reads the copy.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from autotune.intake.objects import REPORT_VALID_METADATA, ObjectGone, StoredObject
from autotune.intake.reconciliation import ListedObject

CHUNK_BYTES = 8 * 1024 * 1024


class GcsDatasetStore:
    def __init__(
        self, client: storage.Client, bucket: str, *, chunk_bytes: int = CHUNK_BYTES
    ) -> None:
        self._bucket = client.bucket(bucket)
        self._chunk_bytes = chunk_bytes

    def stat(self, name: str) -> StoredObject | None:
        blob = self._bucket.get_blob(name)
        return None if blob is None else self._stored(blob)

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        for blob in self._bucket.client.list_blobs(self._bucket, prefix=prefix):
            yield ListedObject(self._stored(blob), blob.updated)

    def _stored(self, blob: storage.Blob) -> StoredObject:
        return StoredObject(
            bucket=self._bucket.name,
            name=blob.name,
            generation=str(blob.generation),
            size=blob.size,
            metadata=dict(blob.metadata or {}),
            content_encoding=blob.content_encoding or "",
        )

    def read_chunks(self, name: str, generation: str) -> Iterator[bytes]:
        blob = self._bucket.blob(name, generation=int(generation))
        try:
            with blob.open("rb", chunk_size=self._chunk_bytes, raw_download=True) as reader:
                while chunk := reader.read(self._chunk_bytes):
                    yield chunk
        except gexc.NotFound as exc:
            raise ObjectGone(f"gs://{self._bucket.name}/{name}#{generation}") from exc

    def read_bytes(self, name: str, generation: str) -> bytes:
        try:
            return self._bucket.blob(name, generation=int(generation)).download_as_bytes(
                raw_download=True
            )
        except gexc.NotFound as exc:
            raise ObjectGone(f"gs://{self._bucket.name}/{name}#{generation}") from exc

    def pin(self, name: str, generation: str, pinned_name: str) -> StoredObject:
        source = self._bucket.get_blob(name, generation=int(generation))
        if source is None:
            raise ObjectGone(f"gs://{self._bucket.name}/{name}#{generation}")
        existing = self._bucket.get_blob(pinned_name)
        if existing is not None and _same_bytes(existing, source) and not existing.content_encoding:
            # Kept, not copied again: a queued dataset's request names this copy's generation.
            return self._stored(existing)
        try:
            copy = self._bucket.copy_blob(
                source, self._bucket, pinned_name, source_generation=int(generation)
            )
        except gexc.NotFound as exc:
            raise ObjectGone(f"gs://{self._bucket.name}/{name}#{generation}") from exc
        return self._stored(copy)

    def write_split_file(self, name: str, data: bytes) -> StoredObject:
        digest = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        for _ in range(3):
            existing = self._bucket.get_blob(name)
            if (
                existing is not None
                and existing.md5_hash == digest
                and existing.size == len(data)
                and not existing.content_encoding
            ):
                # Kept: a second delivery of the upload must name the same generation (one job).
                return self._stored(existing)
            blob = self._bucket.blob(name)
            try:
                # Only over what was looked at: of two deliveries writing at once, one wins and
                # the other finds its bytes on the next pass.
                blob.upload_from_string(
                    data,
                    content_type="application/jsonl",
                    if_generation_match=existing.generation if existing is not None else 0,
                )
            except gexc.PreconditionFailed:
                continue
            return self._stored(blob)
        raise RuntimeError(
            f"gs://{self._bucket.name}/{name} keeps changing while the split is written"
        )

    def generation_of(self, name: str) -> str | None:
        blob = self._bucket.get_blob(name)
        return None if blob is None else str(blob.generation)

    def read_report(self, name: str) -> bytes | None:
        try:
            return self._bucket.blob(name).download_as_bytes(raw_download=True)
        except gexc.NotFound:
            return None

    def write_report(
        self, name: str, data: bytes, *, valid: bool, retry: Retry = DEFAULT_RETRY
    ) -> None:
        # Writing the same report twice is harmless, so the upload is retried even without a
        # generation precondition.
        blob = self._bucket.blob(name)
        blob.cache_control = "no-cache"
        blob.metadata = {REPORT_VALID_METADATA: "true" if valid else "false"}
        blob.upload_from_string(data, content_type="application/json", retry=retry)

    def write_html_report(self, name: str, data: bytes, retry: Retry = DEFAULT_RETRY) -> None:
        blob = self._bucket.blob(name)
        blob.cache_control = "no-cache"
        blob.upload_from_string(data, content_type="text/html; charset=utf-8", retry=retry)


def _same_bytes(existing: storage.Blob, source: storage.Blob) -> bool:
    # crc32c is on every object (composite ones have no md5); md5 too whenever the source has one.
    if not existing.crc32c or existing.crc32c != source.crc32c or existing.size != source.size:
        return False
    return not source.md5_hash or existing.md5_hash == source.md5_hash
