"""Every error code has a case of its own: a small input that produces it, checked by code,
line and severity. Also: every code is documented in docs/error-codes.md."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec
import pytest

from autotune.catalog import Catalog, ModelSpec, load_catalog
from autotune.settings import TuningSettings
from autotune.validation import DatasetSource, ErrorCode, validate_dataset, validate_for_model
from autotune.validation.code_info import CODE_INFO
from autotune.validation.codes import CODE_FACTS

ROOT = Path(__file__).resolve().parents[2]


def model_of(catalog: Catalog, name: str) -> ModelSpec:
    found = catalog.get(name)
    assert found is not None, f"{name} is not in the catalog"
    return found


def turn(role: str, text: str) -> dict:
    return {"role": role, "parts": [{"text": text}]}


def example(i: int = 0) -> dict:
    return {"contents": [turn("user", f"Question number {i}?"), turn("model", f"Answer {i}.")]}


def legacy(i: int = 0) -> dict:
    return {
        "messages": [
            {"role": "user", "content": f"Question {i}?"},
            {"role": "model", "content": f"Answer {i}."},
        ]
    }


def jsonl(rows: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def padded(rows: list, make=example) -> bytes:
    """The rows, then enough distinct valid examples to pass the example-count rules."""
    return jsonl(rows + [make(1000 + i) for i in range(120)])


def fd(mime: str, uri: str) -> dict:
    return {"fileData": {"mimeType": mime, "fileUri": uri}}


def media_example(*parts: dict) -> dict:
    return {
        "contents": [
            {"role": "user", "parts": [*parts, {"text": "Describe it."}]},
            turn("model", "A picture."),
        ]
    }


class FakeInspector:
    """An in-memory MediaInspector: the component under test is the validator, not storage."""

    def __init__(self, sizes: dict[str, int | None]) -> None:
        self.sizes = sizes
        self.calls: list[list[str]] = []

    def stat(self, uris):
        self.calls.append(sorted(uris))
        return {u: self.sizes.get(u) for u in uris}


def run(data: bytes, model: str = "gemini-3.5-flash", **kwargs):
    """confirm: facts of the model the shipped catalog lists as unconfirmed, taken as confirmed
    here (an unconfirmed fact only warns: test_unconfirmed_limits.py)."""
    settings = kwargs.pop("settings", None) or TuningSettings(model=model, epochs=3)
    validation = kwargs.pop("validation", None)
    size = kwargs.pop("size", None)
    confirm = kwargs.pop("confirm", ())
    training = DatasetSource("train.jsonl", [data], size)
    validation = None if validation is None else DatasetSource("val.jsonl", [validation])
    if not confirm:
        return validate_dataset(training, settings=settings, validation=validation, **kwargs)
    catalog = load_catalog()
    spec = model_of(catalog, settings.model)
    assert set(confirm) <= set(spec.unconfirmed), "confirm only what the shipped catalog does not"
    spec = msgspec.structs.replace(
        spec, unconfirmed=tuple(f for f in spec.unconfirmed if f not in confirm)
    )
    return validate_for_model(
        training, settings=settings, model=spec, catalog=catalog, validation=validation, **kwargs
    )


IMG = "gs://data-bucket/img/cat.png"
VID = "gs://data-bucket/vid/harbour.mp4"
CALL = {"functionCall": {"name": "get_weather", "args": {"city": "Lisbon"}}}

# code -> (kwargs for run, expected line of the first occurrence or None)
CASES: dict[ErrorCode, tuple[dict, int | None]] = {
    ErrorCode.EMPTY_FILE: ({"data": b""}, None),
    ErrorCode.FILE_TOO_LARGE: ({"data": padded([]), "size": 2 * 1024**3}, None),
    ErrorCode.TOO_FEW_EXAMPLES: (
        {"data": jsonl([example(i) for i in range(15)]), "model": "gemini-1.5-flash-002"},
        None,
    ),
    ErrorCode.FEW_EXAMPLES: ({"data": jsonl([example(i) for i in range(16)])}, None),
    ErrorCode.VALIDATION_TOO_MANY_EXAMPLES: (
        {
            "data": padded([]),
            "model": "gemini-1.5-flash-002",
            "validation": jsonl([example(i) for i in range(257)]),
        },
        None,
    ),
    ErrorCode.MIXED_FORMATS: ({"data": padded([legacy(1)])}, None),
    ErrorCode.CRLF_LINE_ENDINGS: ({"data": padded([]).replace(b"\n", b"\r\n")}, None),
    ErrorCode.INVALID_UTF8: ({"data": padded([b'{"contents": "caf\xe9"}'])}, 1),
    ErrorCode.BYTE_ORDER_MARK: ({"data": b"\xef\xbb\xbf" + padded([])}, 1),
    ErrorCode.BLANK_LINE: ({"data": padded([example(1), b"", example(2)])}, 2),
    ErrorCode.LINE_TOO_LONG: ({"data": padded([b'{"contents": "' + b"x" * (9 << 20) + b'"}'])}, 1),
    ErrorCode.INVALID_JSON: ({"data": padded([b'{"contents": [{"role": "user",'])}, 1),
    ErrorCode.NOT_AN_OBJECT: ({"data": padded([["Hi", "Hello"]])}, 1),
    ErrorCode.UNKNOWN_FIELD: ({"data": padded([{**example(1), "label": "spam"}])}, 1),
    ErrorCode.MISSING_CONTENTS: (
        {"data": padded([{"systemInstruction": {"parts": [{"text": "Be brief."}]}}])},
        1,
    ),
    ErrorCode.EMPTY_CONTENTS: ({"data": padded([{"contents": []}])}, 1),
    ErrorCode.INVALID_ROLE: (
        {"data": padded([{"contents": [turn("assistant", "Hi"), turn("model", "Hello")]}])},
        1,
    ),
    ErrorCode.ROLES_NOT_ALTERNATING: (
        {
            "data": padded(
                [{"contents": [turn("user", "a"), turn("user", "b"), turn("model", "c")]}]
            )
        },
        1,
    ),
    ErrorCode.FIRST_TURN_NOT_USER: (
        {
            "data": padded(
                [{"contents": [turn("model", "a"), turn("user", "b"), turn("model", "c")]}]
            )
        },
        1,
    ),
    ErrorCode.LAST_TURN_NOT_MODEL: ({"data": padded([{"contents": [turn("user", "a")]}])}, 1),
    ErrorCode.MISSING_PARTS: (
        {"data": padded([{"contents": [{"role": "user", "text": "Hi"}, turn("model", "b")]}])},
        1,
    ),
    ErrorCode.EMPTY_PARTS: (
        {"data": padded([{"contents": [{"role": "user", "parts": []}, turn("model", "b")]}])},
        1,
    ),
    ErrorCode.INVALID_PART: (
        {
            "data": padded(
                [{"contents": [{"role": "user", "parts": [{"txt": "Hi"}]}, turn("model", "b")]}]
            )
        },
        1,
    ),
    ErrorCode.EMPTY_TEXT: (
        {"data": padded([{"contents": [turn("user", "  "), turn("model", "b")]}])},
        1,
    ),
    ErrorCode.SYSTEM_NOT_FIRST: (
        {
            "data": padded(
                [
                    {
                        "messages": [
                            {"role": "user", "content": "a"},
                            {"role": "system", "content": "s"},
                            {"role": "model", "content": "b"},
                        ]
                    }
                ],
                make=legacy,
            ),
            "model": "gemini-1.0-pro-002",
        },
        1,
    ),
    ErrorCode.INLINE_DATA_UNSUPPORTED: (
        {
            "data": padded(
                [media_example({"inlineData": {"mimeType": "image/png", "data": "iVBOR"}})]
            )
        },
        1,
    ),
    ErrorCode.UNSUPPORTED_MODALITY: (
        {
            "data": padded([media_example(fd("image/png", IMG))], make=legacy),
            "model": "gemini-1.0-pro-002",
        },
        1,
    ),
    ErrorCode.UNSUPPORTED_MIME_TYPE: (
        {"data": padded([media_example(fd("image/gif", "gs://data-bucket/a.gif"))])},
        1,
    ),
    ErrorCode.MEDIA_OUTSIDE_USER_TURN: (
        {
            "data": padded(
                [
                    {
                        "contents": [
                            turn("user", "Draw"),
                            {"role": "model", "parts": [fd("image/png", IMG)]},
                        ]
                    }
                ]
            )
        },
        1,
    ),
    ErrorCode.INVALID_VIDEO_METADATA: (
        {
            "data": padded(
                [
                    media_example(
                        {
                            **fd("video/mp4", VID),
                            "videoMetadata": {"startOffset": "9s", "endOffset": "2s"},
                        }
                    )
                ]
            )
        },
        1,
    ),
    ErrorCode.INVALID_MEDIA_RESOLUTION: (
        {
            "data": padded(
                [
                    {
                        **media_example(fd("image/png", IMG)),
                        "generationConfig": {"mediaResolution": "LOW"},
                    }
                ]
            )
        },
        1,
    ),
    ErrorCode.INVALID_TOOLS: (
        {"data": padded([{**example(1), "tools": {"functionDeclarations": []}}])},
        1,
    ),
    ErrorCode.FUNCTION_PART_WRONG_ROLE: (
        {"data": padded([{"contents": [{"role": "user", "parts": [CALL]}, turn("model", "ok")]}])},
        1,
    ),
    ErrorCode.FUNCTION_CALLING_UNSUPPORTED: (
        {
            "data": padded(
                [{"contents": [turn("user", "Weather?"), {"role": "model", "parts": [CALL]}]}]
            ),
            "model": "gemini-2.5-flash",
        },
        1,
    ),
    ErrorCode.MIXED_MEDIA_RESOLUTIONS: (
        {
            "data": padded(
                [
                    {
                        **media_example(fd("image/png", IMG)),
                        "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"},
                    },
                    {
                        **media_example(fd("image/png", IMG)),
                        "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_HIGH"},
                    },
                ]
            ),
            "model": "gemini-2.5-flash",
        },
        None,
    ),
    ErrorCode.VALIDATION_OVER_TRAINING_FRACTION: (
        {
            "data": padded([]),
            "validation": jsonl([example(5000 + i) for i in range(1001)]),
            "confirm": ("validation_fraction", "validation_fraction_over"),
        },
        None,
    ),
    ErrorCode.INVALID_FILE_URI: (
        {"data": padded([media_example(fd("image/png", "/home/me/cat.png"))])},
        1,
    ),
    ErrorCode.FILE_URI_NOT_ALLOWED: (
        {
            "data": padded([media_example(fd("image/png", "gs://other-bucket/cat.png"))]),
            "dataset_bucket": "data-bucket",
        },
        1,
    ),
    ErrorCode.FILE_NOT_FOUND: (
        {
            "data": padded([media_example(fd("image/png", IMG))]),
            "media": FakeInspector({IMG: None}),
        },
        1,
    ),
    ErrorCode.MEDIA_TOO_LARGE: (
        {
            "data": padded([media_example(fd("image/png", IMG))]),
            "media": FakeInspector({IMG: 25_000_000}),
        },
        1,
    ),
    ErrorCode.TOO_MANY_MEDIA: (
        {"data": padded([media_example(*(fd("image/png", f"gs://b/{i}.png") for i in range(31)))])},
        1,
    ),
    ErrorCode.TOKEN_LIMIT_EXCEEDED: (
        {
            "data": padded([{"contents": [turn("user", "x " * 150_000), turn("model", "ok")]}]),
            "model": "gemini-1.5-pro-002",
        },
        1,
    ),
    ErrorCode.TOKEN_LIMIT_RISK: (
        {
            "data": padded([{"contents": [turn("user", "x " * 60_000), turn("model", "ok")]}]),
            "model": "gemini-1.5-pro-002",
        },
        1,
    ),
    ErrorCode.DUPLICATE_EXAMPLE: ({"data": padded([example(1), example(2), example(1)])}, 3),
    ErrorCode.UNSUPPORTED_MODEL: ({"data": padded([]), "model": "gemini-9-ultra"}, None),
    ErrorCode.MODEL_RETIRED: ({"data": padded([]), "model": "gemini-1.5-flash-002"}, None),
    ErrorCode.INVALID_ADAPTER_SIZE: (
        {
            "data": padded([]),
            "settings": TuningSettings(model="gemini-1.5-pro-002", epochs=3, adapter_size=16),
        },
        None,
    ),
    ErrorCode.INVALID_EPOCHS: (
        {"data": padded([]), "settings": TuningSettings(model="gemini-3.5-flash", epochs="zero")},
        None,
    ),
    ErrorCode.INVALID_LEARNING_RATE_MULTIPLIER: (
        {
            "data": padded([]),
            "settings": TuningSettings(
                model="gemini-3.5-flash", epochs=3, learning_rate_multiplier=-1.0
            ),
        },
        None,
    ),
    ErrorCode.UNSUPPORTED_REGION: (
        {
            "data": padded([]),
            "settings": TuningSettings(model="gemini-3.5-flash", epochs=3, region="us-west1"),
        },
        None,
    ),
}


ELSEWHERE = {
    ErrorCode.TOO_MANY_EXAMPLES,
    ErrorCode.TOO_MANY_MULTIMODAL_EXAMPLES,
    ErrorCode.MEDIA_TOO_LONG,
    ErrorCode.TOO_MANY_DROPPED_EXAMPLES,
    ErrorCode.VIDEO_DURATION_UNREADABLE,
}


def test_every_code_has_a_case():
    assert set(CASES) | ELSEWHERE == set(ErrorCode)


@pytest.mark.parametrize("code", list(CASES), ids=lambda c: c.value)
def test_code_is_reported(code: ErrorCode):
    kwargs, line = CASES[code]
    kwargs = dict(kwargs)
    report = run(kwargs.pop("data"), **kwargs)
    found = [i for i in report.errors if i.code == code.value]
    assert found, f"{code.value} not in {report.counts}"
    assert found[0].line == line
    assert found[0].severity == code.severity
    assert found[0].message
    assert report.valid == (report.error_count == 0)
    if code.severity == "error":
        assert not report.valid


def test_too_many_examples_with_a_model_that_has_a_maximum():
    catalog = load_catalog()
    model = msgspec.structs.replace(model_of(catalog, "gemini-3.5-flash"), max_training_examples=20)
    report = validate_for_model(
        DatasetSource("t.jsonl", [jsonl([example(i) for i in range(21)])]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=1),
        model=model,
        catalog=catalog,
    )
    assert report.counts.get("too_many_examples") == 1


def test_a_valid_file_has_no_errors_and_only_expected_warnings():
    report = run(padded([]))
    assert report.valid and report.error_count == 0 and report.counts == {}


def test_every_code_is_documented_with_its_severity_and_example():
    doc = (ROOT / "docs" / "error-codes.md").read_text(encoding="utf-8")
    for code in ErrorCode:
        match = re.search(rf"^### `{code.value}`.*$", doc, re.M)
        assert match, f"{code.value} missing from docs/error-codes.md"
        assert code.severity in match.group(0)
        assert code.meaning in doc, f"docs/error-codes.md has a stale meaning for {code.value}"
    assert set(CODE_INFO) == set(ErrorCode)


def test_every_code_resting_on_a_catalog_fact_says_so_in_the_docs():
    doc = (ROOT / "docs" / "error-codes.md").read_text(encoding="utf-8")
    assert "## Limits that rest on unconfirmed facts" in doc
    for code, facts in CODE_FACTS.items():
        start = doc.index(f"### `{code.value}`")
        end = doc.find("\n#", start + 1)
        section = doc[start : end if end != -1 else len(doc)]
        assert "Rests on" in section, (
            f"docs/error-codes.md: {code.value} does not say what it rests on"
        )
        for fact in facts:
            assert f"`{fact}`" in section, f"docs/error-codes.md: {code.value} does not name {fact}"


def test_too_many_multimodal_examples_with_a_model_whose_multimodal_maximum_is_small():
    catalog = load_catalog()
    model = model_of(catalog, "gemini-3.5-flash")
    model = msgspec.structs.replace(  # taken as confirmed: the shipped maximum is not (test_unconfirmed_limits.py)
        model,
        max_training_examples_multimodal=2,
        unconfirmed=tuple(f for f in model.unconfirmed if f != "max_training_examples_multimodal"),
    )
    data = padded([media_example(fd("image/png", f"gs://data-bucket/{i}.png")) for i in range(3)])
    report = validate_for_model(
        DatasetSource("train.jsonl", [data]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=3),
        model=model,
        catalog=catalog,
    )
    assert report.counts.get("too_many_multimodal_examples") == 1 and not report.valid
    assert "too_many_examples" not in report.counts  # 123 examples in all is far below 10 million


def test_media_too_long_when_the_catalog_knows_the_limit_and_the_line_the_length():
    catalog = load_catalog()
    video = msgspec.structs.replace(
        catalog.media["video"], max_seconds_by_resolution={"default": 60, "low": 600}
    )
    catalog = msgspec.structs.replace(catalog, media={**catalog.media, "video": video})

    def clip(end, res=None):
        return {
            **media_example(
                {**fd("video/mp4", VID), "videoMetadata": {"startOffset": "0s", "endOffset": end}}
            ),
            **({"generationConfig": {"mediaResolution": res}} if res else {}),
        }

    report = validate_for_model(
        DatasetSource(
            "train.jsonl",
            [padded([clip("61s"), clip("59.5s"), clip("300s", "MEDIA_RESOLUTION_LOW")])],
        ),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=3),
        model=catalog.get("gemini-3.5-flash"),
        catalog=catalog,
    )
    assert [i.line for i in report.errors if i.code == "media_too_long"] == [1]


def video_clip(end: str | None, resolution: str | None = None, uri: str = VID) -> dict:
    part = fd("video/mp4", uri)
    if end is not None:
        part["videoMetadata"] = {"startOffset": "0s", "endOffset": end}
    row = media_example(part)
    if resolution:
        row["generationConfig"] = {"mediaResolution": resolution}
    return row


def test_video_length_limits_are_the_documented_ones_and_only_warn():
    rows = [
        video_clip("301s", "MEDIA_RESOLUTION_MEDIUM"),  # over 5 minutes
        video_clip("300s", "MEDIA_RESOLUTION_HIGH"),  # exactly 5 minutes
        video_clip("1199s", "MEDIA_RESOLUTION_LOW"),  # under 20 minutes
        video_clip("1201s", "MEDIA_RESOLUTION_LOW"),
        video_clip("301s", "MEDIA_RESOLUTION_ULTRA_HIGH"),  # read as high
        video_clip("400s"),  # no media resolution: no documented maximum
    ]
    report = run(padded(rows), model="gemini-3.5-flash")
    long = [i for i in report.errors if i.code == "media_too_long"]
    assert [(i.line, i.severity) for i in long] == [(1, "warning"), (4, "warning"), (5, "warning")]
    assert "at most 300 s" in long[0].message and "drops this example" in long[0].message
    assert long[0].field == "contents[0].parts[0].fileData.fileUri"
    assert "at most 1,200 s" in long[1].message
    assert "too_many_dropped_examples" not in report.counts  # 3 of 126 examples
    assert report.valid


def test_more_than_a_tenth_of_a_file_dropped_for_video_length_is_an_error():
    def rows(over: int, total: int) -> bytes:
        clips = [
            video_clip("400s", "MEDIA_RESOLUTION_MEDIUM", f"gs://data-bucket/v{i}.mp4")
            for i in range(over)
        ]
        return jsonl(
            clips
            + [
                video_clip("10s", "MEDIA_RESOLUTION_MEDIUM", f"gs://data-bucket/ok{i}.mp4")
                for i in range(total - over)
            ]
        )

    at_limit = run(rows(12, 120), dataset_bucket="data-bucket")  # 10% exactly: the job still runs
    assert (
        at_limit.counts.get("media_too_long") == 12
        and "too_many_dropped_examples" not in at_limit.counts
    )
    over = run(rows(13, 120), dataset_bucket="data-bucket")
    dropped = [i for i in over.errors if i.code == "too_many_dropped_examples"]
    assert [(i.file, i.line, i.severity) for i in dropped] == [("train", None, "error")]
    assert "13 of 120" in dropped[0].message and not over.valid


def ranged_reads(data: bytes) -> Callable[[int, int], bytes]:
    return lambda offset, count: data[offset : offset + count]


class VideoStore:
    """In-memory objects with real bytes: stat gives their sizes, durations reads each video's
    header through the real parser with ranged reads of the stored bytes."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.asked: list[str] = []

    def stat(self, uris):
        return {u: (len(self.objects[u]) if u in self.objects else None) for u in uris}

    def durations(
        self, videos: Mapping[str, tuple[str, int]]
    ) -> dict[str, float | None | Exception]:
        from autotune.validation.video_header import VideoHeaderError, video_duration

        out: dict[str, float | None | Exception] = {}
        for uri, (mime, size) in videos.items():
            self.asked.append(uri)
            try:
                out[uri] = video_duration(ranged_reads(self.objects[uri]), size, mime)
            except VideoHeaderError as exc:
                out[uri] = exc
        return out


