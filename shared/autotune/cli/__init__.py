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

    try:
        code = app(standalone_mode=False)  # returns the exit code of a typer.Exit
    except Exception as exc:
        # The parser's UsageError (typer bundles its own click, so matched by its shape).
        if getattr(exc, "exit_code", None) != 2 or not hasattr(exc, "format_message"):
            raise
        exc.show()
        doc = {"valid": False, "usage_error": {"code": "invalid_arguments", "message": exc.format_message()}}
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
