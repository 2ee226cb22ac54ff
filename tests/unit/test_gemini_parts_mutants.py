"""What the rules for one part of a Gemini example tell the user, pinned to code, field and
message: a turn's `parts` that is missing or empty, a part that is not an object, has no data,
or holds two kinds; text that is not a string or is blank; videoMetadata off a video; parts
systemInstruction and model turns cannot hold; a part-level mediaResolution, which overrides the
example's for the length limits; and the example size function-call parts add to.

Mutation testing (docs/TESTING.md, "Validation rules: gemini_parts") showed each of these could
change without a test noticing. The field is where the report points the user, and the message
is what they read, so both are part of the rule."""

from __future__ import annotations

import msgspec
import pytest

from autotune.catalog import ModelSpec, load_catalog
from autotune.validation import gemini_rules
from autotune.validation.gemini_rules import ExampleShape
from autotune.validation.media_rules import MediaRules

CATALOG = load_catalog()


def shipped_model(name: str) -> ModelSpec:
    model = CATALOG.get(name)
    assert model is not None, name
    return model


MODEL = shipped_model("gemini-3.5-flash")
VIDEO = {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/v.mp4"}}
PART = "contents[0].parts[0]"
Finding = tuple[str, str | None, str]


def check(obj: dict) -> tuple[list[Finding], ExampleShape]:
    """The findings of the full check on one example, and the shape it measured."""
    found: list[Finding] = []
    shape = gemini_rules.full_check(
        obj,
        lambda code, field, message, **_: found.append((str(code), field, message)),
        MediaRules(CATALOG, MODEL, ()),
        MODEL.name,
        True,
    )
    return found, shape


def findings(obj: dict) -> list[Finding]:
    return check(obj)[0]


def user_parts(*parts: object) -> dict:
    """An example whose user turn holds these parts (a valid model answer follows)."""
    return {
        "contents": [
            {"role": "user", "parts": list(parts)},
            {"role": "model", "parts": [{"text": "y"}]},
        ]
    }


# the turn's parts list -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("turn", "expected"),
    [
        (
            {"role": "user"},
            ("missing_parts", "contents[0].parts", "parts is missing; expected a list of parts"),
        ),
        (
            {"role": "user", "parts": "x"},
            ("missing_parts", "contents[0].parts", "parts is a string; expected a list of parts"),
        ),
        ({"role": "user", "parts": []}, ("empty_parts", "contents[0].parts", "parts is empty")),
    ],
)
def test_a_turn_without_a_list_of_parts_is_named_by_its_parts_field(turn, expected):
    obj = {"contents": [turn, {"role": "model", "parts": [{"text": "y"}]}]}
    assert findings(obj) == [expected]


def test_system_instruction_parts_missing_are_pointed_at_system_instruction():
    obj = {**user_parts({"text": "x"}), "systemInstruction": {"role": "system"}}
    assert findings(obj) == [
        ("missing_parts", "systemInstruction.parts", "parts is missing; expected a list of parts")
    ]


# one part ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (7, ("not_an_object", PART, "a part must be an object, got number")),
        (
            {"thought": True},
            (
                "invalid_part",
                PART,
                "the part has no data: expected one of text, fileData, functionCall, functionResponse",
            ),
        ),
        (
            {"text": "x", **VIDEO},
            ("invalid_part", PART, "the part has text and fileData; a part holds exactly one"),
        ),
        (
            {"text": "x", "function_call": {"name": "f"}},
            ("invalid_part", PART, "the part has text and function_call; a part holds exactly one"),
        ),
    ],
)
def test_a_bad_part_is_reported_once_and_the_next_part_is_still_checked(bad, expected):
    # The second part's own fault must still be found: one bad part does not end the turn's check.
    assert findings(user_parts(bad, {"text": 5})) == [
        expected,
        ("invalid_part", "contents[0].parts[1].text", "text must be a string, got number"),
    ]


