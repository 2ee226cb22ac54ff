"""`autotune models` fits the terminal and never breaks a model name across lines."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from autotune.catalog import load_catalog
from autotune.cli import app


@pytest.mark.parametrize("columns", [80, 120, 160, 200])
def test_models_fit_the_terminal_with_every_name_whole(columns: int) -> None:
    result = CliRunner().invoke(app, ["models"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= columns for line in lines), max(lines, key=len)
    for name in load_catalog().models:
        assert any(name in line for line in lines[: len(lines) - len(load_catalog().models)]), name
    # A name cut at a hyphen would leave its first part at the end of a line.
    assert not any(line.rstrip(" │").endswith("gemini-") for line in lines)
