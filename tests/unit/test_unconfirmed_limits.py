"""A limit refuses a dataset only when the catalog fact it rests on is confirmed (verdicts.py).

For each kind of limit the same dataset is checked twice: with the fact confirmed (an error, the
dataset refused) and with it listed as unconfirmed (a warning that says so, the dataset
accepted). The facts are confirmed or unconfirmed the way a team does it: a models file merged
over the shipped catalog. Then, over the shipped catalog as a whole: no code that refuses a
dataset fires on a fact the catalog leaves unconfirmed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autotune.catalog import CATALOG_FILE, Catalog, MediaKind, ModelSpec, catalog_from_files
from autotune.settings import TuningSettings
from autotune.validate_command import render_text
from autotune.validation import DatasetSource, ErrorCode, validate_for_model
from autotune.validation.code_info import CODE_INFO
from autotune.validation.codes import CODE_FACTS
from autotune.validation.verdicts import Verdicts

SHIPPED_TEXT = CATALOG_FILE.read_text(encoding="utf-8")
SHIPPED = catalog_from_files(SHIPPED_TEXT, None)
MODEL = "gemini-3.5-flash"


def shipped_model(name: str) -> ModelSpec:
    model = SHIPPED.get(name)
    assert model is not None, name
    return model


def turn(role: str, *parts: dict) -> dict:
    return {"role": role, "parts": list(parts)}


def text(i: int | str) -> dict:
    return {"text": f"Question {i}?"}


def example(i: int) -> dict:
    return {"contents": [turn("user", text(i)), turn("model", {"text": f"Answer {i}."})]}


def fd(mime: str, uri: str) -> dict:
    return {"fileData": {"mimeType": mime, "fileUri": uri}}


def media_example(i: int, *parts: dict) -> dict:
    return {"contents": [turn("user", *parts, text(i)), turn("model", {"text": "Seen."})]}


def jsonl(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def padded(rows: list[dict], total: int = 120) -> bytes:
    """The rows, then distinct plain examples up to `total` (no few_examples warning)."""
    return jsonl(rows + [example(1000 + i) for i in range(total - len(rows))])


def overlay(tmp_path: Path, text: str) -> Catalog:
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    return catalog_from_files(SHIPPED_TEXT, path)


def unconfirmed_list(
    item: ModelSpec | MediaKind, *, add: tuple[str, ...] = (), drop: tuple[str, ...] = ()
) -> str:
    """The shipped `unconfirmed` list of a model or media kind with facts added or dropped, as TOML."""
    facts = [f for f in item.unconfirmed if f not in drop] + [
        f for f in add if f not in item.unconfirmed
    ]
    return json.dumps(facts)


def check(
    catalog: Catalog,
    data: bytes,
    *,
    model: str = MODEL,
    validation: bytes | None = None,
    media=None,
    **settings,
):
    values = {"model": model, "epochs": 3, "region": "us-central1", **settings}
    return validate_for_model(
        DatasetSource("train.jsonl", [data]),
        settings=TuningSettings(**values),
        model=catalog.get(model),
        catalog=catalog,
        validation=None if validation is None else DatasetSource("val.jsonl", [validation]),
        media=media,
    )


def severities(report, code: ErrorCode) -> list[str]:
    return [i.severity for i in report.errors if i.code == code.value]


def assert_refused(report, code: ErrorCode) -> None:
    assert severities(report, code) and set(severities(report, code)) == {"error"}, report.counts
    assert not report.valid
    assert all("unconfirmed" not in i.message for i in report.errors if i.code == code.value)


def assert_warned(report, code: ErrorCode, fact: str) -> None:
    found = [i for i in report.errors if i.code == code.value]
    assert found and {i.severity for i in found} == {"warning"}, report.counts
    message = found[0].message
    assert fact in message and "unconfirmed" in message
    assert (
        "Vertex AI may still refuse" in message
        and "models_file" in message
        and "deploy/config.toml" in message
    )
    assert report.valid and report.error_count == 0, report.counts


class Inspector:
    def __init__(self, sizes: dict[str, int | None]) -> None:
        self.sizes = sizes

    def stat(self, uris):
        return {u: self.sizes.get(u) for u in uris}


# media kind limits -----------------------------------------------------------------------


def test_audio_count_per_example_refuses_only_once_confirmed(tmp_path):
    data = padded(
        [media_example(1, fd("audio/mpeg", "gs://b/a.mp3"), fd("audio/mpeg", "gs://b/b.mp3"))]
    )
    assert "max_per_example" in SHIPPED.media["audio"].unconfirmed
    assert_warned(check(SHIPPED, data), ErrorCode.TOO_MANY_MEDIA, "media.audio.max_per_example")
    audio = SHIPPED.media["audio"]
    confirmed = overlay(
        tmp_path,
        f"[media.audio]\nunconfirmed = {unconfirmed_list(audio, drop=('max_per_example',))}\n",
    )
    assert_refused(check(confirmed, data), ErrorCode.TOO_MANY_MEDIA)


def test_pdf_size_refuses_only_once_confirmed(tmp_path):
    pdf = "gs://b/report.pdf"
    data = padded([media_example(1, fd("application/pdf", pdf))])
    inspector = Inspector({pdf: 25_000_000})  # over the recorded 20 MB
    assert_warned(
        check(SHIPPED, data, media=inspector), ErrorCode.MEDIA_TOO_LARGE, "media.document.max_bytes"
    )
    confirmed = overlay(tmp_path, "[media.document]\nunconfirmed = []\n")
    assert_refused(check(confirmed, data, media=inspector), ErrorCode.MEDIA_TOO_LARGE)


def test_an_image_over_its_confirmed_limit_stays_an_error_next_to_an_unconfirmed_audio_one():
    """One code, two kinds, two severities in one report; the totals count each issue's own."""
    rows = [
        media_example(1, fd("audio/mpeg", "gs://b/a.mp3"), fd("audio/mpeg", "gs://b/b.mp3")),
        media_example(2, *(fd("image/png", f"gs://b/{i}.png") for i in range(31))),
    ]
    report = check(SHIPPED, padded(rows))
    assert [(i.line, i.severity) for i in report.errors if i.code == "too_many_media"] == [
        (1, "warning"),
        (2, "error"),
    ]
    assert not report.valid and report.error_count == 1 and report.warning_count == 1
    assert report.to_dict()["totals"] == {"errors": 1, "warnings": 1}
    assert "too_many_media (error/warning, 2)" in render_text(report)


