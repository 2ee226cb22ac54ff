"""Rules for the Gemini format: {"systemInstruction"?, "contents": [turns], "tools"?}.

Two paths, one verdict. The fast path decodes a line straight into typed Structs (msgspec
checks roles and shapes in C) and accepts only plain, clean text examples; anything else,
or any doubt, goes to the full path, which decodes to plain objects and names every problem.
The full path is the rule book; the fast path must never accept what it would reject
(tests/unit/test_validation_rules.py checks the two agree on generated examples).
Here: both paths over a whole example (its top-level fields, generationConfig, systemInstruction,
tools, the turns and their roles); the rules for each part are in gemini_parts.
Field names are accepted in camelCase and in proto snake_case, as Vertex AI's JSON parser does.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from autotune.validation.codes import ErrorCode
from autotune.validation.gemini_parts import (
    RESOLUTION_KEYS,
    PartContext,
    check_parts,
    resolution_name,
)
from autotune.validation.media_rules import Add, MediaRules, MediaUse, type_name


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
_TOOL_KEYS = {
    "functionDeclarations": "functionDeclarations",
    "function_declarations": "functionDeclarations",
}
# Tool kinds Vertex AI defines besides function declarations: not tuning data, but not
# unknown either (a dataset exported from serving requests may carry them).
_OTHER_TOOLS = frozenset(
    {
        "retrieval",
        "googleSearch",
        "google_search",
        "googleSearchRetrieval",
        "google_search_retrieval",
        "codeExecution",
        "code_execution",
        "enterpriseWebSearch",
        "enterprise_web_search",
        "urlContext",
        "url_context",
    }
)


class ExampleShape:
    """What the full path learned about one example, for tokens, media and file-level checks."""

    __slots__ = ("chars", "turns", "media", "resolutions")

    def __init__(self) -> None:
        self.chars = 0
        self.turns = 0
        self.media: list[MediaUse] = []
        self.resolutions: set[str] = set()  # media resolutions set explicitly in this example


def full_check(
    obj: dict, add: Add, media: MediaRules, model_name: str, function_calling: bool = True
) -> ExampleShape:
    shape = ExampleShape()
    fields: dict[str, object] = {}
    for key, value in obj.items():
        canonical = _TOP_KEYS.get(key)
        if canonical is None:
            if key != "messages":
                add(
                    ErrorCode.UNKNOWN_FIELD,
                    key,
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
        add(
            ErrorCode.MISSING_CONTENTS,
            "contents",
            f"`contents` must be a list of turns, got {type_name(contents)}",
        )
        return shape
    if not contents:
        add(
            ErrorCode.EMPTY_CONTENTS,
            "contents",
            "`contents` is empty; an example needs a user turn and a model turn",
        )
        return shape
    shape.turns = len(contents)
    roles: list[str | None] = []
    context = PartContext(media, shape, example_resolution, model_name, function_calling)
    for i, turn in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(turn, dict):
            add(ErrorCode.NOT_AN_OBJECT, where, f"a turn must be an object, got {type_name(turn)}")
            roles.append(None)
            continue
        for key in turn:
            if key not in ("role", "parts"):
                add(
                    ErrorCode.UNKNOWN_FIELD,
                    f"{where}.{key}",
                    f"a turn has role and parts, not {key!r}",
                )
        # Content.role is optional: unset (or empty, proto3's unset string) means user.
        role = turn.get("role")
        if role is None or role == "":
            role = "user"
        if role in ("user", "model"):
            roles.append(role)
        else:
            add(
                ErrorCode.INVALID_ROLE,
                f"{where}.role",
                f"role is {role!r}; expected 'user', 'model', or no role (user)",
            )
            roles.append(None)
        check_parts(turn.get("parts"), where, add, context, role=roles[-1], shape=shape)
    for i in range(1, len(roles)):
        if roles[i] is not None and roles[i] == roles[i - 1]:
            add(
                ErrorCode.ROLES_NOT_ALTERNATING,
                f"contents[{i}].role",
                f"two {roles[i]} turns in a row (contents[{i - 1}] and contents[{i}]); user and model must alternate"
                " (a turn with no role is a user turn)",
            )
    if roles[0] == "model":
        add(
            ErrorCode.FIRST_TURN_NOT_USER,
            "contents[0].role",
            "the conversation starts with a model turn; start with user",
        )
    if roles[-1] == "user":
        add(
            ErrorCode.LAST_TURN_NOT_MODEL,
            f"contents[{len(roles) - 1}].role",
            "the conversation ends with a user turn (a turn with no role is a user turn); "
            "the last turn must be the model's answer",
        )
    return shape


def _check_generation_config(config: object, add: Add, shape: ExampleShape) -> str:
    if not isinstance(config, dict):
        add(
            ErrorCode.NOT_AN_OBJECT,
            "generationConfig",
            f"generationConfig must be an object, got {type_name(config)}",
        )
        return "default"
    for key in RESOLUTION_KEYS:
        if key in config:
            resolution = resolution_name(config[key], f"generationConfig.{key}", add)
            if resolution is not None:
                shape.resolutions.add(resolution)
                return resolution
    return "default"


def _check_tools(tools: object, add: Add) -> None:
    if not isinstance(tools, list):
        add(
            ErrorCode.INVALID_TOOLS,
            "tools",
            f"tools must be a list of tool objects, got {type_name(tools)}",
        )
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
                add(
                    ErrorCode.INVALID_TOOLS,
                    f"{where}.{key}",
                    f"{key} must be a list of declarations, got {type_name(value)}",
                )
                continue
            for j, declaration in enumerate(value):
                name = declaration.get("name") if isinstance(declaration, dict) else None
                if not isinstance(name, str) or not name:
                    add(
                        ErrorCode.INVALID_TOOLS,
                        f"{where}.{key}[{j}]",
                        "a function declaration must be an object with a non-empty `name`",
                    )


def _check_system(system: object, add: Add, shape: ExampleShape) -> None:
    if not isinstance(system, dict):
        add(
            ErrorCode.NOT_AN_OBJECT,
            "systemInstruction",
            f"systemInstruction must be an object, got {type_name(system)}",
        )
        return
    for key in system:
        if key not in ("role", "parts"):
            add(
                ErrorCode.UNKNOWN_FIELD,
                f"systemInstruction.{key}",
                f"systemInstruction has role and parts, not {key!r}",
            )
    check_parts(system.get("parts"), "systemInstruction", add, None, role=None, shape=shape)
