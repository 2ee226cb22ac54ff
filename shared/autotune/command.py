"""The `autotune` executable. `autotune validate` runs without importing the command-line
framework (autotune.validate_command says why); every other command, and any --help, goes
through the typer app in autotune.cli."""

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["validate"] and not {"--help", "-h"} & set(argv):
        from autotune.validate_command import main_argv

        try:
            sys.exit(main_argv(argv[1:]))
        except KeyboardInterrupt:
            sys.stderr.write("Aborted.\n")
            sys.exit(130)
    from autotune.cli import main as typer_main

    typer_main()