def test_a_type_refused_by_an_unconfirmed_list_only_warns(tmp_path):
    """The video list is unconfirmed (spellings vary between pages); the image list is not."""
    rows = [
        media_example(1, fd("video/avi", "gs://b/a.avi")),
        media_example(2, fd("image/gif", "gs://b/a.gif")),
    ]
    report = check(SHIPPED, padded(rows))
    found = {i.line: i for i in report.errors if i.code == "unsupported_mime_type"}
    assert found[1].severity == "warning" and "media.video.mime_types" in found[1].message
    assert found[2].severity == "error"
    video = SHIPPED.media["video"]
    confirmed = overlay(
        tmp_path, f"[media.video]\nunconfirmed = {unconfirmed_list(video, drop=('mime_types',))}\n"
    )
    assert_refused(check(confirmed, padded(rows[:1])), ErrorCode.UNSUPPORTED_MIME_TYPE)


# model token limit -----------------------------------------------------------------------


def test_token_limit_refuses_only_while_confirmed(tmp_path):
    data = padded(
        [{"contents": [turn("user", {"text": "x " * 600_000}), turn("model", {"text": "ok"})]}]
    )
    assert_refused(check(SHIPPED, data), ErrorCode.TOKEN_LIMIT_EXCEEDED)
    model = shipped_model(MODEL)
    added = unconfirmed_list(model, add=("max_tokens_per_example",))
    unconfirmed = overlay(tmp_path, f'[models."{MODEL}"]\nunconfirmed = {added}\n')
    assert_warned(
        check(unconfirmed, data),
        ErrorCode.TOKEN_LIMIT_EXCEEDED,
        'models."gemini-3.5-flash".max_tokens_per_example',
    )


def test_the_2_0_token_limit_is_unconfirmed_in_the_shipped_catalog():
    data = padded(
        [{"contents": [turn("user", {"text": "x " * 600_000}), turn("model", {"text": "ok"})]}]
    )
    report = check(SHIPPED, data, model="gemini-2.0-flash-001")
    assert severities(report, ErrorCode.TOKEN_LIMIT_EXCEEDED) == ["warning"]
    assert report.error_count == 1 and severities(report, ErrorCode.MODEL_RETIRED) == [
        "error"
    ]  # retired all the same


# validation size rules -------------------------------------------------------------------


def test_validation_fraction_refuses_only_once_confirmed(tmp_path):
    data, validation = (
        padded([]),
        jsonl([example(5000 + i) for i in range(1001)]),
    )  # 1,001 > 30% of 120
    assert_warned(
        check(SHIPPED, data, validation=validation),
        ErrorCode.VALIDATION_OVER_TRAINING_FRACTION,
        'models."gemini-3.5-flash".validation_fraction',
    )
    model = shipped_model(MODEL)
    rest = unconfirmed_list(model, drop=("validation_fraction", "validation_fraction_over"))
    confirmed = overlay(tmp_path, f'[models."{MODEL}"]\nunconfirmed = {rest}\n')
    assert_refused(
        check(confirmed, data, validation=validation), ErrorCode.VALIDATION_OVER_TRAINING_FRACTION
    )