def test_an_unknown_field_of_a_part_is_named_and_the_part_still_counts():
    found, shape = check(user_parts({"text": "abc", "colour": "red"}))
    assert found == [("unknown_field", f"{PART}.colour", "a part has no field 'colour'")]
    assert shape.chars == len("abc") + len("y")


def test_thought_fields_are_accepted_on_a_part():
    part = {"text": "x", "thought": True, "thoughtSignature": "c2ln", "thought_signature": "c2ln"}
    assert findings(user_parts(part)) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "the text is empty"), (" \n\t", "the text is only whitespace")],
)
def test_blank_text_says_whether_it_is_empty_or_only_whitespace(text, message):
    assert findings(user_parts({"text": text})) == [("empty_text", f"{PART}.text", message)]


def test_the_example_size_counts_every_text_part():
    _, shape = check(user_parts({"text": "abcd"}, {"text": "ef"}))
    assert shape.chars == len("abcd") + len("ef") + len("y")


@pytest.mark.parametrize("key", ["videoMetadata", "video_metadata"])
def test_video_metadata_on_a_text_part_is_named_by_its_own_spelling(key):
    assert findings(user_parts({"text": "x", key: {"startOffset": "1s"}})) == [
        (
            "invalid_video_metadata",
            f"{PART}.{key}",
            "videoMetadata belongs on a part whose fileData is a video",
        )
    ]


@pytest.mark.parametrize("key", ["inlineData", "inline_data"])
def test_inline_data_is_refused_at_its_own_key(key):
    part = {key: {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    assert findings(user_parts(part, {"text": "x"})) == [
        (
            "inline_data_unsupported",
            f"{PART}.{key}",
            "inlineData is not accepted in tuning data; upload the file and reference it with fileData",
        )
    ]


@pytest.mark.parametrize(
    ("part", "key"),
    [(VIDEO, "fileData"), ({"function_call": {"name": "f"}}, "function_call")],
)
def test_system_instruction_takes_text_parts_only(part, key):
    obj = {
        **user_parts({"text": "x"}),
        "systemInstruction": {"parts": [{"text": "Be brief."}, part]},
    }
    assert findings(obj) == [
        (
            "invalid_part",
            f"systemInstruction.parts[1].{key}",
            f"systemInstruction parts must be text, not {key}",
        )
    ]


# fileData parts -------------------------------------------------------------------------------


def test_media_in_a_model_turn_is_refused_at_its_file_data():
    obj = {
        "contents": [
            {"role": "user", "parts": [{"text": "x"}]},
            {"role": "model", "parts": [{"text": "see"}, VIDEO]},
        ]
    }
    assert findings(obj) == [
        (
            "media_outside_user_turn",
            "contents[1].parts[1].fileData",
            "media belong in user turns; a tuned model answers with text, so a model turn cannot hold fileData",
        )
    ]


def clip(seconds: int, **part_fields: object) -> dict:
    return {**VIDEO, "videoMetadata": {"endOffset": f"{seconds}s"}, **part_fields}


def too_long(obj: dict) -> list[str]:
    """The media_too_long messages for the example's media, after its rules passed."""
    found, shape = check(obj)
    assert found == []
    media: list[Finding] = []
    MediaRules(CATALOG, MODEL, ()).check_counts(
        shape.media, lambda code, field, message, **_: media.append((str(code), field, message))
    )
    return [message for code, _, message in media if code == "media_too_long"]


def test_a_part_level_media_resolution_sets_the_length_limit_of_its_video():
    # The catalog's video limit is 1,200 s at low resolution and 300 s at medium.
    assert (
        too_long(user_parts(clip(600, mediaResolution="MEDIA_RESOLUTION_LOW"), {"text": "x"})) == []
    )
    assert too_long(
        user_parts(clip(600, media_resolution="MEDIA_RESOLUTION_MEDIUM"), {"text": "x"})
    ) == [
        "this video clip is 600 s; at medium media resolution a video may be at most 300 s; "
        "Vertex AI drops this example (not billed, not trained on)"
    ]


def test_a_part_level_media_resolution_overrides_the_examples():
    obj = {
        **user_parts(clip(600, mediaResolution={"level": "MEDIA_RESOLUTION_LOW"}), {"text": "x"}),
        "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_MEDIUM"},
    }
    assert too_long(obj) == []
    assert check(obj)[1].resolutions == {"low", "medium"}


def test_an_invalid_part_level_media_resolution_leaves_the_examples_in_force():
    obj = {
        **user_parts(clip(600, mediaResolution="LOW"), {"text": "x"}),
        "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_MEDIUM"},
    }
    found, shape = check(obj)
    assert found == [
        (
            "invalid_media_resolution",
            f"{PART}.mediaResolution",
            'media resolution is "LOW"; expected one of MEDIA_RESOLUTION_UNSPECIFIED, '
            "MEDIA_RESOLUTION_LOW, MEDIA_RESOLUTION_MEDIUM, MEDIA_RESOLUTION_HIGH, "
            "MEDIA_RESOLUTION_ULTRA_HIGH",
        )
    ]
    assert shape.resolutions == {"medium"}
    assert [use[4] for use in shape.media] == ["medium"]


