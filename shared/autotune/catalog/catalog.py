"""Load models.toml into typed, immutable values.

The file is the one source of truth for model facts; this module only checks its shape
(a malformed catalog fails loudly at first use, naming the bad field) and resolves the named
region lists.
"""

from __future__ import annotations

import functools
import os
import tomllib
from pathlib import Path
from typing import Literal

import msgspec

CATALOG_FILE = Path(__file__).with_name("models.toml")

DatasetFormat = Literal["gemini", "legacy"]
Modality = Literal["text", "image", "audio", "video", "document"]
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
    """A catalog file is malformed; the message names the file, the key and the problem."""


class Source(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str
    read_on: str
    says: str = ""


class MediaKind(msgspec.Struct, frozen=True, kw_only=True):
    name: str  # "image", "audio", "video", "document"
    mime_types: tuple[str, ...]
    max_per_example: int
    max_bytes: int
    tokens_each: int = 0  # fixed tokens per item (an image, a PDF page)
    tokens_per_second: int = 0  # of playing time (audio, video at the default resolution)
    tokens_per_second_low: int | None = None  # video at MEDIA_RESOLUTION_LOW
    max_seconds: int | None = None
    max_seconds_by_resolution: dict[str, int] = {}  # "default"/"low"/"medium"/"high" -> seconds
    # Vertex AI drops an example whose clip is over its maximum length, and fails the job when
    # more than this fraction of a file's examples is dropped.
    max_dropped_fraction: float | None = None
    source: str = ""
    sources: dict[str, str] = {}
    unconfirmed: tuple[str, ...] = ()
    notes: dict[str, str] = {}


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    display_name: str
    dataset_format: DatasetFormat
    modalities: tuple[Modality, ...]
    max_tokens_per_example: int
    max_validation_examples: int
    # With more validation examples than validation_fraction_over, they may be at most this
    # fraction of the training examples. None: no such rule.
    validation_fraction: float | None = None
    validation_fraction_over: int = 1000
    min_training_examples: int | None = None  # None: no documented minimum (a warning below 100)
    max_training_examples: int | None = None  # None: no documented maximum
    max_training_examples_text_only: int | None = None
    max_training_examples_multimodal: int | None = None
    max_file_bytes: int
    adapter_sizes: tuple[int, ...]
    default_adapter_size: int | None = None  # None: the service chooses
    regions: tuple[str, ...]
    function_calling: bool = True  # tunes on functionCall / functionResponse parts
    mixed_media_resolution: bool = True  # one file may mix media resolutions
    price_per_million_training_tokens: float | None = None  # USD; None: unknown
    price_read_on: str | None = None
    price_note: str = ""
    lifecycle: Lifecycle
    lifecycle_date: str | None = None
    lifecycle_note: str = ""
    source: str = ""
    sources: dict[str, str] = {}  # fact -> source id, where not the model's `source`
    unconfirmed: tuple[str, ...] = ()
    notes: dict[str, str] = {}

    @property
    def text_only(self) -> bool:
        return self.modalities == ("text",)

    @property
    def retired(self) -> bool:
        return self.lifecycle == "retired"

    def to_dict(self) -> dict:
        return msgspec.to_builtins(self)


# The fields of a model or media kind that are facts (each has a source); the rest say where
# the facts came from.
_NOT_FACTS = frozenset({"name", "source", "sources", "unconfirmed", "notes"})


class Catalog(msgspec.Struct, frozen=True, kw_only=True):
    models: dict[str, ModelSpec]
    media: dict[str, MediaKind]
    kind_by_mime: dict[str, str]  # lowercase mime type -> media kind name
    sources: dict[str, Source] = {}
    files: tuple[str, ...] = ()  # the files merged into this catalog, shipped one first
    # "models.NAME" / "media.KIND" -> the facts its table sets; the others are the defaults of
    # ModelSpec / MediaKind, which no source states.
    stated: dict[str, frozenset[str]] = {}

    def get(self, name: str) -> ModelSpec | None:
        return self.models.get(name)

    def media_kind_of(self, mime_type: str) -> MediaKind | None:
        kind = self.kind_by_mime.get(mime_type.strip().lower())
        return None if kind is None else self.media[kind]

    def accepted_mime_types(self, model: ModelSpec) -> tuple[str, ...]:
        return tuple(
            m
            for kind in model.modalities
            if kind in self.media
            for m in self.media[kind].mime_types
        )

    def facts(self, item: ModelSpec | MediaKind) -> list[dict]:
        """Every fact of a model or media kind with its value, source and whether it is confirmed."""
        out = []
        stated = self._stated(item)
        for field in item.__struct_fields__:
            if field in _NOT_FACTS:
                continue
            if stated is not None and field not in stated:
                out.append(
                    {
                        "fact": field,
                        "value": msgspec.to_builtins(getattr(item, field)),
                        "source": None,
                        "url": None,
                        "read_on": None,
                        "confirmed": False,
                        "note": item.notes.get(
                            field, "not stated by any source: the catalog's default"
                        ),
                    }
                )
                continue
            source_id = item.sources.get(field, item.source)
            source = self.sources.get(source_id)
            out.append(
                {
                    "fact": field,
                    "value": msgspec.to_builtins(getattr(item, field)),
                    "source": source_id,
                    "url": source.url if source else None,
                    "read_on": source.read_on if source else None,
                    "confirmed": self.confirmed(item, field),
                    "note": item.notes.get(field, ""),
                }
            )
        return out

    def confirmed(self, item: ModelSpec | MediaKind, fact: str) -> bool:
        """Whether a source states the fact and the catalog does not list it as unconfirmed. A
        fact left at its default (no table of this catalog sets it) is not confirmed."""
        if fact in _NOT_FACTS or fact not in item.__struct_fields__:
            raise KeyError(f"{fact!r} is not a fact of a {type(item).__name__}")
        stated = self._stated(item)
        if stated is not None and fact not in stated:
            return False
        return fact not in item.unconfirmed and item.sources.get(fact, item.source) in self.sources

    def _stated(self, item: ModelSpec | MediaKind) -> frozenset[str] | None:
        # Only for the catalog's own entries: a model a caller built from one (a test's variant)
        # is judged by its own unconfirmed list and sources.
        own: ModelSpec | MediaKind | None
        if isinstance(item, ModelSpec):
            own, table = self.models.get(item.name), f"models.{item.name}"
        else:
            own, table = self.media.get(item.name), f"media.{item.name}"
        return self.stated.get(table) if own is item else None


def parse_catalog(text: str, file: str = "models.toml") -> Catalog:
    """One catalog file on its own (the shipped one, or a test's)."""
    return _build(_merged({}, _read_toml(text, file), file), file)


def _read_toml(text: str, file: str) -> dict:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{file}: not valid TOML: {exc}") from exc
    unknown = set(raw) - {"models", "media", "regions", "sources"}
    if unknown:
        raise CatalogError(
            f"{file}: unknown table(s) {', '.join(sorted(unknown))}; expected models, media, regions, sources"
        )
    for table in ("models", "media", "regions", "sources"):
        value = raw.get(table, {})
        if not isinstance(value, dict):
            raise CatalogError(f"{file}: {table} must be a table")
        if table != "regions":
            for key, entry in value.items():
                if not isinstance(entry, dict):
                    raise CatalogError(f"{file}: {table}.{key} must be a table")
    return raw


def _merged(base: dict, over: dict, file: str) -> dict:
    out = {
        table: {k: dict(v) if isinstance(v, dict) else v for k, v in base.get(table, {}).items()}
        for table in ("models", "media", "regions", "sources")
    }
    for table in ("models", "media", "sources"):
        for key, fields in over.get(table, {}).items():
            out[table][key] = {**out[table].get(key, {}), **fields}
    out["regions"].update(over.get("regions", {}))
    return out


def _build(raw: dict, file: str) -> Catalog:
    sources: dict[str, Source] = {}
    for sid, fields in raw["sources"].items():
        try:
            sources[sid] = msgspec.convert({**fields, "id": sid}, Source)
        except msgspec.ValidationError as exc:
            raise CatalogError(f"{file}: sources.{sid}: {exc}") from exc
    region_sets = raw["regions"]
    models: dict[str, ModelSpec] = {}
    for name, fields in raw["models"].items():
        fields = dict(fields)
        regions = fields.get("regions")
        if isinstance(regions, str):
            if regions not in region_sets:
                raise CatalogError(f"{file}: models.{name}.regions names unknown list {regions!r}")
            fields["regions"] = region_sets[regions]
        try:
            model = msgspec.convert({**fields, "name": name}, ModelSpec)
        except msgspec.ValidationError as exc:
            raise CatalogError(f"{file}: models.{name}: {_field_message(exc)}") from exc
        if (
            model.default_adapter_size is not None
            and model.default_adapter_size not in model.adapter_sizes
        ):
            raise CatalogError(
                f"{file}: models.{name}.default_adapter_size is not in adapter_sizes"
            )
        unknown = [s for s in model.adapter_sizes if s not in ADAPTER_SIZE_ENUM_NAMES]
        if unknown:
            raise CatalogError(
                f"{file}: models.{name}.adapter_sizes has sizes Vertex AI lacks: {unknown}"
            )
        _check_numbers(model, f"{file}: models.{name}")
        _check_provenance(model, sources, f"{file}: models.{name}")
        models[name] = model
    media: dict[str, MediaKind] = {}
    for kind_name, fields in raw["media"].items():
        try:
            kind = msgspec.convert({**fields, "name": kind_name}, MediaKind)
        except msgspec.ValidationError as exc:
            raise CatalogError(f"{file}: media.{kind_name}: {_field_message(exc)}") from exc
        _check_provenance(kind, sources, f"{file}: media.{kind_name}")
        bad = sorted(set(kind.max_seconds_by_resolution) - set(MEDIA_RESOLUTIONS))
        if bad:
            raise CatalogError(
                f"{file}: media.{kind_name}.max_seconds_by_resolution has unknown resolution(s) {bad}; "
                f"expected {', '.join(MEDIA_RESOLUTIONS)}"
            )
        fraction = kind.max_dropped_fraction
        if fraction is not None and not 0 <= fraction <= 1:
            raise CatalogError(
                f"{file}: media.{kind_name}.max_dropped_fraction must be from 0 to 1, got {fraction}"
            )
        media[kind_name] = kind
    for name, model in models.items():
        missing = [m for m in model.modalities if m != "text" and m not in media]
        if missing:
            raise CatalogError(
                f"{file}: models.{name}.modalities names {missing} but no [media.{missing[0]}] table exists"
            )
    kind_by_mime: dict[str, str] = {}
    for kind in media.values():
        for mime in kind.mime_types:
            other = kind_by_mime.setdefault(mime.lower(), kind.name)
            if other != kind.name:
                raise CatalogError(
                    f"{file}: media.{kind.name}.mime_types: {mime!r} is also a {other} type"
                )
    stated = {f"models.{name}": frozenset(fields) for name, fields in raw["models"].items()}
    stated.update({f"media.{name}": frozenset(fields) for name, fields in raw["media"].items()})
    return Catalog(
        models=models,
        media=media,
        kind_by_mime=kind_by_mime,
        sources=sources,
        files=(file,),
        stated=stated,
    )


MEDIA_RESOLUTIONS = ("default", "low", "medium", "high")


def _field_message(exc: msgspec.ValidationError) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.max_bytes`": name the key as it is written.
    text = str(exc)
    head, _, path = text.partition(" - at `$.")
    return f"{path.rstrip('`')}: {head}" if path else text


def _check_numbers(model: ModelSpec, where: str) -> None:
    for field in (
        "max_tokens_per_example",
        "max_validation_examples",
        "max_file_bytes",
        "min_training_examples",
        "max_training_examples",
        "max_training_examples_text_only",
        "max_training_examples_multimodal",
    ):
        value = getattr(model, field)
        if value is not None and value <= 0:
            raise CatalogError(f"{where}.{field} must be a positive whole number, got {value}")
    if model.validation_fraction is not None and not 0 < model.validation_fraction <= 1:
        raise CatalogError(
            f"{where}.validation_fraction must be greater than 0 and at most 1, got {model.validation_fraction}"
        )


def _check_provenance(item: ModelSpec | MediaKind, sources: dict[str, Source], where: str) -> None:
    fields = set(item.__struct_fields__) - _NOT_FACTS
    if not item.source:
        raise CatalogError(
            f"{where}.source is missing: every fact needs a source (a [sources.ID] table)"
        )
    for sid in (item.source, *item.sources.values()):
        if sid not in sources:
            raise CatalogError(f"{where}: source {sid!r} has no [sources.{sid}] table")
    for label, names in (
        ("sources", item.sources),
        ("unconfirmed", item.unconfirmed),
        ("notes", item.notes),
    ):
        bad = sorted(set(names) - fields)
        if bad:
            raise CatalogError(f"{where}.{label} names unknown fact(s) {bad}")


def catalog_from_files(shipped_text: str, overlay: Path | None) -> Catalog:
    shipped = _read_toml(shipped_text, CATALOG_FILE.name)
    if overlay is None:
        return _build(_merged({}, shipped, CATALOG_FILE.name), CATALOG_FILE.name)
    try:
        text = overlay.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(
            f"{overlay}: cannot read the models file: {exc.strerror or exc}"
        ) from exc
    merged = _merged(
        _merged({}, shipped, CATALOG_FILE.name), _read_toml(text, str(overlay)), str(overlay)
    )
    catalog = _build(merged, str(overlay))
    return msgspec.structs.replace(catalog, files=(CATALOG_FILE.name, str(overlay)))


MODELS_FILE_VAR = "AUTOTUNE_MODELS_FILE"


def models_file_from_env() -> Path | None:
    value = os.environ.get(MODELS_FILE_VAR, "").strip()
    return Path(value) if value else None


def load_catalog() -> Catalog:
    """The shipped catalog, with the models file named by AUTOTUNE_MODELS_FILE (deploy/config.toml's
    pipeline.models_file) merged over it. Read once per process and file."""
    return _load(models_file_from_env())


@functools.cache
def _load(overlay: Path | None) -> Catalog:
    return catalog_from_files(CATALOG_FILE.read_text(encoding="utf-8"), overlay)


def get_model(name: str) -> ModelSpec | None:
    return load_catalog().get(name)


def model_names() -> list[str]:
    return list(load_catalog().models)


def adapter_size_enum_name(size: int) -> str:
    """The Vertex AI AdapterSize enum name for an integer size (KeyError if Vertex has none)."""
    return ADAPTER_SIZE_ENUM_NAMES[size]
