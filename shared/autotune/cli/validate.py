"""`autotune validate`: the validator on a laptop, same core as the validate function.

The command runs autotune.validate_command (exit codes, --json, usage errors are described
there); the `autotune` entry point parses this command's arguments itself, without typer, to
start fast, and this declaration serves `autotune --help` and `autotune validate --help`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from autotune.cli.app import app
from autotune.validate_command import (
    FLAGS,
    OPTIONS,
    UsageError,
    ValidateArgs,
    render_text,
    report_usage_error,
    run,
)

__all__ = ["render_text", "validate"]


@app.command()
def validate(
    train: Annotated[Path, typer.Argument(metavar="TRAIN", help="Training JSONL file.")],
    validation: Annotated[
        Path | None, typer.Option("--validation", help=OPTIONS["--validation"])
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help=OPTIONS["--model"])] = None,
    epochs: Annotated[str | None, typer.Option("--epochs", help=OPTIONS["--epochs"])] = None,
    adapter_size: Annotated[
        str | None, typer.Option("--adapter-size", help=OPTIONS["--adapter-size"])
    ] = None,
    learning_rate_multiplier: Annotated[
        str | None,
        typer.Option("--learning-rate-multiplier", help=OPTIONS["--learning-rate-multiplier"]),
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help=OPTIONS["--region"])] = None,
    check_files: Annotated[
        bool, typer.Option("--check-files", help=FLAGS["--check-files"])
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help=FLAGS["--json"])] = False,
    html: Annotated[
        Path | None, typer.Option("--html", metavar="FILE", help=OPTIONS["--html"])
    ] = None,
) -> None:
    """Check a tuning dataset for a model and its settings; name every bad line."""
    args = ValidateArgs(
        train=train,
        validation=validation,
        model=model,
        epochs=epochs,
        adapter_size=adapter_size,
        learning_rate_multiplier=learning_rate_multiplier,
        region=region,
        check_files=check_files,
        as_json=as_json,
        html=html,
    )
    try:
        code = run(args)
    except UsageError as exc:
        code = report_usage_error(exc, as_json)
    raise typer.Exit(code)
