"""Rules for the Gemini format: {"systemInstruction"?, "contents": [turns], "tools"?}.

Two paths, one verdict. The fast path decodes a line straight into typed Structs (msgspec
checks roles and shapes in C) and accepts only plain, clean text examples; anything else,
or any doubt, goes to the full path, which decodes to plain objects and names every problem.
The full path is the rule book; the fast path must never accept what it would reject
(tests/unit/test_validation_rules.py checks the two agree on generated examples).
Field names are accepted in camelCase and in proto snake_case, as Vertex AI's JSON parser does.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from autotune.validation.codes import ErrorCode
from autotune.validation.media_rules import Add, MediaRules, type_name


class _TextPart(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    text: str


class _Turn(msgspec.Struct, forbid_unknown_fields=True, gc=False, kw_only=True):
    # A missing or null role is the user's (Content.role: "if not set, the service defaults to user")
    role: Literal["user", "model"] | None = None
    parts: Annotated[list[_TextPart], msgspec.Meta(min_length=1)]


class _SystemInstruction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    parts: Annotated[list[_TextPart], msgspec.Meta(min_length=1)]
    role: str | None = None


class FastGeminiExample(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    contents: Annotated[list[_Turn], msgspec.Meta(min_length=1)]
    systemInstruction: _SystemInstruction | None = None
    tools: msgspec.Raw = msgspec.Raw(b"")


fast_decoder = msgspec.json.Decoder(FastGeminiExample)


def fast_check(example: FastGeminiExample) -> tuple[int, int] | None:
    """(characters, turns) of a clean text example, or None when the full path must decide."""
    if example.tools:
        return None
    contents = example.contents
    if contents[0].role not in (None, "user") or contents[-1].role != "model":
        return None
    chars = 0
    previous = None
    for turn in contents:
        role = turn.role or "user"
        if role == previous:
            return None
        previous = role
        for part in turn.parts:
            text = part.text
            if not text or text.isspace():
                return None
            chars += len(text)
    system = example.systemInstruction
    if system is not None:
        for part in system.parts:
            text = part.text
            if not text or text.isspace():
                return None
            chars += len(text)
    return chars, len(contents)


_TOP_KEYS = {
    "contents": "contents",
    "systemInstruction": "systemInstruction",
    "system_instruction": "systemInstruction",
    "tools": "tools",
    "generationConfig": "generationConfig",
    "generation_config": "generationConfig",
}
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
_PART_RESOLUTION = ("mediaResolution", "media_resolution")
_PART_OTHER = frozenset({"thought", "thoughtSignature", "thought_signature", *_VIDEO_METADATA, *_PART_RESOLUTION})
_TOOL_KEYS = {"functionDeclarations": "functionDeclarations", "function_declarations": "functionDeclarations"}
# Tool kinds Vertex AI defines besides function declarations: not tuning data, but not
# unknown either (a dataset exported from serving requests may carry them).
_OTHER_TOOLS = frozenset({
    "retrieval", "googleSearch", "google_search", "googleSearchRetrieval", "google_search_retrieval",
    "codeExecution", "code_execution", "enterpriseWebSearch", "enterprise_web_search", "urlContext", "url_context",
})
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


class ExampleShape:
    """What the full path learned about one example, for tokens, media and file-level checks."""

    __slots__ = ("chars", "turns", "media", "resolutions")

    def __init__(self) -> None:
        self.chars = 0
        self.turns = 0
        # (kind, uri, field, seconds or None when unknown, resolution short name, mime type)
        self.media: list[tuple[str, str, str, float | None, str]] = []
        self.resolutions: set[str] = set()  # media resolutions set explicitly in this example


def full_check(obj: dict, add: Add, media: MediaRules, model_name: str, function_calling: bool = True) -> ExampleShape:
    shape = ExampleShape()
    fields: dict[str, object] = {}
    for key, value in obj.items():
        canonical = _TOP_KEYS.get(key)
        if canonical is None:
            if key != "messages":
                add(
                    ErrorCode.UNKNOWN_FIELD, key,
                    f"unknown field {key!r}; a Gemini example has contents, systemInstruction, tools, generationConfig",
                )
        else:
            fields[canonical] = value
    if "contents" not in fields:
        if "messages" in obj:
            add(
                ErrorCode.MISSING_CONTENTS,
                "messages",
                f"this line uses the legacy `messages` format; {model_name} takes `contents` "
                "(the `messages` format is for gemini-1.0-pro-002)",
            )
        else:
            add(ErrorCode.MISSING_CONTENTS, "contents", "the example has no `contents` list")
        return shape
    example_resolution = "default"
    config = fields.get("generationConfig")
    if config is not None:
        example_resolution = _check_generation_config(config, add, shape)
    system = fields.get("systemInstruction")
    if system is not None:
        _check_system(system, add, shape)
    tools = fields.get("tools")
    if tools is not None:
        _check_tools(tools, add)
        shape.chars += len(msgspec.json.encode(tools))
    contents = fields["contents"]
    if not isinstance(contents, list):
        add(ErrorCode.MISSING_CONTENTS, "contents", f"`contents` must be a list of turns, got {type_name(contents)}")
        return shape
    if not contents:
        add(ErrorCode.EMPTY_CONTENTS, "contents", "`contents` is empty; an example needs a user turn and a model turn")
        return shape
    shape.turns = len(contents)
    roles: list[str | None] = []
    context = _PartContext(media, shape, example_resolution, model_name, function_calling)
    for i, turn in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(turn, dict):
            add(ErrorCode.NOT_AN_OBJECT, where, f"a turn must be an object, got {type_name(turn)}")
            roles.append(None)
            continue
        for key in turn:
            if key not in ("role", "parts"):
                add(ErrorCode.UNKNOWN_FIELD, f"{where}.{key}", f"a turn has role and parts, not {key!r}")
        # Content.role is optional: unset (or empty, proto3's unset string) means user.
        role = turn.get("role")
        if role is None or role == "":
            role = "user"
        if role in ("user", "model"):
            roles.append(role)
        else:
            add(ErrorCode.INVALID_ROLE, f"{where}.role", f"role is {role!r}; expected 'user', 'model', or no role (user)")
            roles.append(None)
        _check_parts(turn.get("parts"), where, add, context, role=roles[-1], shape=shape)
    for i in range(1, len(roles)):
        if roles[i] is not None and roles[i] == roles[i - 1]:
            add(
                ErrorCode.ROLES_NOT_ALTERNATING,
                f"contents[{i}].role",
                f"two {roles[i]} turns in a row (contents[{i - 1}] and contents[{i}]); user and model must alternate"
                " (a turn with no role is a user turn)",
            )
    if roles[0] == "model":
        add(ErrorCode.FIRST_TURN_NOT_USER, "contents[0].role", "the conversation starts with a model turn; start with user")
    if roles[-1] == "user":
        add(
            ErrorCode.LAST_TURN_NOT_MODEL,
            f"contents[{len(roles) - 1}].role",
            "the conversation ends with a user turn (a turn with no role is a user turn); "
            "the last turn must be the model's answer",
        )
    return shape


class _PartContext:
    __slots__ = ("media", "shape", "resolution", "model_name", "function_calling")

    def __init__(self, media: MediaRules | None, shape: ExampleShape, resolution: str, model_name: str, function_calling: bool) -> None:
        self.media = media
        self.shape = shape
        self.resolution = resolution
        self.model_name = model_name
        self.function_calling = function_calling


def _check_generation_config(config: object, add: Add, shape: ExampleShape) -> str:
    if not isinstance(config, dict):
        add(ErrorCode.NOT_AN_OBJECT, "generationConfig", f"generationConfig must be an object, got {type_name(config)}")
        return "default"
    for key in _PART_RESOLUTION:
        if key in config:
            resolution = _resolution_name(config[key], f"generationConfig.{key}", add)
            if resolution is not None:
                shape.resolutions.add(resolution)
                return resolution
    return "default"


def _resolution_name(value: object, field: str, add: Add) -> str | None:
    """The short name of a MediaResolution value: an enum name, or (part level, Gemini 3) an
    object whose `level` is one."""
    level = value.get("level") if isinstance(value, dict) else value
    if isinstance(level, str) and level in RESOLUTION_NAMES:
        return RESOLUTION_NAMES[level]
    add(
        ErrorCode.INVALID_MEDIA_RESOLUTION, field,
        f"media resolution is {msgspec.json.encode(value).decode()[:80]}; expected one of {', '.join(RESOLUTION_NAMES)}",
    )
    return None


def _check_tools(tools: object, add: Add) -> None:
    if not isinstance(tools, list):
        add(ErrorCode.INVALID_TOOLS, "tools", f"tools must be a list of tool objects, got {type_name(tools)}")
        return
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            add(ErrorCode.INVALID_TOOLS, where, f"a tool must be an object, got {type_name(tool)}")
            continue
        for key, value in tool.items():
            if key in _OTHER_TOOLS:
                continue
            if key not in _TOOL_KEYS:
                add(ErrorCode.UNKNOWN_FIELD, f"{where}.{key}", f"a tool has no field {key!r}")
                continue
            if not isinstance(value, list):
                add(ErrorCode.INVALID_TOOLS, f"{where}.{key}", f"{key} must be a list of declarations, got {type_name(value)}")
                continue
            for j, declaration in enumerate(value):
                name = declaration.get("name") if isinstance(declaration, dict) else None
                if not isinstance(name, str) or not name:
                    add(
                        ErrorCode.INVALID_TOOLS, f"{where}.{key}[{j}]",
                        "a function declaration must be an object with a non-empty `name`",
                    )


def _check_system(system: object, add: Add, shape: ExampleShape) -> None:
    if not isinstance(system, dict):
        add(ErrorCode.NOT_AN_OBJECT, "systemInstruction", f"systemInstruction must be an object, got {type_name(system)}")
        return
    for key in system:
        if key not in ("role", "parts"):
            add(ErrorCode.UNKNOWN_FIELD, f"systemInstruction.{key}", f"systemInstruction has role and parts, not {key!r}")
    _check_parts(system.get("parts"), "systemInstruction", add, None, role=None, shape=shape)


def _check_parts(
    parts: object, where: str, add: Add, context: _PartContext | None, *, role: str | None, shape: ExampleShape
) -> None:
    """context None: systemInstruction (text only)."""
    if not isinstance(parts, list):
        shown = "missing" if parts is None else f"a {type_name(parts)}"
        add(ErrorCode.MISSING_PARTS, f"{where}.parts", f"parts is {shown}; expected a list of parts")
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
            add(ErrorCode.INVALID_PART, field, "the part has no data: expected one of text, fileData, functionCall, functionResponse")
            continue
        if len(kinds) > 1:
            add(ErrorCode.INVALID_PART, field, f"the part has {' and '.join(k for _, k in kinds)}; a part holds exactly one")
            continue
        kind, key = kinds[0]
        value = part[key]
        video_metadata = next((k for k in _VIDEO_METADATA if k in part), None)
        if video_metadata is not None and kind != "fileData":
            add(
                ErrorCode.INVALID_VIDEO_METADATA, f"{field}.{video_metadata}",
                "videoMetadata belongs on a part whose fileData is a video",
            )
        if kind == "text":
            if not isinstance(value, str):
                add(ErrorCode.INVALID_PART, f"{field}.text", f"text must be a string, got {type_name(value)}")
            elif not value or value.isspace():
                add(ErrorCode.EMPTY_TEXT, f"{field}.text", "the text is empty" if not value else "the text is only whitespace")
            else:
                shape.chars += len(value)
        elif context is None:
            add(ErrorCode.INVALID_PART, f"{field}.{key}", f"systemInstruction parts must be text, not {key}")
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
    part: dict, value: object, field: str, key: str, video_metadata: str | None, add: Add, context: _PartContext, role: str | None
) -> None:
    if role == "model":
        add(
            ErrorCode.MEDIA_OUTSIDE_USER_TURN, f"{field}.{key}",
            "media belong in user turns; a tuned model answers with text, so a model turn cannot hold fileData",
        )
    resolution = context.resolution
    for res_key in _PART_RESOLUTION:
        if res_key in part:
            named = _resolution_name(part[res_key], f"{field}.{res_key}", add)
            if named is not None:
                resolution = named
                context.shape.resolutions.add(named)
    if context.media is None:
        return
    before = len(context.shape.media)
    context.media.check_file_data(value, f"{field}.{key}", add, context.shape.media, resolution)
    added = context.shape.media[before:]
    if video_metadata is not None:
        seconds = _check_video_metadata(part[video_metadata], f"{field}.{video_metadata}", add, added)
        if added and seconds is not None:
            kind, uri, ref_field, _, res, mime = added[0]
            context.shape.media[before] = (kind, uri, ref_field, seconds, res, mime)


def _check_video_metadata(metadata: object, field: str, add: Add, refs: list) -> float | None:
    """Offsets' syntax and order; the clip's length in seconds when both ends are given (or
    the end alone: the clip starts at 0)."""
    if refs and refs[0][0] != "video":
        add(ErrorCode.INVALID_VIDEO_METADATA, field, f"videoMetadata belongs on a video, not on a {refs[0][0]}")
        return None
    if not isinstance(metadata, dict):
        add(ErrorCode.INVALID_VIDEO_METADATA, field, f"videoMetadata must be an object, got {type_name(metadata)}")
        return None
    offsets: dict[str, float] = {}
    for key, value in metadata.items():
        canonical = {"startOffset": "start", "start_offset": "start", "endOffset": "end", "end_offset": "end"}.get(key)
        if canonical is None:
            if key not in ("fps",):
                add(ErrorCode.UNKNOWN_FIELD, f"{field}.{key}", f"videoMetadata has startOffset and endOffset, not {key!r}")
            continue
        seconds = parse_duration(value)
        if seconds is None:
            add(
                ErrorCode.INVALID_VIDEO_METADATA, f"{field}.{key}",
                f"{key} is {msgspec.json.encode(value).decode()[:40]}; expected a duration such as \"5s\" or \"1.5s\"",
            )
            continue
        offsets[canonical] = seconds
    start, end = offsets.get("start"), offsets.get("end")
    if start is not None and end is not None and start >= end:
        add(ErrorCode.INVALID_VIDEO_METADATA, field, f"startOffset ({start:g}s) must be before endOffset ({end:g}s)")
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


def _check_function_part(kind: str, key: str, value: object, field: str, add: Add, context: _PartContext, role: str | None) -> None:
    if not isinstance(value, dict):
        add(ErrorCode.INVALID_PART, f"{field}.{key}", f"{key} must be an object, got {type_name(value)}")
        return
    if not context.function_calling:
        add(
            ErrorCode.FUNCTION_CALLING_UNSUPPORTED, f"{field}.{key}",
            f"{context.model_name} does not tune on function calls (Vertex AI refuses the job: "
            "\"unsupported modality [function call]\"); choose a model that does, or drop these parts",
        )
    if kind == "functionCall" and role == "user":
        add(ErrorCode.FUNCTION_PART_WRONG_ROLE, f"{field}.{key}", "a functionCall is the model's: it belongs in a model turn")
    elif kind == "functionResponse" and role == "model":
        add(
            ErrorCode.FUNCTION_PART_WRONG_ROLE, f"{field}.{key}",
            "a functionResponse answers the model's call: it belongs in a user turn (or a turn with no role)",
        )
    name = value.get("name")
    if not isinstance(name, str) or not name:
        add(ErrorCode.INVALID_PART, f"{field}.{key}.name", f"{key} needs a non-empty `name` (the function's)")
    context.shape.chars += len(msgspec.json.encode(value))
