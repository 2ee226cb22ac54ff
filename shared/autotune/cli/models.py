"""`autotune models [--json]`: the model catalog (shared/autotune/catalog/models.toml)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from autotune.cli.app import app


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False) -> None:
    """List the tunable models with their limits, adapter sizes, regions, price and lifecycle."""
    from autotune.catalog import load_catalog

    catalog = load_catalog()
    if as_json:
        doc = {
            "models": [m.to_dict() for m in catalog.models.values()],
            "media": {k: {f: getattr(v, f) for f in v.__struct_fields__} for k, v in catalog.media.items()},
        }
        typer.echo(json.dumps(doc, indent=2))
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title="Tunable models (shared/autotune/catalog/models.toml)", show_lines=True)
    for column in ("model", "format", "modalities", "limits", "adapter sizes", "regions", "price / 1M training tokens", "lifecycle"):
        table.add_column(column, overflow="fold")
    for m in catalog.models.values():
        adapters = ", ".join(str(s) for s in m.adapter_sizes) or "none"
        if m.adapter_sizes:
            adapters += f" (default {m.default_adapter_size})" if m.default_adapter_size else " (service default)"
        regions = ", ".join(m.regions) if len(m.regions) <= 3 else f"{len(m.regions)} regions incl. {', '.join(m.regions[:2])}"
        price = (
            "unknown"
            if m.price_per_million_training_tokens is None
            else f"USD {m.price_per_million_training_tokens:g} (read {m.price_read_on})"
        )
        if m.price_note:
            price += f"\n{m.price_note}"
        limits = (
            f"{m.max_tokens_per_example:,} tokens/example\n{m.max_validation_examples:,} validation examples\n"
            f"{m.max_file_bytes / 2**30:g} GB file"
        )
        lifecycle = m.lifecycle + (f" {m.lifecycle_date}" if m.lifecycle_date else "")
        table.add_row(m.name, m.dataset_format, ", ".join(m.modalities), limits, adapters, regions, price, lifecycle)
    console = Console()
    console.print(table)
    for m in catalog.models.values():
        console.print(f"[bold]{m.name}[/bold]: {m.lifecycle_note}", highlight=False)
