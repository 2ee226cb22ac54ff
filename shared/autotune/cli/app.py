"""The `autotune` command group. Each command lives in the module named for what it does and
registers itself on `app`; heavy imports (Google clients) stay inside the commands so
`autotune validate` starts fast."""

import typer

app = typer.Typer(
    name="autotune",
    help="Validate Gemini tuning datasets and run the autotune pipeline (locally or on Google Cloud).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
