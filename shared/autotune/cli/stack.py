"""Commands registered on autotune.cli.app (filled in by its feature)."""
