"""A video's playing time from its container header, reading only the bytes that hold it.

MP4, QuickTime (.mov) and 3GPP are ISO base media files: a chain of boxes, each starting with
its size and four-letter type. The movie header box (`moov` > `mvhd`) holds a timescale (units
a second) and the duration in those units. `moov` may sit before or after the media data
(`mdat`), so the top-level chain is walked by box headers alone: a handful of small ranged
reads, never the media itself. WebM (Matroska) is EBML: `Segment` > `Info` holds
`TimestampScale` (nanoseconds a unit, default 1,000,000) and `Duration` (a float, in those
units); muxers write `Info` within the first few kilobytes.

`read(offset, length)` returns up to `length` bytes from `offset` (fewer at the end of the
object), so the caller can serve it with ranged reads of any store. Nothing here knows where
the bytes live.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

Read = Callable[[int, int], bytes]

HEAD_BYTES = 64 << 10  # read once from the start: ftyp, and moov when the file is "fast start"
MOOV_BYTES = 64 << 10  # of a moov box: mvhd is its first child in practice, well within this
MAX_TOP_LEVEL_BOXES = 256  # a real file has a handful; a corrupt size chain must not loop long
ISO_MIME_TYPES = frozenset({"video/mp4", "video/mov", "video/quicktime", "video/3gpp"})
WEBM_MIME_TYPES = frozenset({"video/webm"})
# Box types a QuickTime or ISO file may start with.
_FIRST_BOXES = frozenset(
    {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"uuid", b"styp"}
)
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_SEGMENT, _INFO, _CLUSTER = 0x18538067, 0x1549A966, 0x1F43B675
_TIMESTAMP_SCALE, _DURATION = 0x2AD7B1, 0x4489


class VideoHeaderError(ValueError):
    """The object claims (by its type or its first bytes) to be a container this module reads,
    but its header is truncated or malformed. The message says what is wrong and where."""


def is_readable_type(mime: str) -> bool:
    return mime in ISO_MIME_TYPES or mime in WEBM_MIME_TYPES


def video_duration(read: Read, size: int, mime: str) -> float | None:
    """Seconds of playing time, or None when the container does not record it (a live WebM,
    a fragmented MP4 with a zero duration) or is not one this module reads (MPEG-PS, WMV, FLV).
    Raises VideoHeaderError for an MP4/MOV/3GPP/WebM object whose header cannot be read."""
    if size <= 0:
        raise VideoHeaderError("the object is empty (0 bytes)")
    head = read(0, min(size, HEAD_BYTES))
    if head[:4] == _EBML_MAGIC:
        return _webm_duration(head, size)
    if len(head) >= 8 and head[4:8] in _FIRST_BOXES:
        return _iso_duration(_Cached(read, head), size)
    if mime in ISO_MIME_TYPES:
        raise VideoHeaderError(
            f"not an MP4/QuickTime file: it starts with {head[:8].hex(' ')}, not a box such as ftyp or moov"
        )
    if mime in WEBM_MIME_TYPES:
        raise VideoHeaderError(
            f"not a WebM file: it starts with {head[:4].hex(' ')}, not the EBML mark 1a 45 df a3"
        )
    return None


class _Cached:
    """Serves reads inside the first HEAD_BYTES from memory, the rest from `read`."""

    def __init__(self, read: Read, head: bytes) -> None:
        self._read, self._head = read, head

    def __call__(self, offset: int, length: int) -> bytes:
        if offset + length <= len(self._head):
            return self._head[offset : offset + length]
        return self._read(offset, length)


def _iso_duration(read: Read, size: int) -> float | None:
    offset = 0
    for _ in range(MAX_TOP_LEVEL_BOXES):
        if offset + 8 > size:
            break
        box_type, box_size, header = _box_header(read(offset, 16), offset, size)
        if box_type == b"moov":
            body = read(offset + header, min(box_size - header, MOOV_BYTES))
            return _mvhd_duration(body, offset + header, offset + box_size, offset)
        offset += box_size
    else:
        raise VideoHeaderError(f"more than {MAX_TOP_LEVEL_BOXES} top-level boxes before a moov box")
    raise VideoHeaderError(
        f"no moov box (movie header) in the {size:,} bytes: the file is truncated or incomplete"
    )


def _box_header(data: bytes, offset: int, limit: int) -> tuple[bytes, int, int]:
    """(type, size, header length) of the box at `offset`, checked against `limit` (the end of
    the enclosing box or file)."""
    if len(data) < 8:
        raise VideoHeaderError(
            f"the box header at byte {offset:,} is cut off: the file is truncated"
        )
    declared, box_type = struct.unpack(">I4s", data[:8])
    header = 8
    if declared == 1:
        if len(data) < 16:
            raise VideoHeaderError(
                f"the 64-bit box size at byte {offset:,} is cut off: the file is truncated"
            )
        declared = struct.unpack(">Q", data[8:16])[0]
        header = 16
    elif declared == 0:
        declared = limit - offset  # "extends to the end of the file"
    if not all(0x20 <= c < 0x7F for c in box_type):
        raise VideoHeaderError(
            f"the box at byte {offset:,} has no readable type ({box_type.hex(' ')}): the file is corrupt"
        )
    if declared < header:
        raise VideoHeaderError(
            f"the {box_type.decode()} box at byte {offset:,} declares an impossible size of {declared} bytes"
        )
    if offset + declared > limit:
        raise VideoHeaderError(
            f"the {box_type.decode()} box at byte {offset:,} declares {declared:,} bytes, past the end at byte {limit:,}: "
            "the file is truncated"
        )
    return box_type, declared, header


def _mvhd_duration(body: bytes, base: int, end: int, moov_at: int) -> float | None:
    position = 0
    while position + 8 <= len(body):
        box_type, box_size, header = _box_header(
            body[position : position + 16], base + position, end
        )
        if box_type == b"mvhd":
            return _parse_mvhd(body[position + header : position + box_size], base + position)
        position += box_size
    raise VideoHeaderError(
        f"no mvhd box in the first {len(body):,} bytes of the moov box at byte {moov_at:,}: the file is truncated or corrupt"
    )


def _parse_mvhd(data: bytes, offset: int) -> float | None:
    if not data:
        raise VideoHeaderError(f"the mvhd box at byte {offset:,} is empty")
    version = data[0]
    if version == 0:
        layout, length = (
            ">4x4x4xII",
            20,
        )  # version+flags, creation, modification, timescale, duration
        unknown = 0xFFFFFFFF
    elif version == 1:
        layout, length = ">4x8x8xIQ", 32  # the same with 64-bit times and duration
        unknown = 0xFFFFFFFFFFFFFFFF
    else:
        raise VideoHeaderError(
            f"the mvhd box at byte {offset:,} has version {version}; only 0 and 1 exist"
        )
    if len(data) < length:
        raise VideoHeaderError(
            f"the mvhd box at byte {offset:,} is cut off before its duration: the file is truncated"
        )
    timescale, duration = struct.unpack(layout, data[:length])
    if timescale == 0:
        raise VideoHeaderError(
            f"the mvhd box at byte {offset:,} has a timescale of 0 units a second"
        )
    if duration in (0, unknown):
        return None  # fragmented or live: the length is in the fragments, not the header
    return duration / timescale


def _webm_duration(head: bytes, size: int) -> float | None:
    position = 0
    element, length, position = _ebml_element(head, position, "EBML header")
    if element != 0x1A45DFA3 or length is None:
        raise VideoHeaderError("the EBML header has no size")
    position += length
    element, length, position = _ebml_element(head, position, "Segment")
    if element != _SEGMENT:
        raise VideoHeaderError(
            f"expected the Segment element after the EBML header, found id 0x{element:X}"
        )
    end = len(head) if length is None else min(len(head), position + length)
    while position < end:
        element, length, body = _ebml_element(head, position, "a Segment child")
        if element == _CLUSTER or length is None:
            break  # the media data: Info, when present, comes before it
        if element == _INFO:
            if body + length > len(head):
                if size <= len(head):
                    raise VideoHeaderError(
                        f"the Info element at byte {position:,} is cut off: the file is truncated"
                    )
                raise VideoHeaderError(
                    f"the Info element at byte {position:,} runs past the first {len(head):,} bytes"
                )
            return _info_duration(head[body : body + length], body)
        position = body + length
    if size <= len(head):
        raise VideoHeaderError(
            "no Info element (segment information) in the file: it is truncated or corrupt"
        )
    raise VideoHeaderError(
        f"no Info element (segment information) in the first {len(head):,} bytes"
    )


def _info_duration(info: bytes, base: int) -> float | None:
    scale, duration = 1_000_000, None
    position = 0
    while position < len(info):
        element, length, body = _ebml_element(info, position, "an Info child")
        if length is None or body + length > len(info):
            raise VideoHeaderError(
                f"the Info child at byte {base + position:,} runs past the Info element"
            )
        value = info[body : body + length]
        if element == _TIMESTAMP_SCALE:
            scale = int.from_bytes(value, "big")
        elif element == _DURATION:
            if length == 4:
                duration = struct.unpack(">f", value)[0]
            elif length == 8:
                duration = struct.unpack(">d", value)[0]
            else:
                raise VideoHeaderError(
                    f"the Duration at byte {base + position:,} is {length} bytes; a float is 4 or 8"
                )
        position = body + length
    if duration is None:
        return None  # a live recording: Matroska leaves Duration out
    if scale == 0 or not duration >= 0 or duration == float("inf"):
        raise VideoHeaderError(
            f"the Info element at byte {base:,} has an unusable duration ({duration!r} x {scale} ns)"
        )
    return duration * scale / 1e9


def _ebml_element(data: bytes, position: int, what: str) -> tuple[int, int | None, int]:
    """(id, size or None when unknown, offset of the body) of the element at `position`."""
    element, position = _vint(data, position, what, keep_marker=True)
    assert element is not None  # an id keeps its marker bit, so it is never "unknown"
    length, position = _vint(data, position, what, keep_marker=False)
    return element, length, position


def _vint(data: bytes, position: int, what: str, *, keep_marker: bool) -> tuple[int | None, int]:
    if position >= len(data):
        raise VideoHeaderError(f"{what} at byte {position:,} is cut off: the file is truncated")
    first = data[position]
    width = 8 - first.bit_length() + 1
    if first == 0 or width > 8:
        raise VideoHeaderError(
            f"{what} at byte {position:,} has an invalid EBML number (0x{first:02X})"
        )
    if position + width > len(data):
        raise VideoHeaderError(f"{what} at byte {position:,} is cut off: the file is truncated")
    value = int.from_bytes(data[position : position + width], "big")
    if not keep_marker:
        value &= (1 << (7 * width)) - 1
        if value == (1 << (7 * width)) - 1:
            return None, position + width  # "unknown size"
    return value, position + width
