"""Rules for one part of a Gemini example (an entry of a turn's or of systemInstruction's
`parts`), used by gemini_rules' full path: exactly one kind of data per part; text; fileData,
with a part-level mediaResolution and videoMetadata (offsets, the clip's length); functionCall and
functionResponse (the model's support for function calling, the turn each belongs in).
Field names are accepted in camelCase and in proto snake_case, as Vertex AI's JSON parser does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import msgspec

from autotune.validation.codes import ErrorCode
from autotune.validation.media_rules import Add, MediaRules, type_name

if TYPE_CHECKING:
    from autotune.validation.gemini_rules import ExampleShape


_PART_DATA = {
    "text": "text",
    "fileData": "fileData",
    "file_data": "fileData",
    "inlineData": "inlineData",
    "inline_data": "inlineData",
    "functionCall": "functionCall",
    "function_call": "functionCall",
    "functionResponse": "functionResponse",
    "function_response": "functionResponse",
}
_VIDEO_METADATA = ("videoMetadata", "video_metadata")
RESOLUTION_KEYS = ("mediaResolution", "media_resolution")  # on a part, and in generationConfig
_PART_OTHER = frozenset(
    {"thought", "thoughtSignature", "thought_signature", *_VIDEO_METADATA, *RESOLUTION_KEYS}
)
# google.protobuf.Duration in JSON: seconds with up to 9 fractional digits and an "s".
_DURATION = re.compile(r"^(\d{1,12})(?:\.(\d{1,9}))?s$")
# MediaResolution enum names, and the short names the catalog's per-resolution limits use.
RESOLUTION_NAMES = {
    "MEDIA_RESOLUTION_UNSPECIFIED": "default",
    "MEDIA_RESOLUTION_LOW": "low",
    "MEDIA_RESOLUTION_MEDIUM": "medium",
    "MEDIA_RESOLUTION_HIGH": "high",
    "MEDIA_RESOLUTION_ULTRA_HIGH": "high",
}


class PartContext:
    """What the parts of one example's turns are checked against, and the shape they add to."""

    __slots__ = ("media", "shape", "resolution", "model_name", "function_calling")

    def __init__(
        self,
        media: MediaRules | None,
        shape: ExampleShape,
        resolution: str,
        model_name: str,
        function_calling: bool,
    ) -> None:
        self.media = media
        self.shape = shape
        self.resolution = resolution
        self.model_name = model_name
        self.function_calling = function_calling


def resolution_name(value: object, field: str, add: Add) -> str | None:
    """The short name of a MediaResolution value: an enum name, or (part level, Gemini 3) an
    object whose `level` is one."""
    level = value.get("level") if isinstance(value, dict) else value
    if isinstance(level, str) and level in RESOLUTION_NAMES:
        return RESOLUTION_NAMES[level]
    add(
        ErrorCode.INVALID_MEDIA_RESOLUTION,
        field,
        f"media resolution is {msgspec.json.encode(value).decode()[:80]}; expected one of {', '.join(RESOLUTION_NAMES)}",
    )
    return None


def check_parts(
    parts: object,
    where: str,
    add: Add,
    context: PartContext | None,
    *,
    role: str | None,
    shape: ExampleShape,
) -> None:
    """context None: systemInstruction (text only)."""
    if not isinstance(parts, list):
        shown = "missing" if parts is None else f"a {type_name(parts)}"
        add(
            ErrorCode.MISSING_PARTS, f"{where}.parts", f"parts is {shown}; expected a list of parts"
        )
        return
    if not parts:
        add(ErrorCode.EMPTY_PARTS, f"{where}.parts", "parts is empty")
        return
    for j, part in enumerate(parts):
        field = f"{where}.parts[{j}]"
        if not isinstance(part, dict):
            add(ErrorCode.NOT_AN_OBJECT, field, f"a part must be an object, got {type_name(part)}")
            continue
        kinds = []
        for key in part:
            kind = _PART_DATA.get(key)
            if kind is not None:
                kinds.append((kind, key))
            elif key not in _PART_OTHER:
                add(ErrorCode.UNKNOWN_FIELD, f"{field}.{key}", f"a part has no field {key!r}")
        if not kinds:
            add(
                ErrorCode.INVALID_PART,
                field,
                "the part has no data: expected one of text, fileData, functionCall, functionResponse",
            )
            continue
        if len(kinds) > 1:
            add(
                ErrorCode.INVALID_PART,
                field,
                f"the part has {' and '.join(k for _, k in kinds)}; a part holds exactly one",
            )
            continue
        kind, key = kinds[0]
        value = part[key]
        video_metadata = next((k for k in _VIDEO_METADATA if k in part), None)
        if video_metadata is not None and kind != "fileData":
            add(
                ErrorCode.INVALID_VIDEO_METADATA,
                f"{field}.{video_metadata}",
                "videoMetadata belongs on a part whose fileData is a video",
            )
        if kind == "text":
            if not isinstance(value, str):
                add(
                    ErrorCode.INVALID_PART,
                    f"{field}.text",
                    f"text must be a string, got {type_name(value)}",
                )
            elif not value or value.isspace():
                add(
                    ErrorCode.EMPTY_TEXT,
                    f"{field}.text",
                    "the text is empty" if not value else "the text is only whitespace",
                )
            else:
                shape.chars += len(value)
        elif context is None:
            add(
                ErrorCode.INVALID_PART,
                f"{field}.{key}",
                f"systemInstruction parts must be text, not {key}",
            )
        elif kind == "inlineData":
            add(
                ErrorCode.INLINE_DATA_UNSUPPORTED,
                f"{field}.{key}",
                "inlineData is not accepted in tuning data; upload the file and reference it with fileData",
            )
        elif kind == "fileData":
            _check_media_part(part, value, field, key, video_metadata, add, context, role)
        else:
            _check_function_part(kind, key, value, field, add, context, role)


