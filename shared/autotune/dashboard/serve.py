"""Serve the dashboard on 127.0.0.1 with werkzeug's threaded server.

    python -m autotune.dashboard.serve --port 8123
reads the pipeline named by the environment (AUTOTUNE_* variables, the emulators' *_EMULATOR_HOST
variables): the local stack starts it this way as one of its processes. `autotune dashboard
--project P` calls `serve_until_interrupted` for a deployed project.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable

from autotune.config import PipelineConfig
from autotune.dashboard.source import PipelineReader

HOST = "127.0.0.1"  # the page shows the project's uploads: never on another interface


def serve_until_interrupted(
    reader: PipelineReader, port: int, *, on_ready: Callable[[str], None] = lambda url: None
) -> None:
    """Serve until SIGINT or SIGTERM, then delete the page's event subscription."""
    import logging

    from werkzeug.serving import make_server

    from autotune.dashboard.app import create_app

    # One request line per poll of every open page would bury the log: problems only.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    try:
        server = make_server(HOST, port, create_app(reader), threaded=True)
    except OSError:  # the port is taken
        reader.close()
        raise
    stopping = threading.Event()

    def stop(*_: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        on_ready(f"http://{HOST}:{server.server_port}/")
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        reader.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--google-cloud", action="store_true", help="link reports to the Cloud console"
    )
    args = parser.parse_args(argv)

    from autotune import structured_log
    from autotune.dashboard.source import connect

    config = PipelineConfig.from_env()
    reader = connect(config, on_google_cloud=args.google_cloud)
    serve_until_interrupted(
        reader,
        args.port,
        on_ready=lambda url: structured_log.info(
            "dashboard serving", url=url, project=config.project
        ),
    )


if __name__ == "__main__":
    main()
