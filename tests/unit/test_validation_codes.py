"""Every error code has a case of its own: a small input that produces it, checked by code,
line and severity. Also: every code is documented in docs/error-codes.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest

from autotune.catalog import load_catalog
from autotune.settings import TuningSettings
from autotune.validation import DatasetSource, ErrorCode, validate_dataset, validate_for_model
from autotune.validation.codes import CODE_INFO

ROOT = Path(__file__).resolve().parents[2]


def turn(role: str, text: str) -> dict:
    return {"role": role, "parts": [{"text": text}]}


def example(i: int = 0) -> dict:
    return {"contents": [turn("user", f"Question number {i}?"), turn("model", f"Answer {i}.")]}


def legacy(i: int = 0) -> dict:
    return {"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "model", "content": f"Answer {i}."}]}


def jsonl(rows: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def padded(rows: list, make=example) -> bytes:
    """The rows, then enough distinct valid examples to pass the example-count rules."""
    return jsonl(rows + [make(1000 + i) for i in range(120)])


def fd(mime: str, uri: str) -> dict:
    return {"fileData": {"mimeType": mime, "fileUri": uri}}


def media_example(*parts: dict) -> dict:
    return {"contents": [{"role": "user", "parts": [*parts, {"text": "Describe it."}]}, turn("model", "A picture.")]}


class FakeInspector:
    """An in-memory MediaInspector: the component under test is the validator, not storage."""

    def __init__(self, sizes: dict[str, int | None]) -> None:
        self.sizes = sizes
        self.calls: list[list[str]] = []

    def stat(self, uris):
        self.calls.append(sorted(uris))
        return {u: self.sizes.get(u) for u in uris}


def run(data: bytes, model: str = "gemini-3.5-flash", **kwargs):
    settings = kwargs.pop("settings", None) or TuningSettings(model=model, epochs=3)
    validation = kwargs.pop("validation", None)
    size = kwargs.pop("size", None)
    return validate_dataset(
        DatasetSource("train.jsonl", [data], size),
        settings=settings,
        validation=None if validation is None else DatasetSource("val.jsonl", [validation]),
        **kwargs,
    )


IMG = "gs://data-bucket/img/cat.png"
VID = "gs://data-bucket/vid/harbour.mp4"
CALL = {"functionCall": {"name": "get_weather", "args": {"city": "Lisbon"}}}

# code -> (kwargs for run, expected line of the first occurrence or None)
CASES: dict[ErrorCode, tuple[dict, int | None]] = {
    ErrorCode.EMPTY_FILE: ({"data": b""}, None),
    ErrorCode.FILE_TOO_LARGE: ({"data": padded([]), "size": 2 * 1024**3}, None),
    ErrorCode.TOO_FEW_EXAMPLES: ({"data": jsonl([example(i) for i in range(15)]), "model": "gemini-1.5-flash-002"}, None),
    ErrorCode.FEW_EXAMPLES: ({"data": jsonl([example(i) for i in range(16)])}, None),
    ErrorCode.VALIDATION_TOO_MANY_EXAMPLES: (
        {"data": padded([]), "model": "gemini-1.5-flash-002", "validation": jsonl([example(i) for i in range(257)])},
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
    ErrorCode.MISSING_CONTENTS: ({"data": padded([{"systemInstruction": {"parts": [{"text": "Be brief."}]}}])}, 1),
    ErrorCode.EMPTY_CONTENTS: ({"data": padded([{"contents": []}])}, 1),
    ErrorCode.INVALID_ROLE: ({"data": padded([{"contents": [turn("assistant", "Hi"), turn("model", "Hello")]}])}, 1),
    ErrorCode.ROLES_NOT_ALTERNATING: (
        {"data": padded([{"contents": [turn("user", "a"), turn("user", "b"), turn("model", "c")]}])}, 1),
    ErrorCode.FIRST_TURN_NOT_USER: (
        {"data": padded([{"contents": [turn("model", "a"), turn("user", "b"), turn("model", "c")]}])}, 1),
    ErrorCode.LAST_TURN_NOT_MODEL: ({"data": padded([{"contents": [turn("user", "a")]}])}, 1),
    ErrorCode.MISSING_PARTS: ({"data": padded([{"contents": [{"role": "user", "text": "Hi"}, turn("model", "b")]}])}, 1),
    ErrorCode.EMPTY_PARTS: ({"data": padded([{"contents": [{"role": "user", "parts": []}, turn("model", "b")]}])}, 1),
    ErrorCode.INVALID_PART: (
        {"data": padded([{"contents": [{"role": "user", "parts": [{"txt": "Hi"}]}, turn("model", "b")]}])}, 1),
    ErrorCode.EMPTY_TEXT: ({"data": padded([{"contents": [turn("user", "  "), turn("model", "b")]}])}, 1),
    ErrorCode.SYSTEM_NOT_FIRST: (
        {
            "data": padded(
                [{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"},
                               {"role": "model", "content": "b"}]}],
                make=legacy,
            ),
            "model": "gemini-1.0-pro-002",
        },
        1,
    ),
    ErrorCode.INLINE_DATA_UNSUPPORTED: (
        {"data": padded([media_example({"inlineData": {"mimeType": "image/png", "data": "iVBOR"}})])}, 1),
    ErrorCode.UNSUPPORTED_MODALITY: (
        {"data": padded([media_example(fd("image/png", IMG))], make=legacy), "model": "gemini-1.0-pro-002"}, 1),
    ErrorCode.UNSUPPORTED_MIME_TYPE: ({"data": padded([media_example(fd("image/gif", "gs://data-bucket/a.gif"))])}, 1),
    ErrorCode.MEDIA_OUTSIDE_USER_TURN: (
        {"data": padded([{"contents": [turn("user", "Draw"), {"role": "model", "parts": [fd("image/png", IMG)]}]}])}, 1),
    ErrorCode.INVALID_VIDEO_METADATA: (
        {"data": padded([media_example({**fd("video/mp4", VID), "videoMetadata": {"startOffset": "9s", "endOffset": "2s"}})])}, 1),
    ErrorCode.INVALID_MEDIA_RESOLUTION: (
        {"data": padded([{**media_example(fd("image/png", IMG)), "generationConfig": {"mediaResolution": "LOW"}}])}, 1),
    ErrorCode.INVALID_TOOLS: ({"data": padded([{**example(1), "tools": {"functionDeclarations": []}}])}, 1),
    ErrorCode.FUNCTION_PART_WRONG_ROLE: (
        {"data": padded([{"contents": [{"role": "user", "parts": [CALL]}, turn("model", "ok")]}])}, 1),
    ErrorCode.FUNCTION_CALLING_UNSUPPORTED: (
        {"data": padded([{"contents": [turn("user", "Weather?"), {"role": "model", "parts": [CALL]}]}]),
         "model": "gemini-2.5-flash"}, 1),
    ErrorCode.MIXED_MEDIA_RESOLUTIONS: (
        {"data": padded([
            {**media_example(fd("image/png", IMG)), "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"}},
            {**media_example(fd("image/png", IMG)), "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_HIGH"}},
        ]), "model": "gemini-2.5-flash"}, None),
    ErrorCode.VALIDATION_OVER_TRAINING_FRACTION: (
        {"data": padded([]), "validation": jsonl([example(5000 + i) for i in range(1001)])}, None),
    ErrorCode.INVALID_FILE_URI: ({"data": padded([media_example(fd("image/png", "/home/me/cat.png"))])}, 1),
    ErrorCode.FILE_URI_NOT_ALLOWED: (
        {"data": padded([media_example(fd("image/png", "gs://other-bucket/cat.png"))]), "dataset_bucket": "data-bucket"}, 1),
    ErrorCode.FILE_NOT_FOUND: (
        {"data": padded([media_example(fd("image/png", IMG))]), "media": FakeInspector({IMG: None})}, 1),
    ErrorCode.MEDIA_TOO_LARGE: (
        {"data": padded([media_example(fd("image/png", IMG))]), "media": FakeInspector({IMG: 25_000_000})}, 1),
    ErrorCode.TOO_MANY_MEDIA: (
        {"data": padded([media_example(fd("audio/mpeg", "gs://b/a.mp3"), fd("audio/mpeg", "gs://b/b.mp3"))])}, 1),
    ErrorCode.TOKEN_LIMIT_EXCEEDED: (
        {"data": padded([{"contents": [turn("user", "x " * 150_000), turn("model", "ok")]}]), "model": "gemini-1.5-pro-002"},
        1,
    ),
    ErrorCode.TOKEN_LIMIT_RISK: (
        {"data": padded([{"contents": [turn("user", "x " * 60_000), turn("model", "ok")]}]), "model": "gemini-1.5-pro-002"},
        1,
    ),
    ErrorCode.DUPLICATE_EXAMPLE: ({"data": padded([example(1), example(2), example(1)])}, 3),
    ErrorCode.UNSUPPORTED_MODEL: ({"data": padded([]), "model": "gemini-9-ultra"}, None),
    ErrorCode.MODEL_RETIRED: ({"data": padded([]), "model": "gemini-1.5-flash-002"}, None),
    ErrorCode.INVALID_ADAPTER_SIZE: (
        {"data": padded([]), "settings": TuningSettings(model="gemini-1.5-pro-002", epochs=3, adapter_size=16)}, None),
    ErrorCode.INVALID_EPOCHS: ({"data": padded([]), "settings": TuningSettings(model="gemini-3.5-flash", epochs="zero")}, None),
    ErrorCode.INVALID_LEARNING_RATE_MULTIPLIER: (
        {"data": padded([]), "settings": TuningSettings(model="gemini-3.5-flash", epochs=3, learning_rate_multiplier=-1.0)},
        None,
    ),
    ErrorCode.UNSUPPORTED_REGION: (
        {"data": padded([]), "settings": TuningSettings(model="gemini-3.5-flash", epochs=3, region="us-west1")}, None),
}


ELSEWHERE = {ErrorCode.TOO_MANY_EXAMPLES, ErrorCode.TOO_MANY_MULTIMODAL_EXAMPLES, ErrorCode.MEDIA_TOO_LONG}


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
    model = msgspec.structs.replace(catalog.get("gemini-3.5-flash"), max_training_examples=20)
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


def test_too_many_multimodal_examples_with_a_model_whose_multimodal_maximum_is_small():
    catalog = load_catalog()
    model = msgspec.structs.replace(catalog.get("gemini-3.5-flash"), max_training_examples_multimodal=2)
    data = padded([media_example(fd("image/png", f"gs://data-bucket/{i}.png")) for i in range(3)])
    report = validate_for_model(
        DatasetSource("train.jsonl", [data]), settings=TuningSettings(model="gemini-3.5-flash", epochs=3),
        model=model, catalog=catalog,
    )
    assert report.counts.get("too_many_multimodal_examples") == 1 and not report.valid
    assert "too_many_examples" not in report.counts  # 123 examples in all is far below 10 million


def test_media_too_long_when_the_catalog_knows_the_limit_and_the_line_the_length():
    catalog = load_catalog()
    video = msgspec.structs.replace(catalog.media["video"], max_seconds_by_resolution={"default": 60, "low": 600})
    catalog = msgspec.structs.replace(catalog, media={**catalog.media, "video": video})

    def clip(end, res=None):
        return {
            **media_example({**fd("video/mp4", VID), "videoMetadata": {"startOffset": "0s", "endOffset": end}}),
            **({"generationConfig": {"mediaResolution": res}} if res else {}),
        }

    report = validate_for_model(
        DatasetSource("train.jsonl", [padded([clip("61s"), clip("59.5s"), clip("300s", "MEDIA_RESOLUTION_LOW")])]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=3), model=catalog.get("gemini-3.5-flash"), catalog=catalog,
    )
    assert [i.line for i in report.errors if i.code == "media_too_long"] == [1]


def test_every_intake_code_is_documented_with_an_example():
    from autotune import dataset_intake

    doc = (ROOT / "docs" / "error-codes.md").read_text(encoding="utf-8")
    intake = doc.split("## Pipeline intake codes", 1)[1]
    codes = [dataset_intake.INVALID_MANIFEST, dataset_intake.OBJECT_NOT_FOUND, dataset_intake.CONTENT_ENCODED,
             dataset_intake.UNUSABLE_TEXT, dataset_intake.MEDIA_IS_PIPELINE_OBJECT, dataset_intake.INVALID_VALIDATION_SPLIT]
    for code in codes:
        section = re.search(rf"^### `{code}` \(error\)\n(.*?)(?=^### |\Z)", intake, re.M | re.S)
        assert section, f"{code} missing from the intake codes of docs/error-codes.md"
        assert "```" in section.group(1), f"{code} has no example"