def _check_media_part(
    part: dict,
    value: object,
    field: str,
    key: str,
    video_metadata: str | None,
    add: Add,
    context: PartContext,
    role: str | None,
) -> None:
    if role == "model":
        add(
            ErrorCode.MEDIA_OUTSIDE_USER_TURN,
            f"{field}.{key}",
            "media belong in user turns; a tuned model answers with text, so a model turn cannot hold fileData",
        )
    resolution = context.resolution
    for res_key in RESOLUTION_KEYS:
        if res_key in part:
            named = resolution_name(part[res_key], f"{field}.{res_key}", add)
            if named is not None:
                resolution = named
                context.shape.resolutions.add(named)
    if context.media is None:
        return
    before = len(context.shape.media)
    context.media.check_file_data(value, f"{field}.{key}", add, context.shape.media, resolution)
    added = context.shape.media[before:]
    if video_metadata is not None:
        seconds = _check_video_metadata(
            part[video_metadata], f"{field}.{video_metadata}", add, added
        )
        if added and seconds is not None:
            kind, uri, ref_field, _, res, mime = added[0]
            context.shape.media[before] = (kind, uri, ref_field, seconds, res, mime)


def _check_video_metadata(metadata: object, field: str, add: Add, refs: list) -> float | None:
    """Offsets' syntax and order; the clip's length in seconds when both ends are given (or
    the end alone: the clip starts at 0)."""
    if refs and refs[0][0] != "video":
        add(
            ErrorCode.INVALID_VIDEO_METADATA,
            field,
            f"videoMetadata belongs on a video, not on a {refs[0][0]}",
        )
        return None
    if not isinstance(metadata, dict):
        add(
            ErrorCode.INVALID_VIDEO_METADATA,
            field,
            f"videoMetadata must be an object, got {type_name(metadata)}",
        )
        return None
    offsets: dict[str, float] = {}
    for key, value in metadata.items():
        canonical = {
            "startOffset": "start",
            "start_offset": "start",
            "endOffset": "end",
            "end_offset": "end",
        }.get(key)
        if canonical is None:
            if key not in ("fps",):
                add(
                    ErrorCode.UNKNOWN_FIELD,
                    f"{field}.{key}",
                    f"videoMetadata has startOffset and endOffset, not {key!r}",
                )
            continue
        seconds = parse_duration(value)
        if seconds is None:
            add(
                ErrorCode.INVALID_VIDEO_METADATA,
                f"{field}.{key}",
                f'{key} is {msgspec.json.encode(value).decode()[:40]}; expected a duration such as "5s" or "1.5s"',
            )
            continue
        offsets[canonical] = seconds
    start, end = offsets.get("start"), offsets.get("end")
    if start is not None and end is not None and start >= end:
        add(
            ErrorCode.INVALID_VIDEO_METADATA,
            field,
            f"startOffset ({start:g}s) must be before endOffset ({end:g}s)",
        )
        return None
    if end is not None:
        return end - (start or 0.0)
    return None


def parse_duration(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    if match is None:
        return None
    whole, fraction = match.groups()
    return int(whole) + (int(fraction.ljust(9, "0")) / 1e9 if fraction else 0.0)


def _check_function_part(
    kind: str, key: str, value: object, field: str, add: Add, context: PartContext, role: str | None
) -> None:
    if not isinstance(value, dict):
        add(
            ErrorCode.INVALID_PART,
            f"{field}.{key}",
            f"{key} must be an object, got {type_name(value)}",
        )
        return
    if not context.function_calling:
        add(
            ErrorCode.FUNCTION_CALLING_UNSUPPORTED,
            f"{field}.{key}",
            f"{context.model_name} does not tune on function calls (Vertex AI refuses the job: "
            '"unsupported modality [function call]"); choose a model that does, or drop these parts',
        )
    if kind == "functionCall" and role == "user":
        add(
            ErrorCode.FUNCTION_PART_WRONG_ROLE,
            f"{field}.{key}",
            "a functionCall is the model's: it belongs in a model turn",
        )
    elif kind == "functionResponse" and role == "model":
        add(
            ErrorCode.FUNCTION_PART_WRONG_ROLE,
            f"{field}.{key}",
            "a functionResponse answers the model's call: it belongs in a user turn (or a turn with no role)",
        )
    name = value.get("name")
    if not isinstance(name, str) or not name:
        add(
            ErrorCode.INVALID_PART,
            f"{field}.{key}.name",
            f"{key} needs a non-empty `name` (the function's)",
        )
    context.shape.chars += len(msgspec.json.encode(value))
