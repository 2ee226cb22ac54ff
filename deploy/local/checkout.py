"""Where the checkout is. The tools that work on a clone of the repository (the local stack, the
demo, staging the functions for Google Cloud, the command line's default configuration file)
find its folders here. The library in shared/ never does: a function learns its settings from its
environment alone (autotune.config)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # this file is deploy/local/checkout.py
CONFIG_FILE = ROOT / "deploy" / "config.toml"


def config_file() -> Path | None:
    """The checkout's deploy/config.toml, the base the command line's environment overrides; None
    when there is none (an installed package without its checkout)."""
    return CONFIG_FILE if CONFIG_FILE.exists() else None
