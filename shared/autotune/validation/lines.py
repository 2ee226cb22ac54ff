"""Split a stream of byte chunks into JSONL lines in bounded memory.

Chunks of any size come in; complete lines go out in batches (one list per chunk, so the
per-line cost stays in C: bytes.split). A line longer than the limit is never assembled:
once the carried-over tail passes the limit it is dropped and the reader skips to the next
newline, reporting only the line's number and length. The SHA-256 and byte count cover
every byte read, so the report names exactly the object that was checked.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator

# Each slice of a big chunk is split on its own, so one huge chunk (a whole file handed
# over at once) costs no more memory than a stream of small ones.
SLICE_BYTES = 1 << 20
# SHA-256 runs on a second thread (hashlib releases the GIL on large buffers): it costs about
# a third of the validator's time when done inline. The queue bounds what waits for it.
HASH_QUEUE_CHUNKS = 8


class _BackgroundSha256:
    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=HASH_QUEUE_CHUNKS)
        self._thread: threading.Thread | None = None
        self._digest: str | None = None

    def update(self, chunk: bytes) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
            self._thread.start()
        self._queue.put(chunk)

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._sha.update(chunk)

    def finish(self) -> None:
        """Wait for the hashing thread; safe to call more than once."""
        if self._digest is None:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
            self._digest = self._sha.hexdigest()

    def hexdigest(self) -> str:
        self.finish()
        assert self._digest is not None  # finish() sets it
        return self._digest


class LineReader:
    def __init__(
        self,
        chunks: Iterable[bytes],
        *,
        max_line_bytes: int,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self._chunks = chunks
        self._max = max_line_bytes
        self._on_bytes = on_bytes
        self._sha = _BackgroundSha256()
        self.bytes_read = 0
        self.lines = 0  # lines seen, including blank and too-long ones
        # Whether the batch just yielded may hold a line ending in \r (its slice had a \r):
        # lets the caller skip a per-line test on the common \n-only file.
        self.batch_has_cr = False

    @property
    def sha256(self) -> str:
        """Hex digest of every byte read; read it once the batches are exhausted."""
        return self._sha.hexdigest()

    def batches(self) -> Iterator[tuple[int, list[bytes] | int]]:
        """Yield (number of the first line, lines) or (line number, length of a too-long line).

        Lines exclude their b"\\n" and are never longer than the limit; a final line without a
        newline is yielded too.
        """
        try:
            yield from self._batches()
        finally:
            # Also when reading fails or the caller stops early: no thread is left waiting.
            self._sha.finish()

    def _batches(self) -> Iterator[tuple[int, list[bytes] | int]]:
        pending = b""
        skipping = False
        skipped = 0
        line_no = 1
        for slice_ in self._slices():
            if skipping:
                newline = slice_.find(b"\n")
                if newline < 0:
                    skipped += len(slice_)
                    continue
                yield line_no, skipped + newline
                line_no += 1
                skipping = False
                slice_ = slice_[newline + 1 :]
            # Split the slice alone and glue the carried-over tail onto its first line only:
            # joining tail and slice first would copy every slice once more.
            lines = slice_.split(b"\n")
            size = len(pending) + len(slice_)
            self.batch_has_cr = b"\r" in slice_ or pending.endswith(b"\r")
            if pending:
                lines[0] = pending + lines[0]
            pending = lines.pop()
            if lines:
                if size > self._max:
                    yield from _split_out_long(line_no, lines, self._max)
                else:
                    yield line_no, lines
                line_no += len(lines)
            if len(pending) > self._max:
                skipping, skipped, pending = True, len(pending), b""
        if skipping:
            yield line_no, skipped
            line_no += 1
        elif pending:
            self.batch_has_cr = pending.endswith(b"\r")
            yield line_no, [pending]
            line_no += 1
        self.lines = line_no - 1

    def _slices(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if not chunk:
                continue
            chunk = bytes(chunk)
            self._sha.update(chunk)
            self.bytes_read += len(chunk)
            if self._on_bytes is not None:
                self._on_bytes(len(chunk))
            if len(chunk) <= SLICE_BYTES:
                yield chunk
            else:
                view = memoryview(chunk)
                for start in range(0, len(chunk), SLICE_BYTES):
                    yield bytes(view[start : start + SLICE_BYTES])


def _split_out_long(
    line_no: int, lines: list[bytes], limit: int
) -> Iterator[tuple[int, list[bytes] | int]]:
    start = 0
    for i, line in enumerate(lines):
        if len(line) > limit:
            if i > start:
                yield line_no + start, lines[start:i]
            yield line_no + i, len(line)
            start = i + 1
    if start < len(lines):
        yield line_no + start, lines[start:]


def file_chunks(path: str, chunk_bytes: int = SLICE_BYTES) -> Iterator[bytes]:
    """A local file as a stream of chunks (the CLI's DatasetSource.chunks)."""
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            yield chunk
