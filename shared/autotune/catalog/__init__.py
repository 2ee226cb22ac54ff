"""The model catalog: limits, regions, prices and lifecycle of every tunable model
(data in models.toml, the one source of truth)."""

from autotune.catalog.catalog import (
    ADAPTER_SIZE_ENUM_NAMES,
    ADAPTER_SIZE_ENUM_NUMBERS,
    CATALOG_FILE,
    MEDIA_RESOLUTIONS,
    MODELS_FILE_VAR,
    Catalog,
    CatalogError,
    MediaKind,
    ModelSpec,
    Source,
    adapter_size_enum_name,
    catalog_from_files,
    get_model,
    load_catalog,
    model_names,
    parse_catalog,
)
from autotune.catalog.prices import PriceError, TrainingPrice, training_price

__all__ = [
    "ADAPTER_SIZE_ENUM_NAMES",
    "ADAPTER_SIZE_ENUM_NUMBERS",
    "CATALOG_FILE",
    "Catalog",
    "MEDIA_RESOLUTIONS",
    "MODELS_FILE_VAR",
    "CatalogError",
    "MediaKind",
    "Source",
    "catalog_from_files",
    "ModelSpec",
    "adapter_size_enum_name",
    "get_model",
    "load_catalog",
    "model_names",
    "parse_catalog",
    "PriceError",
    "TrainingPrice",
    "training_price",
]
