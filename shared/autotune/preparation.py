"""Data that is almost right, made ready for tuning (pure: plain values in, plain values out).

`convert_example` turns one example of a format people already have into the format the chosen
model takes, and says what it changed:

- OpenAI chat: {"messages": [{"role": "system"|"user"|"assistant", "content": str | [text parts]}]}
  (an optional "weight" or "name" on a message is dropped, and said so);
- the legacy format of gemini-1.0-pro-002: {"messages": [{"role": "system"|"user"|"model", "content"}]};
- prompt/response pairs: {"prompt", "response" (or "completion"), optional "system"}, from JSONL
  or from a CSV file's rows (read by the caller);
- Gemini {"contents": [...]}: kept as it is for a Gemini model.

Into Gemini `contents` (roles user/model, leading system messages as `systemInstruction`,
consecutive turns of one role merged into one turn of several parts, since Gemini requires the
roles to alternate), or into the legacy `messages` for a legacy-format model.

`split_plan` chooses a validation set deterministically: an example goes to validation when the
hash of its converted content falls under the asked fraction, so the same example always lands
on the same side (identical examples together, whatever the file's order), and the set is cut to
the model's limits from the catalog, keeping the lowest hashes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

OPENAI_CHAT = "openai-chat"
LEGACY_MESSAGES = "legacy-messages"
PROMPT_RESPONSE = "prompt-response"
GEMINI_CONTENTS = "gemini-contents"

PROMPT_KEYS = ("prompt",)
RESPONSE_KEYS = ("response", "completion")
SYSTEM_KEYS = ("system",)

# The documented minimum of training examples (autotune.validation.scan.MIN_EXAMPLES): a
# split never leaves fewer.
MIN_TRAINING_EXAMPLES = 16
# Current Vertex AI limits: above this many validation examples the set may also be at most
# VALIDATION_SHARE_LIMIT of the training examples.
VALIDATION_SHARE_ABOVE = 1000
VALIDATION_SHARE_LIMIT = 0.30


class Unconvertible(ValueError):
    """This example cannot be converted; the message says why and where in the example."""


@dataclass(frozen=True)
class Converted:
    example: dict[str, Any]
    source_format: str
    changes: tuple[str, ...] = ()  # what was changed, one short phrase each (counted by the caller)


def detect_format(obj: Mapping[str, Any]) -> str:
    if "contents" in obj:
        return GEMINI_CONTENTS
    if "messages" in obj:
        messages = obj["messages"]
        roles = (
            {m.get("role") for m in messages if isinstance(m, Mapping)}
            if isinstance(messages, list)
            else set()
        )
        return OPENAI_CHAT if "assistant" in roles or "model" not in roles else LEGACY_MESSAGES
    if any(k in obj for k in PROMPT_KEYS) or any(k in obj for k in RESPONSE_KEYS):
        return PROMPT_RESPONSE
    raise Unconvertible(
        f"not a known format: keys {', '.join(sorted(map(str, obj))) or '(none)'}; expected messages, "
        "prompt/response (or prompt/completion) or contents"
    )


def convert_example(obj: object, target_format: str) -> Converted:
    """One example in the target format ("gemini" or "legacy", as the catalog names formats)."""
    if not isinstance(obj, Mapping):
        raise Unconvertible(f"an example must be a JSON object, not {type(obj).__name__}")
    source = detect_format(obj)
    changes: list[str] = []
    if source == GEMINI_CONTENTS:
        if target_format == "gemini":
            return Converted(dict(obj), source)
        turns = _turns_from_contents(obj)
        system = _system_from_contents(obj)
        changes.append("Gemini contents rewritten as legacy messages")
    elif source == PROMPT_RESPONSE:
        system, turns = _turns_from_pair(obj)
        changes.append("prompt/response pair made a user turn and a model turn")
    else:
        system, turns = _turns_from_messages(obj["messages"], changes)
    extra = sorted(
        set(obj)
        - {"messages", "contents", "systemInstruction", *PROMPT_KEYS, *RESPONSE_KEYS, *SYSTEM_KEYS}
    )
    if extra:
        changes.append(f"top-level field(s) dropped: {', '.join(extra)}")
    turns = _merged(turns, changes)
    if not turns:
        raise Unconvertible("no user or assistant turn to convert")
    if target_format == "legacy":
        messages = ([{"role": "system", "content": system}] if system is not None else []) + [
            {"role": role, "content": "\n\n".join(texts)} for role, texts in turns
        ]
        return Converted({"messages": messages}, source, tuple(changes))
    example: dict[str, Any] = {}
    if system is not None:
        example["systemInstruction"] = {"parts": [{"text": system}]}
        changes.append("system message moved to systemInstruction")
    example["contents"] = [
        {"role": role, "parts": [{"text": t} for t in texts]} for role, texts in turns
    ]
    return Converted(example, source, tuple(changes))


def _text(content: object, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for i, part in enumerate(content):
            if (
                isinstance(part, Mapping)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise Unconvertible(
                    f"{where}.content[{i}] is a {kind!s} part; only text parts are converted "
                    "(media must be referenced by fileData with a gs:// URI in Gemini contents)"
                )
        return "\n".join(texts)
    raise Unconvertible(
        f"{where}.content must be text or a list of text parts, not {type(content).__name__}"
    )


def _turns_from_messages(
    messages: object, changes: list[str]
) -> tuple[str | None, list[tuple[str, list[str]]]]:
    if not isinstance(messages, list) or not messages:
        raise Unconvertible("messages must be a non-empty list")
    system_parts: list[str] = []
    turns: list[tuple[str, list[str]]] = []
    renamed = dropped = False
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise Unconvertible(f"{where} is not an object")
        role = message.get("role")
        if {"weight", "name"} & set(message):
            dropped = True
        if role == "system":
            if turns:
                raise Unconvertible(
                    f"{where} is a system message after the conversation began; Gemini takes a system "
                    "instruction only before it"
                )
            system_parts.append(_text(message.get("content"), where))
            continue
        if role == "assistant":
            role, renamed = "model", True
        if role not in ("user", "model"):
            raise Unconvertible(
                f"{where}.role is {role!r}; converted are system, user, assistant (and model)"
            )
        turns.append((role, [_text(message.get("content"), where)]))
    if renamed:
        changes.append("role 'assistant' renamed 'model'")
    if dropped:
        changes.append(
            "message field(s) weight/name dropped (Gemini tuning data has no such field)"
        )
    return ("\n\n".join(system_parts) if system_parts else None), turns


def _turns_from_pair(obj: Mapping[str, Any]) -> tuple[str | None, list[tuple[str, list[str]]]]:
    prompt = next((obj[k] for k in PROMPT_KEYS if k in obj), None)
    response = next((obj[k] for k in RESPONSE_KEYS if k in obj), None)
    system = next((obj[k] for k in SYSTEM_KEYS if k in obj), None)
    for name, value in (("prompt", prompt), ("response", response)):
        if not isinstance(value, str):
            raise Unconvertible(
                f"{name} is {'missing' if value is None else type(value).__name__}; both prompt and response must be text"
            )
    if system is not None and not isinstance(system, str):
        raise Unconvertible(f"system is {type(system).__name__}, not text")
    assert isinstance(prompt, str) and isinstance(
        response, str
    )  # the loop above refused anything else
    return (system or None), [("user", [prompt]), ("model", [response])]


def _turns_from_contents(obj: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    contents = obj.get("contents")
    if not isinstance(contents, list):
        raise Unconvertible("contents must be a list")
    turns = []
    for i, content in enumerate(contents):
        if not isinstance(content, Mapping) or not isinstance(content.get("parts"), list):
            raise Unconvertible(f"contents[{i}] has no parts list")
        texts = []
        for j, part in enumerate(content["parts"]):
            if not isinstance(part, Mapping) or not isinstance(part.get("text"), str):
                raise Unconvertible(
                    f"contents[{i}].parts[{j}] is not text; the legacy format is text only"
                )
            texts.append(part["text"])
        turns.append((content.get("role") or "user", texts))
    return turns


def _system_from_contents(obj: Mapping[str, Any]) -> str | None:
    instruction = obj.get("systemInstruction")
    if instruction is None:
        return None
    parts = instruction.get("parts") if isinstance(instruction, Mapping) else None
    if not isinstance(parts, list) or not all(
        isinstance(p, Mapping) and isinstance(p.get("text"), str) for p in parts
    ):
        raise Unconvertible("systemInstruction must hold text parts")
    return "\n\n".join(p["text"] for p in parts)


def _merged(turns: list[tuple[str, list[str]]], changes: list[str]) -> list[tuple[str, list[str]]]:
    merged: list[tuple[str, list[str]]] = []
    for role, texts in turns:
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(texts)
            if "consecutive turns of one role merged" not in changes:
                changes.append("consecutive turns of one role merged")
        else:
            merged.append((role, list(texts)))
    return merged


def prompt_response_row(row: Mapping[str, str | None]) -> dict[str, str]:
    """A CSV row (header names matched case-insensitively) as a prompt/response example."""
    by_name = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    example: dict[str, str] = {}
    for key in (*PROMPT_KEYS, *RESPONSE_KEYS, *SYSTEM_KEYS):
        value = by_name.get(key)
        if value is not None and value != "":
            example[key] = value
        elif key in by_name and key in PROMPT_KEYS + RESPONSE_KEYS:
            example[key] = ""
    return example


def canonical_bytes(example: Mapping[str, Any]) -> bytes:
    """One JSONL line's bytes: the same example always gives the same bytes (and hash)."""
    return json.dumps(example, ensure_ascii=False, separators=(",", ":")).encode()


