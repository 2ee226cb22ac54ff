"""Cloud Storage as the validator's MediaInspector: does each referenced gs:// object exist,
and how big is it. One metadata GET per distinct object, many at once (the client is thread-
safe for reads). For videos, also their length: the container header is read with ranged
GETs (video_header says which bytes), never the whole object. Honours STORAGE_EMULATOR_HOST
through google-cloud-storage itself."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor

from google.cloud import storage

from autotune.validation.media_rules import split_gs_uri
from autotune.validation.video_header import VideoHeaderError, video_duration

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
        targets = [
            (uri, parts) for uri in dict.fromkeys(uris) if (parts := split_gs_uri(uri)) is not None
        ]
        if not targets:
            return {}
        with ThreadPoolExecutor(max_workers=min(self._concurrency, len(targets))) as pool:
            sizes = list(pool.map(lambda target: self._size(*target[1]), targets))
        return {uri: size for (uri, _), size in zip(targets, sizes, strict=True)}

    def _size(self, bucket: str, name: str) -> int | None:
        blob = self._client.bucket(bucket).get_blob(name)
        return None if blob is None else int(blob.size or 0)

    def durations(
        self, videos: Mapping[str, tuple[str, int]]
    ) -> dict[str, float | None | VideoHeaderError]:
        """gs:// URI -> (mime type, size) in; URI -> seconds of playing time, None when the
        container does not record it, or the VideoHeaderError that says why it cannot be read.
        Other errors (permissions, outages) propagate, like stat's."""
        targets = [
            (uri, parts, *info)
            for uri, info in videos.items()
            if (parts := split_gs_uri(uri)) is not None
        ]
        if not targets:
            return {}
        with ThreadPoolExecutor(max_workers=min(self._concurrency, len(targets))) as pool:
            found = list(pool.map(lambda target: self._duration(*target[1:]), targets))
        return {target[0]: seconds for target, seconds in zip(targets, found, strict=True)}

    def _duration(
        self, parts: tuple[str, str], mime: str, size: int
    ) -> float | None | VideoHeaderError:
        blob = self._client.bucket(parts[0]).blob(parts[1])

        def read(offset: int, length: int) -> bytes:
            if length <= 0 or offset >= size:
                return b""
            return blob.download_as_bytes(
                start=offset, end=min(offset + length, size) - 1, checksum=None
            )

        try:
            return video_duration(read, size, mime)
        except VideoHeaderError as exc:
            return exc
