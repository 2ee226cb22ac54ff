"""The catalog (models.toml) holds every model of the seed and today's, with the facts the
validator and the submitter rely on."""

from __future__ import annotations

import pytest

from autotune.catalog import (
    ADAPTER_SIZE_ENUM_NAMES,
    ADAPTER_SIZE_ENUM_NUMBERS,
    CATALOG_FILE,
    MODELS_FILE_VAR,
    Catalog,
    CatalogError,
    MediaKind,
    ModelSpec,
    adapter_size_enum_name,
    catalog_from_files,
    get_model,
    load_catalog,
    model_names,
    parse_catalog,
)


def model(name: str) -> ModelSpec:
    found = get_model(name)
    assert found is not None, f"{name} is not in the catalog"
    return found


def model_of(catalog: Catalog, name: str) -> ModelSpec:
    found = catalog.get(name)
    assert found is not None, f"{name} is not in the catalog"
    return found


def kind_of(catalog: Catalog, mime_type: str) -> MediaKind:
    found = catalog.media_kind_of(mime_type)
    assert found is not None, f"{mime_type} is no media kind of the catalog"
    return found


SEED = ["gemini-1.5-pro-002", "gemini-1.5-flash-002", "gemini-1.0-pro-002"]
LINE_2_0 = ["gemini-2.0-flash-001", "gemini-2.0-flash-lite-001"]
CURRENT = [
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-3.1-flash-lite",
    "gemini-3.5-flash",
    "gemini-3.5-flash-lite",
]


def test_every_model_the_docs_list_and_the_retired_ones_datasets_still_name():
    assert model_names() == SEED + LINE_2_0 + CURRENT
    retired = {m.name for m in load_catalog().models.values() if m.retired}
    assert retired == set(SEED + LINE_2_0 + CURRENT[:3])
    assert model("gemini-3.5-flash-lite").lifecycle == "ga"


@pytest.mark.parametrize("name", SEED)
def test_seed_limits(name):
    m = model(name)
    assert m.max_tokens_per_example == 32_000
    assert m.max_validation_examples == 256
    assert m.max_file_bytes == 1024**3
    assert "us-central1" in m.regions


def test_seed_adapter_sizes_and_formats():
    assert model("gemini-1.5-pro-002").adapter_sizes == (1, 4)
    assert model("gemini-1.5-pro-002").default_adapter_size == 4
    assert model("gemini-1.5-flash-002").adapter_sizes == (1, 4, 8, 16)
    assert model("gemini-1.5-flash-002").default_adapter_size == 8
    pro10 = model("gemini-1.0-pro-002")
    assert pro10.dataset_format == "legacy" and pro10.modalities == ("text",) and pro10.text_only
    assert pro10.price_per_million_training_tokens == 0.0  # free while in preview (seed)


@pytest.mark.parametrize("name", CURRENT)
def test_current_limits(name):
    m = model(name)
    assert m.max_tokens_per_example == 131_072
    assert m.max_validation_examples == 5_000
    assert m.max_file_bytes == 1024**3
    assert m.dataset_format == "gemini"
    expected = (1, 2, 4, 8) if name == "gemini-2.5-pro" else (1, 2, 4, 8, 16)
    assert m.adapter_sizes == expected
    if name.startswith("gemini-3"):
        assert m.regions == ("us-central1", "europe-west4")


def test_every_model_has_a_lifecycle_and_an_honest_price():
    for m in load_catalog().models.values():
        assert m.lifecycle in {"ga", "preview", "deprecated", "retired"}
        assert m.lifecycle_note
        if m.price_per_million_training_tokens is not None:
            assert m.price_read_on  # a price always carries the date it was read


def test_adapter_size_enum_mapping():
    assert ADAPTER_SIZE_ENUM_NAMES == {
        1: "ADAPTER_SIZE_ONE",
        2: "ADAPTER_SIZE_TWO",
        4: "ADAPTER_SIZE_FOUR",
        8: "ADAPTER_SIZE_EIGHT",
        16: "ADAPTER_SIZE_SIXTEEN",
        32: "ADAPTER_SIZE_THIRTY_TWO",
    }
    assert ADAPTER_SIZE_ENUM_NUMBERS == {1: 1, 2: 6, 4: 2, 8: 3, 16: 4, 32: 5}
    assert adapter_size_enum_name(8) == "ADAPTER_SIZE_EIGHT"
    for m in load_catalog().models.values():
        assert all(s in ADAPTER_SIZE_ENUM_NAMES for s in m.adapter_sizes)


def test_media_kinds_and_mime_lookup():
    catalog = load_catalog()
    assert catalog.media["image"].max_per_example == 30
    assert catalog.media["audio"].max_per_example == 1
    assert catalog.media["document"].max_per_example == 4
    assert catalog.media["video"].max_per_example == 1
    assert catalog.media["video"].max_bytes == 100 * 1024**2
    assert kind_of(catalog, " Image/JPEG ").name == "image"
    assert kind_of(catalog, "video/quicktime").name == "video"
    audio = set(catalog.media["audio"].mime_types)
    assert {"audio/m4a", "audio/mp4", "audio/pcm", "audio/x-aac", "audio/mpga"} <= audio
    assert not {"audio/aac", "audio/aiff", "audio/x-wav"} & audio
    assert catalog.accepted_mime_types(model("gemini-1.0-pro-002")) == ()