def content_hash(line: bytes) -> int:
    """64 bits of the line's SHA-256: its place in the validation draw."""
    return int.from_bytes(hashlib.sha256(line).digest()[:8], "big")


HASH_SPACE = 1 << 64


@dataclass(frozen=True)
class SplitPlan:
    threshold: int  # an example with content_hash < threshold goes to validation
    validation: int
    training: int
    asked: int  # examples under the asked fraction before the limits
    limits: tuple[str, ...] = field(default=())  # which limits cut the set, in words


def split_plan(
    hashes: Sequence[int], fraction: float, *, max_validation_examples: int, model: str
) -> SplitPlan:
    """How many examples go to validation, and the hash threshold that picks them."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"the validation fraction must be between 0 and 1 (exclusive), not {fraction}"
        )
    total = len(hashes)
    cut = int(fraction * HASH_SPACE)
    drawn = sorted(h for h in hashes if h < cut)
    asked = len(drawn)
    keep = asked
    limits = []
    if keep > max_validation_examples:
        keep = max_validation_examples
        limits.append(f"{model} accepts at most {max_validation_examples:,} validation examples")
    # keep <= share x (total - keep)  <=>  keep <= share x total / (1 + share)
    share_cap = max(
        VALIDATION_SHARE_ABOVE, int(VALIDATION_SHARE_LIMIT * total / (1 + VALIDATION_SHARE_LIMIT))
    )
    if keep > share_cap:
        keep = share_cap
        limits.append(
            f"above {VALIDATION_SHARE_ABOVE:,} validation examples, at most "
            f"{VALIDATION_SHARE_LIMIT:.0%} of the training examples"
        )
    if total - keep < MIN_TRAINING_EXAMPLES:
        keep = max(0, total - MIN_TRAINING_EXAMPLES)
        limits.append(f"the training set keeps at least {MIN_TRAINING_EXAMPLES} examples")
    # Identical examples share a hash: the threshold keeps them on one side, so the set may come
    # out smaller than `keep` rather than split a duplicate across the two files.
    threshold = drawn[keep] if keep < asked else cut
    validation = sum(1 for h in drawn if h < threshold)
    return SplitPlan(
        threshold=threshold,
        validation=validation,
        training=total - validation,
        asked=asked,
        limits=tuple(limits),
    )
