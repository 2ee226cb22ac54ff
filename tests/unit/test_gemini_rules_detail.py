"""The Gemini rules' findings pinned to code, field and message, for the parts mutation testing
showed no test looked at: videoMetadata, function-call parts, durations. The message is what a
user reads in the report, so its words are part of the rule."""

from __future__ import annotations

import json

import msgspec
import pytest

from autotune.catalog import load_catalog
from autotune.settings import TuningSettings
from autotune.validation import DatasetSource, gemini_parts, gemini_rules, validate_for_model
from autotune.validation.media_rules import MediaRules

CATALOG = load_catalog()
VIDEO = {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/v.mp4"}}
IMAGE = {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/i.png"}}
PART = "contents[0].parts[0]"


def issues(obj: dict, *, function_calling: bool = True) -> list[tuple[str, str | None, str]]:
    model = CATALOG.get("gemini-3.5-flash")
    assert model is not None
    found: list[tuple[str, str | None, str]] = []
    gemini_rules.full_check(
        obj,
        lambda code, field, message: found.append((str(code), field, message)),
        MediaRules(CATALOG, model, ()),
        model.name,
        function_calling,
    )
    return found


def example(part: dict, role: str = "user") -> dict:
    if role == "user":
        return {
            "contents": [
                {"role": "user", "parts": [part, {"text": "x"}]},
                {"role": "model", "parts": [{"text": "y"}]},
            ]
        }
    return {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}, {"role": "model", "parts": [part]}]
    }


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        (
            {**IMAGE, "videoMetadata": {"startOffset": "1s"}},
            [
                (
                    "invalid_video_metadata",
                    f"{PART}.videoMetadata",
                    "videoMetadata belongs on a video, not on a image",
                )
            ],
        ),
        (
            {**VIDEO, "videoMetadata": [1]},
            [
                (
                    "invalid_video_metadata",
                    f"{PART}.videoMetadata",
                    "videoMetadata must be an object, got list",
                )
            ],
        ),
        (
            {
                **VIDEO,
                "videoMetadata": {"start_offset": "1s", "end_offset": "2.5s", "fps": 2, "speed": 1},
            },
            [
                (
                    "unknown_field",
                    f"{PART}.videoMetadata.speed",
                    "videoMetadata has startOffset and endOffset, not 'speed'",
                )
            ],
        ),
        (
            {**VIDEO, "videoMetadata": {"startOffset": "5s", "endOffset": "2s"}},
            [
                (
                    "invalid_video_metadata",
                    f"{PART}.videoMetadata",
                    "startOffset (5s) must be before endOffset (2s)",
                )
            ],
        ),
        (
            {**VIDEO, "videoMetadata": {"startOffset": "2s", "endOffset": "2s"}},
            [
                (
                    "invalid_video_metadata",
                    f"{PART}.videoMetadata",
                    "startOffset (2s) must be before endOffset (2s)",
                )
            ],
        ),
        (
            {**VIDEO, "videoMetadata": {"end_offset": "five"}},
            [
                (
                    "invalid_video_metadata",
                    f"{PART}.videoMetadata.end_offset",
                    'end_offset is "five"; expected a duration such as "5s" or "1.5s"',
                )
            ],
        ),
        ({**VIDEO, "videoMetadata": {"startOffset": "1s", "endOffset": "3s", "fps": 1}}, []),
    ],
)
def test_video_metadata_findings(part, expected):
    assert issues(example(part)) == expected


