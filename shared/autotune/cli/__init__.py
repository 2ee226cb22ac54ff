from autotune.cli import deploy, jobs, models, prepare, report, stack, validate  # noqa: F401  (they register commands)
from autotune.cli.app import app


def main() -> None:
    app()