def test_check_files_reads_each_video_length_from_its_header():
    from video_files import mp4

    short, long, broken, clipped = (
        f"gs://data-bucket/{n}.mp4" for n in ("short", "long", "broken", "clipped")
    )
    store = VideoStore(
        {short: mp4(42), long: mp4(400, moov_first=False), broken: mp4(42)[:40], clipped: mp4(4000)}
    )
    rows = [
        video_clip(None, "MEDIA_RESOLUTION_MEDIUM", short),
        video_clip(None, "MEDIA_RESOLUTION_MEDIUM", long),
        video_clip(None, "MEDIA_RESOLUTION_MEDIUM", broken),
        video_clip(
            "30s", "MEDIA_RESOLUTION_MEDIUM", clipped
        ),  # the clip's own length counts, not the file's
        video_clip(
            None, "MEDIA_RESOLUTION_LOW", long
        ),  # 400 s is within the 20 minutes of low resolution
    ]
    rows += [
        video_clip("10s", "MEDIA_RESOLUTION_MEDIUM", f"gs://data-bucket/ok{i}.mp4")
        for i in range(120)
    ]
    store.objects.update({f"gs://data-bucket/ok{i}.mp4": mp4(10) for i in range(120)})
    report = run(jsonl(rows), media=store, dataset_bucket="data-bucket")
    assert sorted(store.asked) == sorted([short, long, broken])
    long_lines = [
        (i.line, i.field, i.severity) for i in report.errors if i.code == "media_too_long"
    ]
    assert long_lines == [(2, "contents[0].parts[0].fileData.fileUri", "warning")]
    unreadable = [i for i in report.errors if i.code == "video_duration_unreadable"]
    assert [(i.line, i.field, i.severity) for i in unreadable] == [
        (3, "contents[0].parts[0].fileData.fileUri", "warning")
    ]
    assert "truncated" in unreadable[0].message and broken in unreadable[0].message
    assert report.valid and report.stats["media"]["video_durations_read"] == 2


