"""The rule book: generated valid datasets validate clean for every model of the seed, the fast
path agrees with the full path, and the details of each format."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotune.catalog import Catalog, ModelSpec, load_catalog
from autotune.settings import TuningSettings
from autotune.validation import DatasetSource, gemini_rules, legacy_rules, validate_dataset
from autotune.validation.media_rules import MediaRules


def model_of(catalog: Catalog, name: str) -> ModelSpec:
    found = catalog.get(name)
    assert found is not None, f"{name} is not in the catalog"
    return found


text = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=60).filter(
    lambda s: not s.isspace()
)


@st.composite
def gemini_example(draw) -> dict:
    pairs = draw(st.integers(1, 3))
    contents = []
    for _ in range(pairs):
        user = {
            "role": "user",
            "parts": [{"text": t} for t in draw(st.lists(text, min_size=1, max_size=2))],
        }
        if draw(st.booleans()):
            del user["role"]  # unset means user (Content.role is optional)
        contents.append(user)
        contents.append({"role": "model", "parts": [{"text": draw(text)}]})
    example: dict[str, object] = {"contents": contents}
    if draw(st.booleans()):
        example["systemInstruction"] = {"role": "system", "parts": [{"text": draw(text)}]}
    return example


@st.composite
def legacy_example(draw) -> dict:
    messages = [{"role": "system", "content": draw(text)}] if draw(st.booleans()) else []
    for _ in range(draw(st.integers(1, 3))):
        messages += [
            {"role": "user", "content": draw(text)},
            {"role": "model", "content": draw(text)},
        ]
    return {"messages": messages}


ROWS = 104


def dataset(examples: list[dict]) -> bytes:
    """ROWS lines cycling through the examples; numbering keeps them distinct (duplicates are a
    warning) and alternate lines escape non-ASCII, so both encodings are covered."""
    out = []
    for i in range(ROWS):
        ex = examples[i % len(examples)]
        ex = json.loads(json.dumps(ex))
        if "contents" in ex:
            ex["contents"][-1]["parts"].append({"text": f"#{i}"})
        else:
            ex["messages"][-1]["content"] += f" #{i}"
        out.append(json.dumps(ex, ensure_ascii=bool(i % 2)).encode())
    return b"\n".join(out) + b"\n"


SEED_GEMINI = [
    "gemini-1.5-pro-002",
    "gemini-1.5-flash-002",
    "gemini-2.0-flash-001",
    "gemini-2.5-flash",
    "gemini-3.1-flash-lite",
    "gemini-3.5-flash",
    "gemini-3.5-flash-lite",
]


@settings(max_examples=40, deadline=None)
@given(
    examples=st.lists(gemini_example(), min_size=1, max_size=12), model=st.sampled_from(SEED_GEMINI)
)
def test_generated_gemini_datasets_are_valid(examples, model):
    """Valid lines for every model; a retired model's report is invalid for that reason alone."""
    report = validate_dataset(
        DatasetSource("t", [dataset(examples)]), settings=TuningSettings(model=model, epochs=2)
    )
    retired = model_of(load_catalog(), model).retired
    assert set(report.counts) == ({"model_retired"} if retired else set()), report.errors[:3]
    assert report.valid is not retired
    assert report.example_count == ROWS
    assert report.files["train"].format == "gemini"


@settings(max_examples=40, deadline=None)
@given(examples=st.lists(legacy_example(), min_size=1, max_size=12))
def test_generated_legacy_datasets_are_valid_for_gemini_1_0_pro(examples):
    report = validate_dataset(
        DatasetSource("t", [dataset(examples)]),
        settings=TuningSettings(model="gemini-1.0-pro-002", epochs=2),
    )
    assert set(report.counts) == {"model_retired"}, report.errors[
        :3
    ]  # 1.0 Pro is retired: that is the only error
    assert report.files["train"].format == "legacy"


# Shapes that are sometimes wrong: the fast path must never accept what the full path rejects.
role = st.sampled_from(["user", "model", "assistant", "system", None, 3])
part = st.one_of(
    st.fixed_dictionaries({"text": st.sampled_from(["hi", "", "  ", "ok then", 5])}),
    st.just({"fileData": {"mimeType": "image/png", "fileUri": "gs://b/x.png"}}),
    st.just({"txt": "hi"}),
    st.just({"text": "a", "extra": 1}),
)
turn = st.fixed_dictionaries({"role": role, "parts": st.lists(part, max_size=3)})
maybe_example = st.one_of(
    st.fixed_dictionaries({"contents": st.lists(turn, max_size=4)}),
    st.fixed_dictionaries(
        {
            "contents": st.lists(turn, max_size=4),
            "systemInstruction": st.fixed_dictionaries({"parts": st.lists(part, max_size=2)}),
        }
    ),
    st.fixed_dictionaries(
        {"contents": st.lists(turn, max_size=4), "tools": st.just([{"functionDeclarations": []}])}
    ),
)
message = st.fixed_dictionaries(
    {"role": role, "content": st.sampled_from(["hi", "", " ", "fine", 7])}
)
maybe_legacy = st.fixed_dictionaries({"messages": st.lists(message, max_size=5)})


