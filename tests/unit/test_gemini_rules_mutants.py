"""What the Gemini rules tell the user about a whole example, pinned to code, field and message:
its top-level fields, the turns and their roles, systemInstruction, tools and generationConfig
(gemini_rules.full_check), and which lines the fast path may accept on its own
(gemini_rules.fast_check). The rules for one part are pinned in test_gemini_rules_detail.py.

The field names the line and place a user fixes; the message is what the report says, so its
words are part of the rule. Mutation testing showed the earlier tests asserted codes only."""

from __future__ import annotations

import json

import msgspec
import pytest

from autotune.catalog import load_catalog
from autotune.validation import gemini_rules
from autotune.validation.media_rules import MediaRules

CATALOG = load_catalog()
MODEL = CATALOG.get("gemini-3.5-flash")
assert MODEL is not None
USER = {"role": "user", "parts": [{"text": "Hi?"}]}
MODEL_TURN = {"role": "model", "parts": [{"text": "Hello."}]}
IMAGE = {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/i.png"}}

Finding = tuple[str, str | None, str]


def check(obj: dict) -> tuple[list[Finding], gemini_rules.ExampleShape]:
    assert MODEL is not None
    found: list[Finding] = []
    shape = gemini_rules.full_check(
        obj,
        lambda code, field, message: found.append((str(code), field, message)),
        MediaRules(CATALOG, MODEL, ()),
        MODEL.name,
    )
    return found, shape


def findings(obj: dict) -> list[Finding]:
    return check(obj)[0]


def conversation(*turns: object, **top: object) -> dict:
    return {"contents": list(turns), **top}


# --- the example's top-level fields ---------------------------------------------------------


def test_an_unknown_top_level_field_is_named_with_the_fields_an_example_may_have():
    assert findings(conversation(USER, MODEL_TURN, prompt="x")) == [
        (
            "unknown_field",
            "prompt",
            "unknown field 'prompt'; a Gemini example has contents, systemInstruction, tools, "
            "generationConfig",
        )
    ]


def test_a_legacy_messages_line_is_told_which_format_the_model_takes():
    # `messages` is not reported as an unknown field too: the one finding says what to do.
    assert findings({"messages": [{"role": "user", "content": "Hi"}]}) == [
        (
            "missing_contents",
            "messages",
            "this line uses the legacy `messages` format; gemini-3.5-flash takes `contents` "
            "(the `messages` format is for gemini-1.0-pro-002)",
        )
    ]


def test_an_example_without_contents_is_judged_on_that_alone():
    # The other fields of a line with no conversation are not worth reading yet.
    obj = {"systemInstruction": 5, "tools": 5, "generationConfig": 5, "extra": 1}
    assert findings(obj) == [
        (
            "unknown_field",
            "extra",
            "unknown field 'extra'; a Gemini example has contents, systemInstruction, tools, "
            "generationConfig",
        ),
        ("missing_contents", "contents", "the example has no `contents` list"),
    ]


@pytest.mark.parametrize(
    ("contents", "expected"),
    [
        (
            {"role": "user"},
            ("missing_contents", "contents", "`contents` must be a list of turns, got object"),
        ),
        (
            [],
            (
                "empty_contents",
                "contents",
                "`contents` is empty; an example needs a user turn and a model turn",
            ),
        ),
    ],
)
def test_contents_that_is_not_a_list_of_turns(contents, expected):
    found, shape = check({"contents": contents})
    assert found == [expected]
    # Each turn adds tokens to the dataset's estimate: a line with no turns adds none.
    assert shape.turns == 0


def test_snake_case_top_level_fields_are_read_like_camel_case_ones():
    obj = conversation(
        USER,
        MODEL_TURN,
        system_instruction={"parts": [{"text": "   "}]},
        generation_config={"media_resolution": "LOW"},
    )
    assert findings(obj) == [
        (
            "invalid_media_resolution",
            "generationConfig.media_resolution",
            'media resolution is "LOW"; expected one of MEDIA_RESOLUTION_UNSPECIFIED, '
            "MEDIA_RESOLUTION_LOW, MEDIA_RESOLUTION_MEDIUM, MEDIA_RESOLUTION_HIGH, "
            "MEDIA_RESOLUTION_ULTRA_HIGH",
        ),
        ("empty_text", "systemInstruction.parts[0].text", "the text is only whitespace"),
    ]


# --- turns and roles ----------------------------------------------------------------------------


def test_a_turn_that_is_not_an_object_is_named_and_the_turns_after_it_are_still_read():
    bad_model_turn = {"role": "model", "parts": [{"text": ""}]}
    assert findings(conversation("Hi?", bad_model_turn)) == [
        ("not_an_object", "contents[0]", "a turn must be an object, got string"),
        ("empty_text", "contents[1].parts[0].text", "the text is empty"),
    ]


def test_a_turn_that_is_not_an_object_has_no_role_to_compare():
    # Its role is unknown: it neither starts the conversation as a model turn nor repeats one.
    assert findings(conversation(MODEL_TURN, 7, MODEL_TURN)) == [
        ("not_an_object", "contents[1]", "a turn must be an object, got number"),
        (
            "first_turn_not_user",
            "contents[0].role",
            "the conversation starts with a model turn; start with user",
        ),
    ]


def test_an_unknown_field_of_a_turn_is_named_with_its_turn():
    turn = {**MODEL_TURN, "content": "Hello."}
    assert findings(conversation(USER, turn)) == [
        ("unknown_field", "contents[1].content", "a turn has role and parts, not 'content'"),
    ]


@pytest.mark.parametrize("unset", [{}, {"role": None}, {"role": ""}])
def test_a_turn_with_no_role_or_an_empty_one_is_the_users(unset):
    user = {**unset, "parts": [{"text": "Hi?"}]}
    assert findings(conversation(user, MODEL_TURN)) == []
    # ... so it cannot end the conversation, nor follow another user turn
    assert findings(conversation(USER, MODEL_TURN, USER, user)) == [
        (
            "roles_not_alternating",
            "contents[3].role",
            "two user turns in a row (contents[2] and contents[3]); user and model must alternate"
            " (a turn with no role is a user turn)",
        ),
        (
            "last_turn_not_model",
            "contents[3].role",
            "the conversation ends with a user turn (a turn with no role is a user turn); "
            "the last turn must be the model's answer",
        ),
    ]


def test_a_role_other_than_user_or_model_is_named():
    assistant = {"role": "assistant", "parts": [{"text": "Hello."}]}
    assert findings(conversation(USER, assistant)) == [
        (
            "invalid_role",
            "contents[1].role",
            "role is 'assistant'; expected 'user', 'model', or no role (user)",
        ),
    ]


def test_the_parts_of_a_turn_are_checked_in_that_turn_and_with_its_role():
    # A file in a model turn is refused because of the role the turn has.
    model_with_image = {"role": "model", "parts": [IMAGE]}
    assert findings(conversation(USER, model_with_image)) == [
        (
            "media_outside_user_turn",
            "contents[1].parts[0].fileData",
            "media belong in user turns; a tuned model answers with text, so a model turn cannot "
            "hold fileData",
        ),
    ]


def test_two_turns_in_a_row_with_the_same_role_are_named_where_the_second_one_is():
    assert findings(conversation(USER, USER, MODEL_TURN)) == [
        (
            "roles_not_alternating",
            "contents[1].role",
            "two user turns in a row (contents[0] and contents[1]); user and model must alternate"
            " (a turn with no role is a user turn)",
        ),
    ]
    assert findings(conversation(USER, MODEL_TURN, MODEL_TURN)) == [
        (
            "roles_not_alternating",
            "contents[2].role",
            "two model turns in a row (contents[1] and contents[2]); user and model must alternate"
            " (a turn with no role is a user turn)",
        ),
    ]


def test_two_turns_with_invalid_roles_in_a_row_are_not_also_called_a_repeat():
    bot = {"role": "bot", "parts": [{"text": "x"}]}
    assert [code for code, _, _ in findings(conversation(USER, bot, bot, MODEL_TURN))] == [
        "invalid_role",
        "invalid_role",
    ]


def test_a_conversation_must_start_with_the_user_and_end_with_the_model():
    assert findings(conversation(MODEL_TURN, USER)) == [
        (
            "first_turn_not_user",
            "contents[0].role",
            "the conversation starts with a model turn; start with user",
        ),
        (
            "last_turn_not_model",
            "contents[1].role",
            "the conversation ends with a user turn (a turn with no role is a user turn); "
            "the last turn must be the model's answer",
        ),
    ]


def test_the_shape_counts_the_turns_and_the_characters_of_texts_and_tools():
    system = {"parts": [{"text": "Be brief."}]}
    tools = [{"functionDeclarations": [{"name": "get_weather"}]}]
    plain, with_tools = (
        check(conversation(USER, MODEL_TURN, USER, MODEL_TURN, systemInstruction=system, **extra))[
            1
        ]
        for extra in ({}, {"tools": tools})
    )
    assert (plain.turns, plain.chars) == (4, len("Be brief.") + 2 * len("Hi?Hello."))
    # The tools count as their JSON text, as the tuning service reads them.
    assert with_tools.turns == 4
    assert with_tools.chars - plain.chars == len(
        b'[{"functionDeclarations":[{"name":"get_weather"}]}]'
    )


# --- systemInstruction --------------------------------------------------------------------------


def test_a_system_instruction_that_is_not_an_object_is_named():
    assert findings(conversation(USER, MODEL_TURN, systemInstruction="Be brief.")) == [
        (
            "not_an_object",
            "systemInstruction",
            "systemInstruction must be an object, got string",
        ),
    ]


def test_a_system_instruction_holds_role_and_text_parts_only():
    system = {"role": "system", "text": "Be brief.", "parts": [IMAGE, {"text": "Be kind."}]}
    found, shape = check(conversation(USER, MODEL_TURN, systemInstruction=system))
    assert found == [
        (
            "unknown_field",
            "systemInstruction.text",
            "systemInstruction has role and parts, not 'text'",
        ),
        (
            "invalid_part",
            "systemInstruction.parts[0].fileData",
            "systemInstruction parts must be text, not fileData",
        ),
    ]
    # its text counts towards the example's size
    assert shape.chars == len("Hi?Hello.Be kind.")


def test_a_system_instruction_without_parts_is_named():
    assert findings(conversation(USER, MODEL_TURN, systemInstruction={"role": "system"})) == [
        ("missing_parts", "systemInstruction.parts", "parts is missing; expected a list of parts"),
    ]


# --- tools --------------------------------------------------------------------------------------


def test_tools_that_are_not_a_list_are_named():
    assert findings(conversation(USER, MODEL_TURN, tools={"functionDeclarations": []})) == [
        ("invalid_tools", "tools", "tools must be a list of tool objects, got object"),
    ]


def test_each_tool_that_is_not_an_object_is_named():
    assert findings(conversation(USER, MODEL_TURN, tools=["search", None])) == [
        ("invalid_tools", "tools[0]", "a tool must be an object, got string"),
        ("invalid_tools", "tools[1]", "a tool must be an object, got null"),
    ]


@pytest.mark.parametrize(
    "kind",
    [
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
    ],
)
def test_the_tool_kinds_vertex_ai_defines_are_accepted_and_do_not_hide_the_next_field(kind):
    tool: dict[str, object] = {kind: {}, "calculator": {}}
    assert findings(conversation(USER, MODEL_TURN, tools=[tool])) == [
        ("unknown_field", "tools[0].calculator", "a tool has no field 'calculator'"),
    ]


def test_every_unknown_or_malformed_field_of_a_tool_is_named():
    tools = [{"calculator": {}, "function_declarations": {"name": "f"}, "browser": {}}]
    assert findings(conversation(USER, MODEL_TURN, tools=tools)) == [
        ("unknown_field", "tools[0].calculator", "a tool has no field 'calculator'"),
        (
            "invalid_tools",
            "tools[0].function_declarations",
            "function_declarations must be a list of declarations, got object",
        ),
        ("unknown_field", "tools[0].browser", "a tool has no field 'browser'"),
    ]


def test_every_function_declaration_needs_a_name():
    declarations = [{"name": "f"}, {"description": "no name"}, "g", {"name": ""}, {"name": 3}]
    tools = [{"functionDeclarations": declarations}, {"functionDeclarations": [{"name": "h"}]}]
    message = "a function declaration must be an object with a non-empty `name`"
    assert findings(conversation(USER, MODEL_TURN, tools=tools)) == [
        ("invalid_tools", f"tools[0].functionDeclarations[{j}]", message) for j in (1, 2, 3, 4)
    ]


# --- generationConfig ---------------------------------------------------------------------------


def media_resolutions(obj: dict) -> tuple[list[Finding], set[str], list[str]]:
    """The findings, the resolutions the example sets, and the resolution each file is judged at."""
    found, shape = check(obj)
    return found, shape.resolutions, [use[4] for use in shape.media]


def with_image(**top: object) -> dict:
    return conversation({"role": "user", "parts": [IMAGE, {"text": "What?"}]}, MODEL_TURN, **top)


def test_without_a_generation_config_media_are_judged_at_the_default_resolution():
    assert media_resolutions(with_image()) == ([], set(), ["default"])


@pytest.mark.parametrize("key", ["mediaResolution", "media_resolution"])
def test_the_generation_configs_media_resolution_applies_to_the_examples_files(key):
    config = {"temperature": 0.2, key: "MEDIA_RESOLUTION_LOW"}
    assert media_resolutions(with_image(generationConfig=config)) == ([], {"low"}, ["low"])


def test_an_invalid_media_resolution_in_the_generation_config_is_named_and_ignored():
    config = {"mediaResolution": "LOW"}
    found, resolutions, judged_at = media_resolutions(with_image(generationConfig=config))
    assert found == [
        (
            "invalid_media_resolution",
            "generationConfig.mediaResolution",
            'media resolution is "LOW"; expected one of MEDIA_RESOLUTION_UNSPECIFIED, '
            "MEDIA_RESOLUTION_LOW, MEDIA_RESOLUTION_MEDIUM, MEDIA_RESOLUTION_HIGH, "
            "MEDIA_RESOLUTION_ULTRA_HIGH",
        ),
    ]
    assert (resolutions, judged_at) == (set(), ["default"])


def test_a_generation_config_that_is_not_an_object_is_named():
    found, resolutions, judged_at = media_resolutions(with_image(generationConfig=["LOW"]))
    assert found == [
        ("not_an_object", "generationConfig", "generationConfig must be an object, got list"),
    ]
    assert (resolutions, judged_at) == (set(), ["default"])


# --- the fast path ------------------------------------------------------------------------------


def fast(obj: dict) -> tuple[int, int] | None:
    line = json.dumps(obj).encode()
    try:
        example = gemini_rules.fast_decoder.decode(line)
    except msgspec.ValidationError:
        return None  # the decoder already sends the line to the full path
    return gemini_rules.fast_check(example)


def test_the_fast_path_takes_a_clean_text_example_and_counts_its_characters_and_turns():
    # Most lines of a dataset are like these: the fast path must take them, and count what the
    # full path would (the counts become the token estimate).
    system = {"parts": [{"text": "Be brief."}, {"text": "Be kind."}]}
    examples = [
        conversation(USER, MODEL_TURN),
        conversation({"parts": [{"text": "Hi?"}]}, MODEL_TURN, USER, MODEL_TURN),
        conversation(USER, MODEL_TURN, systemInstruction=system),
        conversation({"role": "user", "parts": [{"text": "a"}, {"text": "bc"}]}, MODEL_TURN),
    ]
    for obj in examples:
        found, shape = check(obj)
        assert found == []
        assert fast(obj) == (shape.chars, shape.turns)
    assert [fast(obj) for obj in examples] == [(9, 2), (18, 4), (26, 2), (9, 2)]


@pytest.mark.parametrize(
    "obj",
    [
        conversation(USER, MODEL_TURN, tools=[{"calculator": {}}]),
        conversation(MODEL_TURN, USER, MODEL_TURN),
        conversation(USER, MODEL_TURN, USER),
        conversation(USER, USER, MODEL_TURN),
        conversation({"parts": [{"text": "Hi?"}]}, USER, MODEL_TURN),  # no role: a user turn too
        conversation(USER, MODEL_TURN, MODEL_TURN),
        conversation({"role": "user", "parts": [{"text": "Hi?"}, {"text": ""}]}, MODEL_TURN),
        conversation(USER, {"role": "model", "parts": [{"text": " \n"}]}),
        conversation(USER, MODEL_TURN, systemInstruction={"parts": [{"text": ""}]}),
        conversation(USER, MODEL_TURN, systemInstruction={"parts": [{"text": "a"}, {"text": " "}]}),
    ],
)
def test_the_fast_path_leaves_every_doubtful_example_to_the_full_path(obj):
    # Each of these is wrong (or, with tools, needs the tool rules): the fast path must not
    # accept it, or the line would pass without its findings.
    assert findings(obj) != []
    assert fast(obj) is None
