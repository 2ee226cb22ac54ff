"""video_duration on real (tiny) containers: the playing time where the header records it, a
clear VideoHeaderError where it is cut off or garbage, never another exception."""

from __future__ import annotations

import random
import struct

import pytest
from video_files import box, mp4, mvhd, reader, webm

from autotune.validation.video_header import HEAD_BYTES, VideoHeaderError, video_duration


def duration(data: bytes, mime: str = "video/mp4", log: list | None = None) -> float | None:
    return video_duration(reader(data, log), len(data), mime)


def test_mp4_with_the_movie_header_first():
    assert duration(mp4(12.5)) == 12.5


def test_mp4_with_the_movie_header_after_the_media_is_found_by_box_headers_alone():
    data = mp4(301, moov_first=False, media=HEAD_BYTES * 3)
    log: list = []
    assert duration(data, log=log) == 301
    # the first 64 KiB, then one small header read at mdat's end, then the moov box itself
    assert len(log) == 3 and sum(length for _, length in log) < HEAD_BYTES + 1024


def test_version_1_header_and_a_90khz_timescale():
    assert duration(mp4(1200.25, timescale=90_000, version=1)) == pytest.approx(1200.25)


def test_quicktime_and_3gpp_are_read_like_mp4():
    assert duration(mp4(7), "video/quicktime") == 7
    assert duration(mp4(7), "video/3gpp") == 7


def test_a_64_bit_box_size_is_followed():
    big_mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + 100) + bytes(100)
    data = box(b"ftyp", b"isom\0\0\0\0") + big_mdat + box(b"moov", mvhd(600, 600 * 42))
    assert duration(data) == 42


def test_zero_duration_means_unknown_not_zero_seconds():
    assert duration(mp4(0)) is None  # a fragmented file keeps its length in the fragments


def test_webm_duration_from_segment_info():
    assert duration(webm(95.5), "video/webm") == pytest.approx(95.5)
    assert duration(webm(30, scale=1_000), "video/webm") == pytest.approx(30)


def test_containers_not_read_are_unknown_not_errors():
    assert duration(b"\x00\x00\x01\xba" + bytes(100), "video/mpeg") is None
    assert duration(b"FLV\x01" + bytes(100), "video/x-flv") is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (mp4(10)[:40], "truncated"),  # cut inside the moov box
        (mp4(10, moov_first=False)[:-30], "truncated"),  # the trailing moov box cut short
        (box(b"ftyp", b"isom") + box(b"mdat", bytes(50)), "no moov box"),
        (b"GIF89a" + bytes(200), "not an MP4/QuickTime file"),
        (box(b"ftyp", b"isom") + box(b"moov", box(b"trak", b"")), "no mvhd box"),
        (
            box(b"ftyp", b"isom") + box(b"moov", box(b"mvhd", bytes([0, 0, 0, 0]) + bytes(6))),
            "cut off before its duration",
        ),
        (box(b"ftyp", b"isom") + box(b"moov", mvhd(0, 10)), "timescale of 0"),
        (box(b"ftyp", b"isom") + box(b"moov", box(b"mvhd", bytes([7]) + bytes(40))), "version 7"),
        (box(b"ftyp", b"isom") + struct.pack(">I4s", 3, b"moov"), "impossible size"),
        (b"", "empty"),
    ],
)
def test_broken_mp4_headers_say_what_is_wrong(data, expected):
    with pytest.raises(VideoHeaderError, match=expected):
        duration(data)


def test_broken_webm_headers_say_what_is_wrong():
    with pytest.raises(VideoHeaderError, match="not a WebM file"):
        duration(b"RIFF" + bytes(100), "video/webm")
    with pytest.raises(VideoHeaderError, match="cut off"):
        duration(webm(5)[:30], "video/webm")


def test_random_bytes_never_raise_anything_but_a_header_error():
    rng = random.Random(9)
    for _ in range(2000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        if rng.random() < 0.5:  # garbage behind a plausible start
            data = (mp4(3) if rng.random() < 0.5 else webm(3))[: rng.randrange(4, 60)] + data
        for mime in ("video/mp4", "video/webm", "video/mpeg"):
            try:
                result = duration(data, mime)
            except VideoHeaderError:
                continue
            assert result is None or result >= 0