def full_issues(obj, legacy: bool):
    catalog = load_catalog()
    model = model_of(catalog, "gemini-1.0-pro-002" if legacy else "gemini-3.5-flash")
    found = []

    def add(code, field, message):
        found.append(code)

    if legacy:
        shape = legacy_rules.full_check(obj, add, model.name)
    else:
        shape = gemini_rules.full_check(obj, add, MediaRules(catalog, model, ()), model.name)
    return found, shape


@settings(max_examples=400, deadline=None)
@given(obj=maybe_example)
def test_gemini_fast_path_agrees_with_the_full_path(obj):
    line = json.dumps(obj).encode()
    try:
        fast = gemini_rules.fast_check(gemini_rules.fast_decoder.decode(line))
    except msgspec.ValidationError:
        fast = None
    issues, shape = full_issues(msgspec.json.decode(line), legacy=False)
    if fast is not None:
        assert issues == []
        assert fast == (shape.chars, shape.turns)
    elif not obj.get("tools") and not any(
        "fileData" in p for t in obj["contents"] for p in t["parts"]
    ):
        assert issues, "the fast path refused a clean text example"


@settings(max_examples=300, deadline=None)
@given(obj=maybe_legacy)
def test_legacy_fast_path_agrees_with_the_full_path(obj):
    line = json.dumps(obj).encode()
    try:
        fast = legacy_rules.fast_check(legacy_rules.fast_decoder.decode(line))
    except msgspec.ValidationError:
        fast = None
    issues, shape = full_issues(msgspec.json.decode(line), legacy=True)
    if fast is not None:
        assert issues == []
        assert fast == (shape.chars, shape.turns)
    else:
        assert issues, "the fast path refused a clean legacy example"


def test_snake_case_field_names_are_accepted():
    obj = {
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"file_data": {"mime_type": "image/png", "file_uri": "gs://b/a.png"}},
                    {"text": "What?"},
                ],
            },
            {"role": "model", "parts": [{"text": "A cat."}]},
        ],
    }
    issues, shape = full_issues(obj, legacy=False)
    assert issues == [] and shape.media == [
        (
            "image",
            "gs://b/a.png",
            "contents[0].parts[0].file_data.fileUri",
            None,
            "default",
            "image/png",
        )
    ]


def test_function_call_parts_and_tools_are_accepted():
    obj = {
        "tools": [
            {"functionDeclarations": [{"name": "get_weather", "parameters": {"type": "object"}}]}
        ],
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Lisbon?"}]},
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Lisbon"}}}],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"temp_c": 21}}}
                ],
            },
            {"role": "model", "parts": [{"text": "It is 21 °C in Lisbon."}]},
        ],
    }
    issues, shape = full_issues(obj, legacy=False)
    assert issues == [] and shape.turns == 4 and shape.chars > 40


def test_https_uris_are_accepted_and_not_allow_listed():
    catalog = load_catalog()
    model = model_of(catalog, "gemini-3.5-flash")
    found = []
    refs: list = []
    rules = MediaRules(catalog, model, {"data-bucket"})
    rules.check_file_data(
        {"mimeType": "application/pdf", "fileUri": "https://example.com/a.pdf"},
        "p",
        lambda *a: found.append(a),
        refs,
    )
    rules.check_file_data(
        {"mimeType": "IMAGE/PNG", "fileUri": "gs://data-bucket/a.png"},
        "q",
        lambda *a: found.append(a),
        refs,
    )
    assert found == [] and [r[0] for r in refs] == ["document", "image"]


def test_media_are_checked_once_per_distinct_object_and_named_on_every_referencing_line():
    class Inspector:
        def __init__(self):
            self.calls = []

        def stat(self, uris):
            self.calls.append(sorted(uris))
            return {u: (None if "missing" in u else 1000) for u in uris}

    def ex(i, uri):
        return {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"fileData": {"mimeType": "image/png", "fileUri": uri}},
                        {"text": f"q{i}"},
                    ],
                },
                {"role": "model", "parts": [{"text": "a"}]},
            ]
        }

    rows = [ex(i, "gs://data-bucket/ok.png") for i in range(10)] + [
        ex(100 + i, "gs://data-bucket/missing.png") for i in range(10)
    ]
    inspector = Inspector()
    report = validate_dataset(
        DatasetSource("t", [b"\n".join(json.dumps(r).encode() for r in rows)]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=1),
        media=inspector,
        dataset_bucket="data-bucket",
    )
    assert inspector.calls == [["gs://data-bucket/missing.png", "gs://data-bucket/ok.png"]]
    missing = [i for i in report.errors if i.code == "file_not_found"]
    assert [i.line for i in missing] == list(range(11, 21))
    assert all("referenced on 10 lines" in i.message for i in missing)
    assert report.counts["file_not_found"] == 10
    assert report.stats["media"] == {
        "references": 20,
        "distinct_objects": 2,
        "checked": True,
        "video_durations_read": 0,
    }
    tokens = report.stats["train"]["tokens"]
    assert tokens["min"] >= 258  # an image counts at least 258 tokens


