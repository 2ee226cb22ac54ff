"""Load models.toml into typed, immutable values.

The file is the one source of truth for model facts; this module only checks its shape
(a malformed catalog fails loudly at first use, naming the bad field) and resolves the named
region lists.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Literal

import msgspec

CATALOG_FILE = Path(__file__).with_name("models.toml")

DatasetFormat = Literal["gemini", "legacy"]
Modality = Literal["text", "image", "audio", "document"]
Lifecycle = Literal["ga", "preview", "deprecated", "retired"]

# Vertex AI's AdapterSize enum, by the integer sizes the catalog uses. The REST client sends
# the enum's number, so both are given: name for google-genai / JSON, number for the wire.
ADAPTER_SIZE_ENUM_NAMES: dict[int, str] = {
    1: "ADAPTER_SIZE_ONE",
    2: "ADAPTER_SIZE_TWO",
    4: "ADAPTER_SIZE_FOUR",
    8: "ADAPTER_SIZE_EIGHT",
    16: "ADAPTER_SIZE_SIXTEEN",
    32: "ADAPTER_SIZE_THIRTY_TWO",
}
ADAPTER_SIZE_ENUM_NUMBERS: dict[int, int] = {1: 1, 2: 6, 4: 2, 8: 3, 16: 4, 32: 5}


class CatalogError(ValueError):
    """models.toml is malformed; the message names the field."""


class MediaKind(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # "image", "audio", "document"
    mime_types: tuple[str, ...]
    max_per_example: int
    max_bytes: int
    tokens_each: int


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    display_name: str
    dataset_format: DatasetFormat
    modalities: tuple[Modality, ...]
    max_tokens_per_example: int
    max_validation_examples: int
    max_file_bytes: int
    adapter_sizes: tuple[int, ...]
    default_adapter_size: int | None = None  # None: the service chooses
    max_training_examples: int | None = None  # None: no documented maximum
    regions: tuple[str, ...]
    price_per_million_training_tokens: float | None = None  # USD; None: unknown
    price_read_on: str | None = None
    price_note: str = ""
    lifecycle: Lifecycle
    lifecycle_date: str | None = None
    lifecycle_note: str = ""
    source: str = ""

    @property
    def text_only(self) -> bool:
        return self.modalities == ("text",)

    def to_dict(self) -> dict:
        return msgspec.to_builtins(self)


class Catalog(msgspec.Struct, frozen=True, kw_only=True):
    models: dict[str, ModelSpec]
    media: dict[str, MediaKind]
    kind_by_mime: dict[str, str]  # lowercase mime type -> media kind name

    def get(self, name: str) -> ModelSpec | None:
        return self.models.get(name)

    def media_kind_of(self, mime_type: str) -> MediaKind | None:
        kind = self.kind_by_mime.get(mime_type.strip().lower())
        return None if kind is None else self.media[kind]

    def accepted_mime_types(self, model: ModelSpec) -> tuple[str, ...]:
        return tuple(m for kind in model.modalities if kind in self.media for m in self.media[kind].mime_types)


def parse_catalog(text: str) -> Catalog:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"models.toml: {exc}") from exc
    region_sets = raw.get("regions", {})
    models: dict[str, ModelSpec] = {}
    for name, fields in raw.get("models", {}).items():
        fields = dict(fields)
        regions = fields.get("regions")
        if isinstance(regions, str):
            if regions not in region_sets:
                raise CatalogError(f"models.toml: models.{name}.regions names unknown list {regions!r}")
            fields["regions"] = region_sets[regions]
        try:
            model = msgspec.convert({**fields, "name": name}, ModelSpec)
        except msgspec.ValidationError as exc:
            raise CatalogError(f"models.toml: models.{name}: {exc}") from exc
        if model.default_adapter_size is not None and model.default_adapter_size not in model.adapter_sizes:
            raise CatalogError(f"models.toml: models.{name}.default_adapter_size is not in adapter_sizes")
        unknown = [s for s in model.adapter_sizes if s not in ADAPTER_SIZE_ENUM_NAMES]
        if unknown:
            raise CatalogError(f"models.toml: models.{name}.adapter_sizes has sizes Vertex AI lacks: {unknown}")
        models[name] = model
    try:
        media = {k: msgspec.convert({**v, "name": k}, MediaKind) for k, v in raw.get("media", {}).items()}
    except msgspec.ValidationError as exc:
        raise CatalogError(f"models.toml: media: {exc}") from exc
    kind_by_mime = {mime.lower(): kind.name for kind in media.values() for mime in kind.mime_types}
    return Catalog(models=models, media=media, kind_by_mime=kind_by_mime)


@functools.cache
def load_catalog() -> Catalog:
    return parse_catalog(CATALOG_FILE.read_text(encoding="utf-8"))


def get_model(name: str) -> ModelSpec | None:
    return load_catalog().get(name)


def model_names() -> list[str]:
    return list(load_catalog().models)


def adapter_size_enum_name(size: int) -> str:
    """The Vertex AI AdapterSize enum name for an integer size (KeyError if Vertex has none)."""
    return ADAPTER_SIZE_ENUM_NAMES[size]
