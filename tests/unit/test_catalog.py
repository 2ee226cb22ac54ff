"""The catalog (models.toml) holds every model of the seed and today's, with the facts the
validator and the submitter rely on."""

from __future__ import annotations

import pytest

from autotune.catalog import (
    ADAPTER_SIZE_ENUM_NAMES,
    ADAPTER_SIZE_ENUM_NUMBERS,
    CATALOG_FILE,
    CatalogError,
    adapter_size_enum_name,
    get_model,
    load_catalog,
    model_names,
    parse_catalog,
)

SEED = ["gemini-1.5-pro-002", "gemini-1.5-flash-002", "gemini-1.0-pro-002"]
CURRENT = ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-3.1-flash-lite", "gemini-3.5-flash"]


def test_all_eight_models_are_listed():
    assert model_names() == SEED + CURRENT


@pytest.mark.parametrize("name", SEED)
def test_seed_limits(name):
    m = get_model(name)
    assert m.max_tokens_per_example == 32_000
    assert m.max_validation_examples == 256
    assert m.max_file_bytes == 1024**3
    assert "us-central1" in m.regions


def test_seed_adapter_sizes_and_formats():
    assert get_model("gemini-1.5-pro-002").adapter_sizes == (1, 4)
    assert get_model("gemini-1.5-pro-002").default_adapter_size == 4
    assert get_model("gemini-1.5-flash-002").adapter_sizes == (1, 4, 8, 16)
    assert get_model("gemini-1.5-flash-002").default_adapter_size == 8
    pro10 = get_model("gemini-1.0-pro-002")
    assert pro10.dataset_format == "legacy" and pro10.modalities == ("text",) and pro10.text_only
    assert pro10.price_per_million_training_tokens == 0.0  # free while in preview (seed)


@pytest.mark.parametrize("name", CURRENT)
def test_current_limits(name):
    m = get_model(name)
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
        1: "ADAPTER_SIZE_ONE", 2: "ADAPTER_SIZE_TWO", 4: "ADAPTER_SIZE_FOUR",
        8: "ADAPTER_SIZE_EIGHT", 16: "ADAPTER_SIZE_SIXTEEN", 32: "ADAPTER_SIZE_THIRTY_TWO",
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
    assert catalog.media_kind_of(" Image/JPEG ").name == "image"
    assert catalog.media_kind_of("video/mp4") is None
    assert catalog.accepted_mime_types(get_model("gemini-1.0-pro-002")) == ()


def test_a_malformed_catalog_fails_naming_the_field():
    text = CATALOG_FILE.read_text()
    with pytest.raises(CatalogError, match="regions"):
        parse_catalog(text.replace('regions = "gemini_3"', 'regions = "nowhere"', 1))
    with pytest.raises(CatalogError, match="gemini-1.5-pro-002"):
        parse_catalog(text.replace("default_adapter_size = 4", "default_adapter_size = 8", 1))
    with pytest.raises(CatalogError, match="adapter_sizes"):
        parse_catalog(text.replace("adapter_sizes = [1, 4]", "adapter_sizes = [1, 3]", 1))
