"""Hostile input: any bytes give a report, never an exception; huge lines stay out of memory;
chunk boundaries never change the verdict."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autotune.settings import TuningSettings
from autotune.validation import DatasetSource, validate_dataset
from autotune.validation.lines import LineReader

SETTINGS = TuningSettings(model="gemini-3.5-flash", epochs=2)
LEGACY = TuningSettings(model="gemini-1.0-pro-002", epochs=2)

# Pieces that steer random bytes towards the interesting corners of the format.
FRAGMENTS = [
    b"\n",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"{",
    b"}",
    b"[",
    b"]",
    b'"contents"',
    b'"messages"',
    b'"parts"',
    b'"role"',
    b'"user"',
    b'"model"',
    b'"text"',
    b'"fileData"',
    b":",
    b",",
    b'""',
    b"null",
    b"\xff",
    b"\xc3",
    b'{"contents": [{"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "yo"}]}]}',
    b'{"messages": [{"role": "user", "content": "hi"}, {"role": "model", "content": "yo"}]}',
]
hostile_bytes = st.lists(
    st.one_of(st.binary(max_size=40), st.sampled_from(FRAGMENTS)), max_size=40
).map(b"".join)


def split_into(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces, start = [], 0
    for p in points:
        pieces.append(data[start:p])
        start = p
    pieces.append(data[start:])
    return pieces


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=hostile_bytes, cuts=st.lists(st.integers(0, 2000), max_size=5), legacy=st.booleans())
def test_any_bytes_give_a_report_and_chunking_does_not_matter(
    data: bytes, cuts: list[int], legacy: bool
):
    settings_ = LEGACY if legacy else SETTINGS
    whole = validate_dataset(DatasetSource("t.jsonl", [data]), settings=settings_)
    pieces = validate_dataset(DatasetSource("t.jsonl", split_into(data, cuts)), settings=settings_)
    assert whole.to_dict() == pieces.to_dict()
    json.loads(whole.to_json())
    assert whole.files["train"].size == len(data)
    assert whole.valid == (whole.error_count == 0)


@settings(max_examples=100, deadline=None)
@given(data=hostile_bytes)
def test_any_bytes_as_a_validation_file_give_a_report(data: bytes):
    train = b"".join(
        json.dumps(
            {
                "contents": [
                    {"role": "user", "parts": [{"text": f"q{i}"}]},
                    {"role": "model", "parts": [{"text": "a"}]},
                ]
            }
        ).encode()
        + b"\n"
        for i in range(20)
    )
    report = validate_dataset(
        DatasetSource("t", [train]), settings=SETTINGS, validation=DatasetSource("v", [data])
    )
    assert report.files["validation"].size == len(data)


def test_deep_nesting_is_invalid_json_not_a_crash():
    for line in (
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"contents": ' + b"[" * 100_000,
    ):
        report = validate_dataset(DatasetSource("t", [line + b"\n"]), settings=SETTINGS)
        assert report.counts.get("invalid_json") == 1


def test_a_long_line_without_newline_is_skipped_in_bounded_memory():
    """A 300 MB line, streamed: the reader never holds more than the limit plus one slice."""
    block = b"x" * (1 << 20)
    held: list[int] = []

    def chunks():
        yield b'{"contents": "'
        for _ in range(300):
            yield block

    reader = LineReader(chunks(), max_line_bytes=8 << 20)
    events = []
    for first, batch in reader.batches():
        events.append((first, batch if isinstance(batch, int) else [len(x) for x in batch]))
        if not isinstance(batch, int):
            held.extend(len(x) for x in batch)
    assert events == [(1, 300 * (1 << 20) + 14)]
    assert not held
    assert reader.bytes_read == 300 * (1 << 20) + 14


def test_a_long_line_then_good_lines_keeps_line_numbers():
    good = json.dumps(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "q"}]},
                {"role": "model", "parts": [{"text": "a"}]},
            ]
        }
    ).encode()
    chunks = [b"y" * (5 << 20), b"y" * (5 << 20) + b"\n" + good + b"\n", good + b"\n"]
    report = validate_dataset(DatasetSource("t", chunks), settings=SETTINGS)
    too_long = [i for i in report.errors if i.code == "line_too_long"]
    assert [i.line for i in too_long] == [1]
    assert report.files["train"].lines == 3
    assert report.counts.get("duplicate_example") == 1  # line 3 repeats line 2


def test_one_huge_chunk_is_split_in_slices():
    lines = [
        json.dumps(
            {
                "contents": [
                    {"role": "user", "parts": [{"text": f"q{i}"}]},
                    {"role": "model", "parts": [{"text": "a"}]},
                ]
            }
        )
        for i in range(60_000)
    ]
    data = ("\n".join(lines) + "\n").encode()
    assert len(data) > 4 << 20
    report = validate_dataset(DatasetSource("t", [data]), settings=SETTINGS)
    assert report.valid and report.example_count == 60_000


def test_file_too_large_by_known_size_is_reported_without_reading():
    def never():
        raise AssertionError("read")
        yield b""

    report = validate_dataset(DatasetSource("t", never(), size=5 * 1024**3), settings=SETTINGS)
    assert report.counts == {"file_too_large": 1}
    assert report.files["train"].size == 5 * 1024**3


def test_sha256_covers_every_byte():
    import hashlib

    data = b'{"a": 1}\n' * 1000 + b"tail without newline"
    report = validate_dataset(
        DatasetSource("t", [data[:7], data[7:5000], data[5000:]]), settings=SETTINGS
    )
    assert report.files["train"].sha256 == hashlib.sha256(data).hexdigest()


def test_a_read_failure_propagates_and_leaves_no_thread_behind():
    import threading

    import pytest

    def failing():
        yield b'{"contents": []}\n' * 1000
        raise OSError("connection reset")

    before = threading.active_count()
    with pytest.raises(OSError, match="connection reset"):
        validate_dataset(DatasetSource("t", failing()), settings=SETTINGS)
    assert threading.active_count() == before


def test_a_long_line_inside_one_chunk_is_split_out_in_order():
    good = [
        json.dumps(
            {
                "contents": [
                    {"role": "user", "parts": [{"text": f"q{i}"}]},
                    {"role": "model", "parts": [{"text": "a"}]},
                ]
            }
        ).encode()
        for i in range(3)
    ]
    long = b'{"contents": "' + b"z" * (9 << 20) + b'"}'
    reader = LineReader(
        [good[0] + b"\n" + long + b"\n" + good[1] + b"\n" + long + b"\n" + good[2]],
        max_line_bytes=8 << 20,
    )
    events = [(first, b if isinstance(b, int) else len(b)) for first, b in reader.batches()]
    assert events == [(1, 1), (2, len(long)), (3, 1), (4, len(long)), (5, 1)]
    assert reader.lines == 5


def test_a_complete_line_over_the_limit_within_a_chunk():
    reader = LineReader([b"short\n0123456789ABC\nok\nabc"], max_line_bytes=10)
    assert list(reader.batches()) == [(1, [b"short"]), (2, 13), (3, [b"ok"]), (4, [b"abc"])]
