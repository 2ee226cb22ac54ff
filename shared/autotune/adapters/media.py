"""Cloud Storage as the validator's MediaInspector: does each referenced gs:// object exist,
and how big is it. One metadata GET per distinct object, many at once (the client is thread-
safe for reads). Honours STORAGE_EMULATOR_HOST through google-cloud-storage itself."""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor

from google.cloud import storage

from autotune.validation.media_rules import split_gs_uri

CONCURRENCY = 16


class GcsMediaInspector:
    def __init__(self, client: storage.Client, *, concurrency: int = CONCURRENCY) -> None:
        self._client = client
        self._concurrency = concurrency

    def stat(self, uris: Collection[str]) -> dict[str, int | None]:
        """gs:// URI -> size in bytes, or None when the object does not exist. A URI that is not
        gs://BUCKET/OBJECT is left out (the validator has already reported it). Other errors
        (permissions, outages) propagate, so the caller retries instead of calling a readable
        object missing."""
        targets = [(uri, parts) for uri in dict.fromkeys(uris) if (parts := split_gs_uri(uri)) is not None]
        if not targets:
            return {}
        with ThreadPoolExecutor(max_workers=min(self._concurrency, len(targets))) as pool:
            sizes = list(pool.map(lambda target: self._size(*target[1]), targets))
        return {uri: size for (uri, _), size in zip(targets, sizes, strict=True)}

    def _size(self, bucket: str, name: str) -> int | None:
        blob = self._client.bucket(bucket).get_blob(name)
        return None if blob is None else int(blob.size or 0)
