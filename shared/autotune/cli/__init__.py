import sys

from autotune.cli import deploy, jobs, models, stack, validate  # noqa: F401  (they register commands)
from autotune.cli.app import app


def main() -> None:
    if "--json" not in sys.argv[1:]:
        app()
        return
    # With --json, stdout holds one JSON document even when the command line itself is wrong
    # (an unknown flag): the parser's message goes to stderr and into the document.
    import json

    import click

    try:
        app(standalone_mode=False)
    except click.exceptions.UsageError as exc:
        exc.show()
        sys.stdout.write(json.dumps({"valid": False, "usage_error": {"code": "invalid_arguments", "message": exc.format_message()}}) + "\n")
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(1)
    except SystemExit:
        raise