def test_a_malformed_catalog_fails_naming_the_field():
    text = CATALOG_FILE.read_text()
    with pytest.raises(CatalogError, match="regions"):
        parse_catalog(text.replace('regions = "gemini_3"', 'regions = "nowhere"', 1))
    with pytest.raises(CatalogError, match="gemini-1.5-pro-002"):
        parse_catalog(text.replace("default_adapter_size = 4", "default_adapter_size = 8", 1))
    with pytest.raises(CatalogError, match="adapter_sizes"):
        parse_catalog(text.replace("adapter_sizes = [1, 4]", "adapter_sizes = [1, 3]", 1))


def test_every_fact_has_a_source_with_url_and_date_and_unconfirmed_ones_say_so():
    catalog = load_catalog()
    items: list[ModelSpec | MediaKind] = [*catalog.models.values(), *catalog.media.values()]
    for item in items:
        for fact in catalog.facts(item):
            if fact["source"] is None:  # a default no page states: never shown as confirmed
                assert fact["confirmed"] is False and fact["note"], (item.name, fact)
                continue
            assert fact["url"] and fact["read_on"], (item.name, fact)
            assert fact["confirmed"] is (fact["fact"] not in item.unconfirmed)
    seed_facts = {f["fact"]: f for f in catalog.facts(model_of(catalog, "gemini-1.5-pro-002"))}
    assert (
        seed_facts["function_calling"]["source"] is None
        and not seed_facts["function_calling"]["confirmed"]
    )
    facts = {f["fact"]: f for f in catalog.facts(catalog.media["video"])}
    assert facts["max_seconds_by_resolution"]["confirmed"] is True
    assert facts["max_seconds_by_resolution"]["value"] == {"low": 1200, "medium": 300, "high": 300}
    assert facts["max_seconds_by_resolution"]["url"].endswith("/models/tuning/video")
    assert facts["mime_types"]["confirmed"] is False


def test_a_fact_without_a_known_source_is_refused():
    text = CATALOG_FILE.read_text()
    with pytest.raises(CatalogError, match="nowhere"):
        parse_catalog(
            text.replace(
                'source = "limits"\nsources = { lifecycle',
                'source = "nowhere"\nsources = { lifecycle',
                1,
            )
        )
    with pytest.raises(CatalogError, match="unknown fact"):
        parse_catalog(
            text.replace('unconfirmed = ["lifecycle_date"]', 'unconfirmed = ["lifecycle_dat"]', 1)
        )


# --- a models file merged over the shipped catalog -------------------------------------------

NEW_MODEL = """
[sources.team]
url = "https://example.com/our-notes"
read_on = "2026-12-02"

[models."gemini-4-flash"]
display_name = "Gemini 4 Flash"
dataset_format = "gemini"
modalities = ["text", "image"]
max_tokens_per_example = 262_144
max_validation_examples = 5_000
max_file_bytes = 1_073_741_824
adapter_sizes = [1, 4]
regions = "gemini_3"
lifecycle = "preview"
source = "team"

[models."gemini-3.5-flash"]
max_tokens_per_example = 200_000
sources = { max_tokens_per_example = "team" }

[media.video]
max_seconds_by_resolution = { default = 600, low = 1800 }
"""


def test_a_models_file_adds_a_model_and_corrects_a_limit(tmp_path):
    path = tmp_path / "models.toml"
    path.write_text(NEW_MODEL)
    catalog = catalog_from_files(CATALOG_FILE.read_text(), path)
    assert model_of(catalog, "gemini-4-flash").regions == ("us-central1", "europe-west4")
    current = model_of(catalog, "gemini-3.5-flash")
    assert current.max_tokens_per_example == 200_000 and current.adapter_sizes == (1, 2, 4, 8, 16)
    assert catalog.media["video"].max_seconds_by_resolution == {"default": 600, "low": 1800}
    assert catalog.media["video"].max_bytes == 100 * 1024**2
    facts = {f["fact"]: f for f in catalog.facts(current)}
    assert facts["max_tokens_per_example"]["url"] == "https://example.com/our-notes"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            '[models."gemini-3.5-flash"]\nmax_tokens_per_example = "lots"',
            "models.gemini-3.5-flash: max_tokens_per_example",
        ),
        (
            '[models."gemini-3.5-flash"]\nmax_tokens_per_example = -1',
            "models.gemini-3.5-flash.max_tokens_per_example must be a positive",
        ),
        ('[models."gemini-4"]\ndisplay_name = "x"', "models.gemini-4: "),
        (
            "[media.video]\nmax_seconds_by_resolution = { ultra = 5 }",
            "media.video.max_seconds_by_resolution",
        ),
        ("[modles]\nx = 1", "unknown table(s) modles"),
        ("not toml =", "not valid TOML"),
    ],
)
def test_a_bad_models_file_fails_naming_file_key_and_problem(tmp_path, text, says):
    path = tmp_path / "ours.toml"
    path.write_text(text)
    with pytest.raises(CatalogError) as caught:
        catalog_from_files(CATALOG_FILE.read_text(), path)
    assert str(path) in str(caught.value) and says in str(caught.value)


def test_load_catalog_uses_the_file_named_by_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "models.toml"
    path.write_text(NEW_MODEL)
    monkeypatch.setenv(MODELS_FILE_VAR, str(path))
    assert "gemini-4-flash" in model_names()
    monkeypatch.delenv(MODELS_FILE_VAR)
    assert "gemini-4-flash" not in model_names()
