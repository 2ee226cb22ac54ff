"""The model catalog (autotune.catalog, models.toml) as the jobs stage sees it (a ModelCatalog)."""

from __future__ import annotations

from collections.abc import Collection


class ProjectCatalog:
    """ModelCatalog over autotune.catalog (models.toml)."""

    # autotune.catalog is imported on first use, as before: building a pipeline reads no models file.
    def regions(self, model: str) -> Collection[str] | None:
        from autotune import catalog

        spec = catalog.get_model(model)
        return None if spec is None else spec.regions

    def adapter_sizes(self, model: str) -> Collection[int]:
        from autotune import catalog

        spec = catalog.get_model(model)
        return () if spec is None else spec.adapter_sizes

    def default_adapter_size(self, model: str) -> int | None:
        from autotune import catalog

        spec = catalog.get_model(model)
        return None if spec is None else spec.default_adapter_size

    def adapter_size_enum(self, size: int) -> str:
        from autotune import catalog

        return catalog.adapter_size_enum_name(size)
