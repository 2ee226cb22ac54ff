"""Conversion into the model's format (each source format, each way an example cannot be
converted) and the validation split: deterministic by content, within the model's limits."""

import random
import re

import pytest

from autotune.preparation import (
    GEMINI_CONTENTS,
    LEGACY_MESSAGES,
    MIN_TRAINING_EXAMPLES,
    OPENAI_CHAT,
    PROMPT_RESPONSE,
    Unconvertible,
    canonical_bytes,
    content_hash,
    convert_example,
    prompt_response_row,
    split_plan,
)


def test_openai_chat_becomes_contents_with_a_system_instruction():
    converted = convert_example(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}],
                },
                {"role": "assistant", "content": "Hello.", "weight": 1},
            ]
        },
        "gemini",
    )
    assert converted.source_format == OPENAI_CHAT
    assert converted.example == {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Hi\nthere"}]},
            {"role": "model", "parts": [{"text": "Hello."}]},
        ],
    }
    assert set(converted.changes) == {
        "role 'assistant' renamed 'model'",
        "system message moved to systemInstruction",
        "message field(s) weight/name dropped (Gemini tuning data has no such field)",
    }


def test_legacy_messages_and_prompt_response_become_contents():
    legacy = convert_example(
        {"messages": [{"role": "user", "content": "a"}, {"role": "model", "content": "b"}]},
        "gemini",
    )
    assert legacy.source_format == LEGACY_MESSAGES and legacy.changes == ()
    assert legacy.example == {
        "contents": [
            {"role": "user", "parts": [{"text": "a"}]},
            {"role": "model", "parts": [{"text": "b"}]},
        ]
    }
    pair = convert_example({"prompt": "q", "completion": "r", "system": "s"}, "gemini")
    assert pair.source_format == PROMPT_RESPONSE
    assert pair.example["systemInstruction"] == {"parts": [{"text": "s"}]}
    assert [c["role"] for c in pair.example["contents"]] == ["user", "model"]


def test_consecutive_turns_of_one_role_are_merged_so_roles_alternate():
    converted = convert_example(
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": "c"},
            ]
        },
        "gemini",
    )
    assert converted.example["contents"][0] == {
        "role": "user",
        "parts": [{"text": "a"}, {"text": "b"}],
    }
    assert "consecutive turns of one role merged" in converted.changes


def test_for_a_legacy_model_everything_becomes_messages():
    chat = convert_example(
        {
            "messages": [
                {"role": "system", "content": "s"},
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
            ]
        },
        "legacy",
    )
    assert chat.example == {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "a"},
            {"role": "model", "content": "b"},
        ]
    }
    gemini = convert_example(
        {
            "systemInstruction": {"parts": [{"text": "s"}]},
            "contents": [
                {"role": "user", "parts": [{"text": "a"}]},
                {"role": "model", "parts": [{"text": "b"}]},
            ],
        },
        "legacy",
    )
    assert gemini.example == chat.example


def test_gemini_contents_are_kept_as_they_are_for_a_gemini_model():
    example = {
        "contents": [
            {
                "role": "user",
                "parts": [{"fileData": {"mimeType": "image/png", "fileUri": "gs://b/x.png"}}],
            },
            {"role": "model", "parts": [{"text": "x"}]},
        ]
    }
    converted = convert_example(example, "gemini")
    assert (
        converted.source_format == GEMINI_CONTENTS
        and converted.example == example
        and converted.changes == ()
    )


@pytest.mark.parametrize(
    ("example", "target", "message"),
    [
        (["not", "an", "object"], "gemini", "must be a JSON object"),
        ({"text": "x"}, "gemini", "not a known format"),
        ({"messages": []}, "gemini", "non-empty list"),
        ({"messages": ["x"]}, "gemini", "messages[0] is not an object"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "gemini", "messages[0].role is 'tool'"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}]},
            "gemini",
            "after the conversation began",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ]
            },
            "gemini",
            "image_url part",
        ),
        (
            {"messages": [{"role": "user", "content": 3}]},
            "gemini",
            "must be text or a list of text parts",
        ),
        ({"messages": [{"role": "system", "content": "s"}]}, "gemini", "no user or assistant turn"),
        ({"prompt": "q"}, "gemini", "response is missing"),
        ({"prompt": 1, "response": "r"}, "gemini", "prompt is int"),
        ({"prompt": "q", "response": "r", "system": 2}, "gemini", "system is int"),
        ({"contents": [{"role": "user", "parts": [{"fileData": {}}]}]}, "legacy", "text only"),
    ],
)
def test_what_cannot_be_converted_says_why(example, target, message):
    with pytest.raises(Unconvertible, match=re.escape(message)):
        convert_example(example, target)


def test_csv_rows_are_matched_by_header_name():
    assert prompt_response_row({"Prompt ": "q", "RESPONSE": "r", "notes": "x"}) == {
        "prompt": "q",
        "response": "r",
    }
    assert prompt_response_row({"prompt": "q", "completion": "", "system": "s"}) == {
        "prompt": "q",
        "completion": "",
        "system": "s",
    }


def lines(n: int, tag: str = "") -> list[bytes]:
    return [
        canonical_bytes({"contents": [{"role": "user", "parts": [{"text": f"{tag}{i}"}]}]})
        for i in range(n)
    ]


def validation_of(rows: list[bytes], fraction: float, cap: int = 5000) -> set[bytes]:
    plan = split_plan(
        [content_hash(r) for r in rows], fraction, max_validation_examples=cap, model="m"
    )
    return {r for r in rows if content_hash(r) < plan.threshold}


def test_the_split_is_decided_by_content_not_by_order():
    rows = lines(500)
    first = validation_of(rows, 0.2)
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    assert validation_of(shuffled, 0.2) == first
    assert 60 <= len(first) <= 140  # about a fifth of 500
    # Adding examples moves none of the earlier ones across.
    more = validation_of(rows + lines(500, "extra-"), 0.2)
    assert first <= more and not (set(rows) - first) & more


def test_identical_examples_land_on_the_same_side():
    rows = lines(100) * 3
    chosen = validation_of(rows, 0.3)
    assert all(rows.count(r) == 3 for r in chosen)


def test_the_split_keeps_within_the_models_limit_and_the_training_minimum():
    rows = lines(2000)
    plan = split_plan(
        [content_hash(r) for r in rows],
        0.5,
        max_validation_examples=256,
        model="gemini-1.5-flash-002",
    )
    assert plan.validation == 256 and plan.training == 1744 and plan.asked > 256
    assert "gemini-1.5-flash-002 accepts at most 256" in plan.limits[0]
    small = split_plan(
        [content_hash(r) for r in lines(20)], 0.5, max_validation_examples=5000, model="m"
    )
    assert small.training >= MIN_TRAINING_EXAMPLES and small.validation <= 4
    tiny = split_plan(
        [content_hash(r) for r in lines(10)], 0.5, max_validation_examples=5000, model="m"
    )
    assert tiny.validation == 0 and tiny.training == 10


def test_above_a_thousand_validation_examples_at_most_30_percent_of_training():
    rows = lines(6000)
    plan = split_plan([content_hash(r) for r in rows], 0.5, max_validation_examples=5000, model="m")
    assert plan.validation > 1000 and plan.validation <= 0.3 * plan.training
    assert any("30%" in limit for limit in plan.limits)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_a_fraction_outside_zero_and_one_is_refused(fraction):
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_plan([1, 2, 3], fraction, max_validation_examples=10, model="m")
