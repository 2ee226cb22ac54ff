"""Echo for the typer commands, through autotune.terminal_text's escaping."""

from __future__ import annotations

import typer

from autotune.terminal_text import terminal_text

__all__ = ["echo", "terminal_text"]


def echo(text: object = "", *, err: bool = False, nl: bool = True) -> None:
    typer.echo(terminal_text(text), err=err, nl=nl)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Say what went wrong on stderr; the caller raises the returned Exit."""
    echo(message, err=True)
    return typer.Exit(code)