def test_validation_maximum_refuses_only_while_confirmed(tmp_path):
    data, validation = padded([]), jsonl([example(5000 + i) for i in range(11)])
    model = shipped_model(MODEL)
    confirmed = overlay(tmp_path, f'[models."{MODEL}"]\nmax_validation_examples = 10\n')
    assert_refused(
        check(confirmed, data, validation=validation), ErrorCode.VALIDATION_TOO_MANY_EXAMPLES
    )
    added = unconfirmed_list(model, add=("max_validation_examples",))
    unconfirmed = overlay(
        tmp_path, f'[models."{MODEL}"]\nmax_validation_examples = 10\nunconfirmed = {added}\n'
    )
    assert_warned(
        check(unconfirmed, data, validation=validation),
        ErrorCode.VALIDATION_TOO_MANY_EXAMPLES,
        "max_validation_examples",
    )


# training-examples maxima ----------------------------------------------------------------


def test_text_only_maximum_refuses_only_once_confirmed(tmp_path):
    data = jsonl([example(i) for i in range(21)])
    model = shipped_model(MODEL)
    assert "max_training_examples_text_only" in model.unconfirmed
    shipped_list = overlay(tmp_path, f'[models."{MODEL}"]\nmax_training_examples_text_only = 20\n')
    assert_warned(
        check(shipped_list, data), ErrorCode.TOO_MANY_EXAMPLES, "max_training_examples_text_only"
    )
    rest = unconfirmed_list(model, drop=("max_training_examples_text_only",))
    confirmed = overlay(
        tmp_path,
        f'[models."{MODEL}"]\nmax_training_examples_text_only = 20\nunconfirmed = {rest}\n',
    )
    report = check(confirmed, data)
    assert_refused(report, ErrorCode.TOO_MANY_EXAMPLES)
    assert report.error_count == 1


def test_multimodal_maximum_refuses_only_once_confirmed(tmp_path):
    data = padded([media_example(i, fd("image/png", f"gs://b/{i}.png")) for i in range(3)])
    model = shipped_model(MODEL)
    shipped_list = overlay(tmp_path, f'[models."{MODEL}"]\nmax_training_examples_multimodal = 2\n')
    assert_warned(
        check(shipped_list, data),
        ErrorCode.TOO_MANY_MULTIMODAL_EXAMPLES,
        "max_training_examples_multimodal",
    )
    rest = unconfirmed_list(model, drop=("max_training_examples_multimodal",))
    confirmed = overlay(
        tmp_path,
        f'[models."{MODEL}"]\nmax_training_examples_multimodal = 2\nunconfirmed = {rest}\n',
    )
    assert_refused(check(confirmed, data), ErrorCode.TOO_MANY_MULTIMODAL_EXAMPLES)


# function calling ------------------------------------------------------------------------

CALLING = {
    "contents": [
        turn("user", {"text": "Weather in Lisbon?"}),
        turn("model", {"functionCall": {"name": "get_weather", "args": {"city": "Lisbon"}}}),
        {"parts": [{"functionResponse": {"name": "get_weather", "response": {"c": 18}}}]},
        turn("model", {"text": "18 degrees."}),
    ]
}


def test_function_calling_refuses_only_while_confirmed(tmp_path):
    data = padded([CALLING])
    model = shipped_model(MODEL)
    assert "function_calling" in model.unconfirmed
    unconfirmed = overlay(tmp_path, f'[models."{MODEL}"]\nfunction_calling = false\n')
    assert_warned(
        check(unconfirmed, data),
        ErrorCode.FUNCTION_CALLING_UNSUPPORTED,
        'models."gemini-3.5-flash".function_calling',
    )
    rest = unconfirmed_list(model, drop=("function_calling",))
    confirmed = overlay(
        tmp_path, f'[models."{MODEL}"]\nfunction_calling = false\nunconfirmed = {rest}\n'
    )
    assert_refused(check(confirmed, data), ErrorCode.FUNCTION_CALLING_UNSUPPORTED)


def test_shipped_2_5_function_calling_is_confirmed_for_flash_only():
    data = padded([CALLING])
    assert set(
        severities(
            check(SHIPPED, data, model="gemini-2.5-flash"), ErrorCode.FUNCTION_CALLING_UNSUPPORTED
        )
    ) == {"error"}
    lite = check(SHIPPED, data, model="gemini-2.5-flash-lite")
    assert set(severities(lite, ErrorCode.FUNCTION_CALLING_UNSUPPORTED)) == {"warning"}


# mixed media resolutions -----------------------------------------------------------------


