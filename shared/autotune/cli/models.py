"""`autotune models [--json] [--sources]`: the model catalog (shared/autotune/catalog/models.toml,
with deploy/config.toml's models_file merged over it)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from autotune.cli.app import app


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON, each fact with its source.")] = False,
    sources: Annotated[bool, typer.Option("--sources", help="List every fact with the page it came from and the date read.")] = False,
) -> None:
    """List the tunable models with their limits, adapter sizes, regions, price and lifecycle."""
    import msgspec

    from autotune.catalog import CatalogError, load_catalog
    from autotune.config import ConfigError, PipelineConfig

    try:
        PipelineConfig.from_env().export_models_file()
        catalog = load_catalog()
    except (ConfigError, CatalogError) as exc:
        typer.echo(f"Error: {exc}", err=True)
        if as_json:
            typer.echo(json.dumps({"usage_error": {"code": "invalid_configuration", "message": str(exc)}}))
        raise typer.Exit(2) from None
    if as_json:
        doc = {
            "files": list(catalog.files),
            "models": [{**m.to_dict(), "facts": catalog.facts(m)} for m in catalog.models.values()],
            "media": {k: {**msgspec.to_builtins(v), "facts": catalog.facts(v)} for k, v in catalog.media.items()},
            "sources": {k: msgspec.to_builtins(v) for k, v in catalog.sources.items()},
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    if sources:
        typer.echo(render_sources(catalog))
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


def render_sources(catalog) -> str:
    """Every fact, its value and where it came from; unconfirmed facts say so."""
    out = [f"catalog: {' + '.join(catalog.files)}"]
    items = [(f"model {m.name}", m) for m in catalog.models.values()] + [(f"media {k}", v) for k, v in catalog.media.items()]
    for title, item in items:
        out.append("")
        out.append(title)
        for fact in catalog.facts(item):
            mark = "" if fact["confirmed"] else "  [UNCONFIRMED]"
            out.append(f"  {fact['fact']} = {json.dumps(fact['value'])}{mark}")
            if fact["url"]:
                out.append(f"      source: {fact['url']} (read {fact['read_on']})")
            if fact["note"]:
                out.append(f"      note: {fact['note']}")
    return "\n".join(out)
