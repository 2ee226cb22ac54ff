import sys

from autotune.cli import (  # noqa: F401  (they register commands)
    dashboard,
    deploy,
    jobs,
    models,
    prepare,
    report,
    smoke,
    stack,
    validate,
    watch,
)
from autotune.cli.app import app


def main() -> None:
    argv = sys.argv[1:]
    if "--json" not in argv or argv[:1] not in (["validate"], ["models"]):
        app()
        return
    # `validate --json` and `models --json` print one JSON document even when the command line
    # itself is wrong (an unknown flag): the parser's message goes to stderr and into the document.
    import json

    try:
        code = app(standalone_mode=False)  # returns the exit code of a typer.Exit
    except Exception as exc:
        # typer bundles its own click, so its exceptions are matched by their shape: Abort (a
        # Ctrl-C, turned into one outside standalone mode) ends as click would end it, and the
        # parser's UsageError becomes the document.
        if type(exc).__name__ == "Abort":
            sys.stderr.write("Aborted!\n")
            sys.exit(1)
        if getattr(exc, "exit_code", None) != 2 or not hasattr(exc, "format_message"):
            raise
        exc.show()  # type: ignore[attr-defined]  # click's UsageError, recognised by its shape above
        doc = {
            "valid": False,
            "usage_error": {"code": "invalid_arguments", "message": exc.format_message()},
        }
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