def test_a_missing_object_is_listed_on_its_referencing_lines_up_to_the_per_code_cap():
    class Inspector:
        def stat(self, uris):
            return {u: None for u in uris}

    rows = [
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {
                            "fileData": {
                                "mimeType": "image/png",
                                "fileUri": "gs://data-bucket/gone.png",
                            }
                        },
                        {"text": f"q{i}"},
                    ],
                },
                {"role": "model", "parts": [{"text": "a"}]},
            ]
        }
        for i in range(8)
    ]
    report = validate_dataset(
        DatasetSource("t", [b"\n".join(json.dumps(r).encode() for r in rows)]),
        settings=TuningSettings(model="gemini-3.5-flash", epochs=1),
        media=Inspector(),
        dataset_bucket="data-bucket",
        max_listed_per_code=3,
    )
    missing = [i for i in report.errors if i.code == "file_not_found"]
    assert [i.line for i in missing] == [1, 2, 3]
    assert "referenced on 8 lines" in missing[0].message


@pytest.mark.parametrize(
    ("chars", "code"),
    [
        (100_000, None),
        (118_000, "token_limit_risk"),
        (200_000, "token_limit_risk"),
        (260_000, "token_limit_exceeded"),
    ],
)
def test_token_limit_thresholds_for_a_32k_model(chars, code):
    rows = [
        {
            "contents": [
                {"role": "user", "parts": [{"text": "x" * chars}]},
                {"role": "model", "parts": [{"text": "ok"}]},
            ]
        }
    ]
    rows += [
        {
            "contents": [
                {"role": "user", "parts": [{"text": f"q{i}"}]},
                {"role": "model", "parts": [{"text": "a"}]},
            ]
        }
        for i in range(120)
    ]
    report = validate_dataset(
        DatasetSource("t", [b"\n".join(json.dumps(r).encode() for r in rows)]),
        settings=TuningSettings(model="gemini-1.5-flash-002", epochs=1),
    )
    found = {c for c in report.counts if c.startswith("token_limit")}
    assert found == ({code} if code else set())


def _tokens(example: dict) -> tuple[int, int, str]:
    data = (json.dumps(example) + "\n").encode()
    report = validate_dataset(
        DatasetSource("t", [data]), settings=TuningSettings(model="gemini-3.5-flash", epochs=1)
    )
    return (
        report.stats["train"]["tokens"]["total"],
        report.stats["media_tokens"]["lower_bound_examples"],
        report.stats["method"],
    )


def test_media_count_at_their_documented_rates_and_unknown_lengths_are_lower_bounds():
    text_only = {
        "contents": [
            {"role": "user", "parts": [{"text": "Describe it."}]},
            {"role": "model", "parts": [{"text": "Grey."}]},
        ]
    }

    def with_media(mime: str, **extra) -> dict:
        example = json.loads(json.dumps(text_only))
        example["contents"][0]["parts"].insert(
            0, {"fileData": {"mimeType": mime, "fileUri": "gs://b/x"}, **extra}
        )
        return example

    base, base_lower, method = _tokens(text_only)
    assert base_lower == 0 and "258 per image" in method
    assert _tokens(with_media("image/png"))[:2] == (base + 258, 0)
    assert _tokens(with_media("application/pdf"))[:2] == (base + 258, 1)  # one page at least
    assert _tokens(with_media("audio/mpeg"))[:2] == (base, 1)  # length unknown offline
    assert _tokens(with_media("video/mp4"))[:2] == (base, 1)
    clip = with_media("video/mp4", videoMetadata={"startOffset": "2s", "endOffset": "12s"})
    assert _tokens(clip)[:2] == (base + 10 * 258, 0)


def test_the_fast_path_reads_a_missing_or_null_role_as_the_users():
    for first_turn in ({"parts": [{"text": "hi"}]}, {"role": None, "parts": [{"text": "hi"}]}):
        line = json.dumps(
            {"contents": [first_turn, {"role": "model", "parts": [{"text": "ok"}]}]}
        ).encode()
        assert gemini_rules.fast_check(gemini_rules.fast_decoder.decode(line)) == (4, 2)
    # two role-less turns in a row are two user turns: the full path decides
    line = json.dumps(
        {"contents": [{"parts": [{"text": "a"}]}, {"parts": [{"text": "b"}]}]}
    ).encode()
    assert gemini_rules.fast_check(gemini_rules.fast_decoder.decode(line)) is None
