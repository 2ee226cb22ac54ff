"""Rules for the Gemini format: {"systemInstruction"?, "contents": [turns], "tools"?}.

Two paths, one verdict. The fast path decodes a line straight into typed Structs (msgspec
checks roles and shapes in C) and accepts only plain, clean text examples; anything else,
or any doubt, goes to the full path, which decodes to plain objects and names every problem.
The full path is the rule book; the fast path must never accept what it would reject
(tests/unit/test_validation_rules.py checks the two agree on generated examples).
Field names are accepted in camelCase and in proto snake_case, as Vertex AI's JSON parser does.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from autotune.validation.codes import ErrorCode
from autotune.validation.media_rules import Add, MediaRules, type_name


class _TextPart(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    text: str


class _Turn(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    role: Literal["user", "model"]
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
    if contents[0].role != "user" or contents[-1].role != "model":
        return None
    chars = 0
    previous = None
    for turn in contents:
        role = turn.role
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
_PART_OTHER = frozenset({"thought", "thoughtSignature", "thought_signature"})


class ExampleShape:
    """What the full path learned about one example, for tokens and media checks."""

    __slots__ = ("chars", "turns", "media")

    def __init__(self) -> None:
        self.chars = 0
        self.turns = 0
        self.media: list[tuple[str, str, str]] = []  # (kind, uri, field)


def full_check(obj: dict, add: Add, media: MediaRules, model_name: str) -> ExampleShape:
    shape = ExampleShape()
    fields: dict[str, object] = {}
    for key, value in obj.items():
        canonical = _TOP_KEYS.get(key)
        if canonical is None:
            if key != "messages":
                add(ErrorCode.UNKNOWN_FIELD, key, f"unknown field {key!r}; a Gemini example has contents, systemInstruction, tools")
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
    system = fields.get("systemInstruction")
    if system is not None:
        _check_system(system, add, shape)
    tools = fields.get("tools")
    if tools is not None:
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
    for i, turn in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(turn, dict):
            add(ErrorCode.NOT_AN_OBJECT, where, f"a turn must be an object, got {type_name(turn)}")
            roles.append(None)
            continue
        for key in turn:
            if key not in ("role", "parts"):
                add(ErrorCode.UNKNOWN_FIELD, f"{where}.{key}", f"a turn has role and parts, not {key!r}")
        role = turn.get("role")
        if role in ("user", "model"):
            roles.append(role)
        else:
            shown = "missing" if role is None else repr(role)
            add(ErrorCode.INVALID_ROLE, f"{where}.role", f"role is {shown}; expected 'user' or 'model'")
            roles.append(None)
        _check_parts(turn.get("parts"), where, add, media, shape, system_only=False)
    for i in range(1, len(roles)):
        if roles[i] is not None and roles[i] == roles[i - 1]:
            add(
                ErrorCode.ROLES_NOT_ALTERNATING,
                f"contents[{i}].role",
                f"two {roles[i]} turns in a row (contents[{i - 1}] and contents[{i}]); user and model must alternate",
            )
    if roles[0] == "model":
        add(ErrorCode.FIRST_TURN_NOT_USER, "contents[0].role", "the conversation starts with a model turn; start with user")
    if roles[-1] == "user":
        add(
            ErrorCode.LAST_TURN_NOT_MODEL,
            f"contents[{len(roles) - 1}].role",
            "the conversation ends with a user turn; the last turn must be the model's answer",
        )
    return shape


def _check_system(system: object, add: Add, shape: ExampleShape) -> None:
    if not isinstance(system, dict):
        add(ErrorCode.NOT_AN_OBJECT, "systemInstruction", f"systemInstruction must be an object, got {type_name(system)}")
        return
    for key in system:
        if key not in ("role", "parts"):
            add(ErrorCode.UNKNOWN_FIELD, f"systemInstruction.{key}", f"systemInstruction has role and parts, not {key!r}")
    _check_parts(system.get("parts"), "systemInstruction", add, None, shape, system_only=True)


def _check_parts(
    parts: object, where: str, add: Add, media: MediaRules | None, shape: ExampleShape, *, system_only: bool
) -> None:
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
        if kind == "text":
            if not isinstance(value, str):
                add(ErrorCode.INVALID_PART, f"{field}.text", f"text must be a string, got {type_name(value)}")
            elif not value or value.isspace():
                add(ErrorCode.EMPTY_TEXT, f"{field}.text", "the text is empty" if not value else "the text is only whitespace")
            else:
                shape.chars += len(value)
        elif system_only:
            add(ErrorCode.INVALID_PART, f"{field}.{key}", f"systemInstruction parts must be text, not {key}")
        elif kind == "inlineData":
            add(
                ErrorCode.INLINE_DATA_UNSUPPORTED,
                f"{field}.{key}",
                "inlineData is not accepted in tuning data; upload the file and reference it with fileData",
            )
        elif kind == "fileData":
            if media is not None:
                media.check_file_data(value, f"{field}.{key}", add, shape.media)
        else:  # functionCall / functionResponse
            if not isinstance(value, dict):
                add(ErrorCode.INVALID_PART, f"{field}.{key}", f"{key} must be an object, got {type_name(value)}")
            else:
                shape.chars += len(msgspec.json.encode(value))