def test_videos_over_the_limit_found_in_headers_count_towards_the_dropped_tenth():
    from video_files import mp4

    store = VideoStore(
        {f"gs://data-bucket/v{i}.mp4": mp4(400 if i < 20 else 60) for i in range(120)}
    )
    rows = [
        video_clip(None, "MEDIA_RESOLUTION_MEDIUM", f"gs://data-bucket/v{i}.mp4")
        for i in range(120)
    ]
    report = run(jsonl(rows), media=store, dataset_bucket="data-bucket")
    assert (
        report.counts["media_too_long"] == 20
        and report.counts.get("too_many_dropped_examples") == 1
    )
    assert not report.valid
    without = run(jsonl(rows), dataset_bucket="data-bucket")  # no --check-files: lengths unknown
    assert "media_too_long" not in without.counts and without.valid


def test_every_intake_code_is_documented_with_an_example():
    from autotune.intake import rejections

    doc = (ROOT / "docs" / "error-codes.md").read_text(encoding="utf-8")
    intake = doc.split("## Pipeline intake codes", 1)[1]
    codes = [
        rejections.INVALID_MANIFEST,
        rejections.OBJECT_NOT_FOUND,
        rejections.CONTENT_ENCODED,
        rejections.UNUSABLE_TEXT,
        rejections.MEDIA_IS_PIPELINE_OBJECT,
        rejections.INVALID_VALIDATION_SPLIT,
    ]
    for code in codes:
        section = re.search(rf"^### `{code}` \(error\)\n(.*?)(?=^### |\Z)", intake, re.M | re.S)
        assert section, f"{code} missing from the intake codes of docs/error-codes.md"
        assert "```" in section.group(1), f"{code} has no example"