def test_clip_length_counts_snake_case_offsets_and_an_end_alone():
    video = msgspec.structs.replace(
        CATALOG.media["video"], max_seconds_by_resolution={"default": 60}
    )
    catalog = msgspec.structs.replace(CATALOG, media={**CATALOG.media, "video": video})

    def clip(metadata: dict) -> dict:
        return example(
            {
                **{"fileData": {"mimeType": "video/mp4", "fileUri": "gs://data-bucket/v.mp4"}},
                "videoMetadata": metadata,
            }
        )

    rows = [
        clip({"start_offset": "0s", "end_offset": "61s"}),  # 61 s: too long
        clip({"start_offset": "10s", "end_offset": "61s"}),  # 51 s
        clip({"endOffset": "61s"}),  # from 0: too long
        clip({"startOffset": "30s", "endOffset": "90.5s"}),  # 60.5 s: too long
        clip({"startOffset": "30.5s", "endOffset": "90.5s"}),  # 60 s exactly
    ]
    padding = [
        {
            "contents": [
                {"role": "user", "parts": [{"text": f"Q{i}?"}]},
                {"role": "model", "parts": [{"text": f"A{i}."}]},
            ]
        }
        for i in range(120)
    ]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows + padding)
    report = validate_for_model(
        DatasetSource("train.jsonl", [data]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=3),
        model=catalog.get("gemini-3.5-flash"),
        catalog=catalog,
    )
    assert [i.line for i in report.errors if i.code == "media_too_long"] == [1, 3, 4]


@pytest.mark.parametrize(
    ("part", "role", "function_calling", "expected"),
    [
        (
            {"functionCall": {"name": "f", "args": {}}},
            "user",
            True,
            [
                (
                    "function_part_wrong_role",
                    f"{PART}.functionCall",
                    "a functionCall is the model's: it belongs in a model turn",
                )
            ],
        ),
        ({"functionCall": {"name": "f", "args": {}}}, "model", True, []),
        ({"functionResponse": {"name": "f", "response": {}}}, "user", True, []),
        (
            {"functionResponse": {"name": "", "response": {}}},
            "model",
            True,
            [
                (
                    "function_part_wrong_role",
                    "contents[1].parts[0].functionResponse",
                    "a functionResponse answers the model's call: it belongs in a user turn (or a turn with no role)",
                ),
                (
                    "invalid_part",
                    "contents[1].parts[0].functionResponse.name",
                    "functionResponse needs a non-empty `name` (the function's)",
                ),
            ],
        ),
        (
            {"functionCall": {"args": {}}},
            "model",
            True,
            [
                (
                    "invalid_part",
                    "contents[1].parts[0].functionCall.name",
                    "functionCall needs a non-empty `name` (the function's)",
                )
            ],
        ),
        (
            {"functionCall": [1]},
            "model",
            True,
            [
                (
                    "invalid_part",
                    "contents[1].parts[0].functionCall",
                    "functionCall must be an object, got list",
                )
            ],
        ),
        (
            {"functionCall": {"name": "f"}},
            "model",
            False,
            [
                (
                    "function_calling_unsupported",
                    "contents[1].parts[0].functionCall",
                    'gemini-3.5-flash does not tune on function calls (Vertex AI refuses the job: "unsupported modality [function call]"); '
                    "choose a model that does, or drop these parts",
                )
            ],
        ),
    ],
)
def test_function_part_findings(part, role, function_calling, expected):
    assert issues(example(part, role), function_calling=function_calling) == expected


def test_function_parts_count_towards_the_example_size():
    model = CATALOG.get("gemini-3.5-flash")
    assert model is not None
    small, big = {"name": "f", "args": {}}, {"name": "f", "args": {"q": "x" * 1000}}
    shapes = [
        gemini_rules.full_check(
            example({"functionCall": call}, "model"),
            lambda *a: None,
            MediaRules(CATALOG, model, ()),
            model.name,
        )
        for call in (small, big)
    ]
    # The call counts as its JSON text: 1000 characters of argument, plus its key and quotes.
    assert shapes[1].chars - shapes[0].chars == len(b'"q":"') + 1000 + len(b'"')


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("1.5s", 1.5),
        ("0.000000001s", 1e-9),
        ("12.25s", 12.25),
        ("1.s", None),
        ("s", None),
        ("1", None),
        ("1.1234567891s", None),
        (" 1s", None),
        ("1s ", None),
        ("1234567890123s", None),
        (5, None),
    ],
)
def test_parse_duration(text, seconds):
    assert gemini_parts.parse_duration(text) == seconds
