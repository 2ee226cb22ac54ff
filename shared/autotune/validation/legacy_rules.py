"""Rules for the legacy format of gemini-1.0-pro-002: {"messages": [{"role", "content"}]}.

Text only; an optional `system` message first, then user and model alternate, starting with
user and ending with model. Same two-path design as gemini_rules.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from autotune.validation.codes import ErrorCode
from autotune.validation.gemini_rules import ExampleShape
from autotune.validation.media_rules import Add, type_name


class _Message(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    role: Literal["system", "user", "model"]
    content: str


class FastLegacyExample(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    messages: Annotated[list[_Message], msgspec.Meta(min_length=1)]


fast_decoder = msgspec.json.Decoder(FastLegacyExample)


def fast_check(example: FastLegacyExample) -> tuple[int, int] | None:
    messages = example.messages
    start = 1 if messages[0].role == "system" else 0
    if len(messages) - start < 2 or messages[start].role != "user" or messages[-1].role != "model":
        return None
    chars = 0
    previous = None
    for i, message in enumerate(messages):
        role = message.role
        if (role == "system" and i) or role == previous:
            return None
        previous = role
        text = message.content
        if not text or text.isspace():
            return None
        chars += len(text)
    return chars, len(messages)


def full_check(obj: dict, add: Add, model_name: str) -> ExampleShape:
    shape = ExampleShape()
    for key in obj:
        if key not in ("messages", "contents"):
            add(
                ErrorCode.UNKNOWN_FIELD,
                key,
                f"unknown field {key!r}; a legacy example has only messages",
            )
    messages = obj.get("messages")
    if messages is None:
        if "contents" in obj:
            add(
                ErrorCode.MISSING_CONTENTS,
                "contents",
                f"this line uses the Gemini `contents` format; {model_name} takes the legacy `messages` format",
            )
            if _has_media(obj["contents"]):
                add(
                    ErrorCode.UNSUPPORTED_MODALITY,
                    "contents",
                    f"{model_name} tunes on text only; this example has media",
                )
        else:
            add(ErrorCode.MISSING_CONTENTS, "messages", "the example has no `messages` list")
        return shape
    if not isinstance(messages, list):
        add(
            ErrorCode.MISSING_CONTENTS,
            "messages",
            f"`messages` must be a list, got {type_name(messages)}",
        )
        return shape
    if not messages:
        add(
            ErrorCode.EMPTY_CONTENTS,
            "messages",
            "`messages` is empty; an example needs a user and a model message",
        )
        return shape
    shape.turns = len(messages)
    roles: list[str | None] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            add(
                ErrorCode.NOT_AN_OBJECT,
                where,
                f"a message must be an object, got {type_name(message)}",
            )
            roles.append(None)
            continue
        for key in message:
            if key not in ("role", "content"):
                add(
                    ErrorCode.UNKNOWN_FIELD,
                    f"{where}.{key}",
                    f"a message has role and content, not {key!r}",
                )
        role = message.get("role")
        if role not in ("system", "user", "model"):
            shown = "missing" if role is None else repr(role)
            add(
                ErrorCode.INVALID_ROLE,
                f"{where}.role",
                f"role is {shown}; expected 'system', 'user' or 'model'",
            )
            role = None
        elif role == "system" and i:
            add(
                ErrorCode.SYSTEM_NOT_FIRST,
                f"{where}.role",
                "a system message may only be the first message",
            )
            role = None
        roles.append(role)
        content = message.get("content")
        if not isinstance(content, str):
            shown = "missing" if content is None else f"a {type_name(content)}"
            add(
                ErrorCode.MISSING_PARTS,
                f"{where}.content",
                f"content is {shown}; expected a string",
            )
        elif not content or content.isspace():
            add(
                ErrorCode.EMPTY_TEXT,
                f"{where}.content",
                "the content is empty" if not content else "the content is only whitespace",
            )
        else:
            shape.chars += len(content)
    start = 1 if roles[0] == "system" else 0
    conversation = roles[start:]
    if not conversation:
        add(
            ErrorCode.LAST_TURN_NOT_MODEL,
            "messages",
            "only a system message; add a user and a model message",
        )
        return shape
    for i in range(1, len(conversation)):
        if conversation[i] is not None and conversation[i] == conversation[i - 1]:
            at = i + start
            add(
                ErrorCode.ROLES_NOT_ALTERNATING,
                f"messages[{at}].role",
                f"two {conversation[i]} messages in a row (messages[{at - 1}] and messages[{at}])",
            )
    if conversation[0] == "model":
        add(
            ErrorCode.FIRST_TURN_NOT_USER,
            f"messages[{start}].role",
            "the conversation starts with a model message",
        )
    if conversation[-1] == "user":
        add(
            ErrorCode.LAST_TURN_NOT_MODEL,
            f"messages[{len(roles) - 1}].role",
            "the conversation ends with a user message",
        )
    return shape


_MEDIA_KEYS = frozenset({"fileData", "file_data", "inlineData", "inline_data"})


def _has_media(contents: object) -> bool:
    if not isinstance(contents, list):
        return False
    for turn in contents:
        parts = turn.get("parts") if isinstance(turn, dict) else None
        if isinstance(parts, list) and any(
            isinstance(p, dict) and _MEDIA_KEYS & p.keys() for p in parts
        ):
            return True
    return False
