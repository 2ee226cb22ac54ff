"""`autotune models [--json] [--sources]`: the model catalog (shared/autotune/catalog/models.toml,
with deploy/config.toml's models_file merged over it)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from autotune.cli.app import app
from autotune.cli.terminal import echo, terminal_text


@app.command()
def models(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the catalog as JSON, each fact with its source.")
    ] = False,
    sources: Annotated[
        bool,
        typer.Option(
            "--sources", help="List every fact with the page it came from and the date read."
        ),
    ] = False,
) -> None:
    """List the tunable models with their limits, adapter sizes, regions, price and lifecycle."""
    import msgspec

    from autotune.catalog import CatalogError, load_catalog
    from autotune.config import ConfigError, PipelineConfig
    from autotune_local.checkout import config_file

    try:
        PipelineConfig.from_env(config_file=config_file()).export_models_file()
        catalog = load_catalog()
    except (ConfigError, CatalogError) as exc:
        typer.echo(f"Error: {exc}", err=True)
        if as_json:
            typer.echo(
                json.dumps({"usage_error": {"code": "invalid_configuration", "message": str(exc)}})
            )
        raise typer.Exit(2) from None
    if as_json:
        doc = {
            "files": list(catalog.files),
            "models": [{**m.to_dict(), "facts": catalog.facts(m)} for m in catalog.models.values()],
            "media": {
                k: {**msgspec.to_builtins(v), "facts": catalog.facts(v)}
                for k, v in catalog.media.items()
            },
            "sources": {k: msgspec.to_builtins(v) for k, v in catalog.sources.items()},
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    if sources:
        typer.echo(render_sources(catalog))
        return

    from rich.console import Console

    console = Console()
    rows = [_model_row(m) for m in catalog.models.values()]
    if console.width >= TABLE_MIN_WIDTH:
        _print_table(console, rows)
    else:
        echo(render_blocks(rows, console.width))
    echo("")
    for m in catalog.models.values():
        echo(
            _wrapped(
                terminal_text(f"{m.name}: {m.lifecycle_note}", newlines=False), console.width, ""
            )
        )


MODEL_COLUMNS = (
    "model",
    "format",
    "modalities",
    "limits",
    "adapter sizes",
    "regions",
    "price / 1M training tokens",
    "lifecycle",
)
TABLE_MIN_WIDTH = 150  # narrower terminals get one block per model: eight columns do not fit


def _model_row(m) -> tuple[str, ...]:
    adapters = ", ".join(str(s) for s in m.adapter_sizes) or "none"
    if m.adapter_sizes:
        adapters += (
            f" (default {m.default_adapter_size})"
            if m.default_adapter_size
            else " (service default)"
        )
    regions = (
        ", ".join(m.regions)
        if len(m.regions) <= 3
        else f"{len(m.regions)} regions incl. {', '.join(m.regions[:2])}"
    )
    price = (
        "unknown"
        if m.price_per_million_training_tokens is None
        else f"USD {m.price_per_million_training_tokens:g} (read {m.price_read_on})"
    )
    if m.price_note:
        price += f"; {m.price_note}"
    limits = (
        f"{m.max_tokens_per_example:,} tokens/example, {m.max_validation_examples:,} validation examples, "
        f"{m.max_file_bytes / 2**30:g} GB file"
    )
    lifecycle = m.lifecycle + (f" {m.lifecycle_date}" if m.lifecycle_date else "")
    cells = (
        m.name,
        m.dataset_format,
        ", ".join(m.modalities),
        limits,
        adapters,
        regions,
        price,
        lifecycle,
    )
    return tuple(terminal_text(cell, newlines=False) for cell in cells)


def _print_table(console, rows: list[tuple[str, ...]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Tunable models (shared/autotune/catalog/models.toml)", show_lines=True)
    for i, column in enumerate(MODEL_COLUMNS):
        if i == 0:  # a model name is never broken across lines
            table.add_column(column, no_wrap=True, min_width=max(len(r[0]) for r in rows))
        else:
            table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


def render_blocks(rows: list[tuple[str, ...]], width: int) -> str:
    """One block per model for terminals too narrow for the table: the name on a line of its
    own, then each fact wrapped at the width on its own label."""
    out = ["Tunable models (shared/autotune/catalog/models.toml)"]
    labels = [
        f"  {label + ':':<12} "
        for label in ("format", "modalities", "limits", "adapters", "regions", "price", "lifecycle")
    ]
    for row in rows:
        out.append("")
        out.append(row[0])
        for label, value in zip(labels, row[1:], strict=True):
            out.append(_wrapped(value, width, label))
    return "\n".join(out)


def _wrapped(text: str, width: int, label: str) -> str:
    import textwrap

    indent = " " * len(label)
    lines = textwrap.wrap(
        text,
        width=max(width, len(label) + 20),
        initial_indent=label,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return "\n".join(lines) or label.rstrip()


def render_sources(catalog) -> str:
    """Every fact, its value and where it came from; unconfirmed facts say so."""
    out = [f"catalog: {' + '.join(catalog.files)}"]
    items = [(f"model {m.name}", m) for m in catalog.models.values()] + [
        (f"media {k}", v) for k, v in catalog.media.items()
    ]
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