def test_an_invalid_media_resolution_is_shown_cut_to_80_characters():
    level = "L" * 100
    found = findings(user_parts({**VIDEO, "mediaResolution": {"level": level}}, {"text": "x"}))
    shown = msgspec.json.encode({"level": level}).decode()[:80]
    assert len(shown) == 80
    assert [message for _, _, message in found] == [
        f"media resolution is {shown}; expected one of MEDIA_RESOLUTION_UNSPECIFIED, "
        "MEDIA_RESOLUTION_LOW, MEDIA_RESOLUTION_MEDIUM, MEDIA_RESOLUTION_HIGH, "
        "MEDIA_RESOLUTION_ULTRA_HIGH"
    ]


def test_video_metadata_on_a_file_data_the_rules_refused_adds_nothing_more():
    # The clip's offsets are fine, but the file reference is not: only that is reported, and
    # no media use is recorded for a length check.
    part = {
        "fileData": {"mimeType": "video/mp4", "fileUri": "v.mp4"},
        "videoMetadata": {"endOffset": "5s"},
    }
    found, shape = check(user_parts(part, {"text": "x"}))
    assert found == [
        (
            "invalid_file_uri",
            f"{PART}.fileData.fileUri",
            "fileUri must be gs://BUCKET/OBJECT or a public http(s):// URL, got 'v.mp4'",
        )
    ]
    assert shape.media == []


# videoMetadata offsets --------------------------------------------------------------------------


def test_each_bad_offset_is_reported_and_a_long_one_is_shown_cut_to_40_characters():
    long = "9" * 50
    found = findings(
        user_parts(
            {**VIDEO, "videoMetadata": {"startOffset": long, "endOffset": "x"}}, {"text": "x"}
        )
    )
    assert found == [
        (
            "invalid_video_metadata",
            f"{PART}.videoMetadata.startOffset",
            f'startOffset is "{long[:39]}; expected a duration such as "5s" or "1.5s"',
        ),
        (
            "invalid_video_metadata",
            f"{PART}.videoMetadata.endOffset",
            'endOffset is "x"; expected a duration such as "5s" or "1.5s"',
        ),
    ]


# function parts ----------------------------------------------------------------------------------


def test_a_function_call_adds_its_json_to_the_text_before_it():
    call = {"name": "lookup", "args": {"q": "tides"}}
    obj = {
        "contents": [
            {"role": "user", "parts": [{"text": "When?"}]},
            {"role": "model", "parts": [{"text": "Let me see."}, {"functionCall": call}]},
        ]
    }
    found, shape = check(obj)
    assert found == []
    assert shape.chars == len("When?") + len("Let me see.") + len(msgspec.json.encode(call))
