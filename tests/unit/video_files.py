"""Tiny but well-formed video containers, written box by box (MP4) or element by element
(WebM), so the header reader is tested on the bytes a real muxer lays out."""

from __future__ import annotations

import struct


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mvhd(timescale: int, duration: int, *, version: int = 0) -> bytes:
    if version == 0:
        times = struct.pack(">IIII", 0, 0, timescale, duration)
    else:
        times = struct.pack(">QQIQ", 0, 0, timescale, duration)
    # rate 1.0, volume 1.0, reserved, unity matrix, pre-defined, next track id
    rest = struct.pack(
        ">IH10x9I24xI", 0x00010000, 0x0100, 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000, 2
    )
    return box(b"mvhd", bytes([version, 0, 0, 0]) + times + rest)


def mp4(
    seconds: float,
    *,
    timescale: int = 1000,
    moov_first: bool = True,
    version: int = 0,
    media: int = 4096,
) -> bytes:
    """ftyp, then moov (mvhd and an empty trak) and mdat, in either order."""
    ftyp = box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    moov = box(
        b"moov", mvhd(timescale, round(seconds * timescale), version=version) + box(b"trak", b"")
    )
    mdat = box(b"mdat", bytes(media))
    return ftyp + (moov + mdat if moov_first else mdat + moov)


def _vint_size(n: int) -> bytes:
    return bytes([0x80 | n]) if n < 0x7F else (0x4000 | n).to_bytes(2, "big")


def _element(element_id: int, payload: bytes) -> bytes:
    return (
        element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
        + _vint_size(len(payload))
        + payload
    )


def webm(seconds: float, *, scale: int = 1_000_000) -> bytes:
    header = _element(0x1A45DFA3, _element(0x4282, b"webm"))
    info = _element(
        0x1549A966,
        _element(0x2AD7B1, scale.to_bytes(3, "big"))
        + _element(0x4489, struct.pack(">d", seconds * 1e9 / scale)),
    )
    cluster = _element(0x1F43B675, bytes(64))
    return header + _element(0x18538067, info + cluster)


def reader(data: bytes, log: list | None = None):
    def read(offset: int, length: int) -> bytes:
        if log is not None:
            log.append((offset, length))
        return data[offset : offset + length]

    return read