def test_mixed_media_resolutions_refuse_only_while_confirmed(tmp_path):
    rows = [
        {
            **media_example(1, fd("image/png", "gs://b/1.png")),
            "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"},
        },
        {
            **media_example(2, fd("image/png", "gs://b/2.png")),
            "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_HIGH"},
        },
    ]
    data = padded(rows)
    model = shipped_model(MODEL)
    unconfirmed = overlay(tmp_path, f'[models."{MODEL}"]\nmixed_media_resolution = false\n')
    assert_warned(
        check(unconfirmed, data), ErrorCode.MIXED_MEDIA_RESOLUTIONS, "mixed_media_resolution"
    )
    rest = unconfirmed_list(model, drop=("mixed_media_resolution",))
    confirmed = overlay(
        tmp_path, f'[models."{MODEL}"]\nmixed_media_resolution = false\nunconfirmed = {rest}\n'
    )
    assert_refused(check(confirmed, data), ErrorCode.MIXED_MEDIA_RESOLUTIONS)


# regions ---------------------------------------------------------------------------------


def test_region_refuses_only_while_confirmed(tmp_path):
    data = padded([])
    lite = "gemini-3.5-flash-lite"
    assert "regions" in shipped_model(lite).unconfirmed
    assert_warned(
        check(SHIPPED, data, model=lite, region="us-west1"),
        ErrorCode.UNSUPPORTED_REGION,
        'models."gemini-3.5-flash-lite".regions',
    )
    rest = unconfirmed_list(shipped_model(lite), drop=("regions",))
    confirmed = overlay(tmp_path, f'[models."{lite}"]\nunconfirmed = {rest}\n')
    assert_refused(
        check(confirmed, data, model=lite, region="us-west1"), ErrorCode.UNSUPPORTED_REGION
    )
    assert_refused(
        check(SHIPPED, data, model=MODEL, region="us-west1"), ErrorCode.UNSUPPORTED_REGION
    )


# retirement: confirmed where it is, even when its date is not ------------------------------


def test_a_retired_model_stays_an_error_when_only_its_date_is_unconfirmed():
    pro = shipped_model("gemini-1.0-pro-002")
    assert "lifecycle_date" in pro.unconfirmed and SHIPPED.confirmed(pro, "lifecycle")
    data = jsonl(
        [
            {"messages": [{"role": "user", "content": f"Q{i}"}, {"role": "model", "content": "A"}]}
            for i in range(120)
        ]
    )
    report = check(SHIPPED, data, model="gemini-1.0-pro-002")
    retired = [i for i in report.errors if i.code == "model_retired"]
    assert [i.severity for i in retired] == ["error"] and not report.valid
    assert "date is unconfirmed" in retired[0].message


# the rule over the shipped catalog -------------------------------------------------------


def _declared(code: ErrorCode) -> list[tuple[str, str]]:
    return [(table, name) for table, name in (fact.split(".", 1) for fact in CODE_FACTS[code])]


def test_declared_facts_are_facts_of_the_catalog():
    for code, facts in CODE_FACTS.items():
        assert facts, code
        for table, name in _declared(code):
            fields = (
                ModelSpec.__struct_fields__ if table == "model" else MediaKind.__struct_fields__
            )
            assert table in ("model", "media") and name in fields, (code, table, name)


@pytest.mark.parametrize("model_name", list(SHIPPED.models))
def test_no_error_fires_on_an_unconfirmed_fact_of_the_shipped_catalog(model_name):
    model = shipped_model(model_name)
    verdicts = Verdicts(SHIPPED, model)
    kinds = [k for k in model.modalities if k in SHIPPED.media]
    for code in CODE_FACTS:
        if CODE_INFO[code][0] != "error":
            assert verdicts.severity(code) == CODE_INFO[code][0], (
                code
            )  # a warning never becomes an error
            continue
        for table, name in _declared(code):
            fact = f"{table}.{name}"
            for kind in kinds if table == "media" else [None]:
                item = model if kind is None else SHIPPED.media[kind]
                confirmed = SHIPPED.confirmed(item, name)
                assert verdicts.severity(code, kind, (fact,)) == (
                    "error" if confirmed else "warning"
                ), (code, kind, fact)
                if not confirmed:  # and whatever else the finding rests on
                    assert verdicts.severity(code, kind) == "warning", (code, kind)


def test_the_models_file_example_in_the_docs_confirms_what_it_says(tmp_path):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "error-codes.md").read_text(
        encoding="utf-8"
    )
    section = doc[doc.index("## Limits that rest on unconfirmed facts") :]
    start = section.index("```toml\n") + len("```toml\n")
    models_file = section[start : section.index("```", start)]
    data, validation = padded([]), jsonl([example(5000 + i) for i in range(1001)])
    assert_refused(
        check(overlay(tmp_path, models_file), data, validation=validation),
        ErrorCode.VALIDATION_OVER_TRAINING_FRACTION,
    )
