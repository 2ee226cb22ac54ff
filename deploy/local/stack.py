"""The whole pipeline on this machine: emulators, event bridge, tuning emulator, functions.

`start_stack` launches every server at once on free 127.0.0.1 ports (each in its own process
group), polls them until ready, creates the bucket, topics and subscriptions, and records the
PIDs in `<state dir>/stack.json` before waiting on anything, so `stop_recorded` (that is
`autotune down`, or the next `autotune up`) can stop a stack whose `up` was killed half-way.
Every start uses fresh ports and fresh data directories: nothing of an earlier stack is reused.
"""

from __future__ import annotations

import atexit
import dataclasses
import importlib.util
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from autotune.config import PipelineConfig, load_config_file
from autotune_local import processes
from autotune_local.checkout import CONFIG_FILE, ROOT
from autotune_local.prerequisites import MissingPrerequisite, find_executables
from autotune_local.processes import RunningProcess

DEFAULT_STATE_DIR = ROOT / ".autotune"
STATE_FILE = "stack.json"
ENV_FILE = "local.env"
LOCAL_PROJECT = "autotune-local"
LOCAL_BUCKET = "autotune-datasets"
# fake-gcs-server publishes object notifications here; the bridge turns them into storage
# CloudEvents (on Google Cloud, Eventarc does this without a visible topic).
STORAGE_NOTIFICATIONS_TOPIC = "storage-notifications"
FUNCTIONS_DIR = ROOT / "functions"
READY_TIMEOUT_SECONDS = 90.0


@dataclass(frozen=True)
class FunctionSource:
    source: Path  # the main.py functions-framework loads
    target: str


@dataclass(frozen=True)
class StackOptions:
    state_dir: Path = DEFAULT_STATE_DIR
    project: str = LOCAL_PROJECT
    bucket: str = LOCAL_BUCKET
    # PipelineConfig fields to change, e.g. {"max_concurrent_jobs": 2}.
    config_overrides: Mapping[str, object] = field(default_factory=dict)
    # The tuning emulator: its quota defaults to the pipeline's max_concurrent_jobs.
    quota: int | None = None
    # Another server that speaks the v1 REST tuning API (a recorded stub, another emulator) instead
    # of the built-in tuning emulator, which is then not started; the emulator options are unused.
    tuning_endpoint: str = ""
    job_seconds: float = 15.0
    fault_rate_429: float = 0.0
    fault_rate_500: float = 0.0
    tick_seconds: float = 3.0
    # Redelivery of a refused push. Without a retry policy the Pub/Sub emulator delivers a refused
    # message again after about 1 s, up to max_delivery_attempts, then dead-letters it. With one,
    # the emulator (0.8.20) stops redelivering when several messages of a subscription are refused
    # together (measured: 3 messages, 3 attempts each, then nothing for 90 s), so it is off here;
    # Google Cloud gets its retry policy from deploy/gcp.
    retry_policy: bool = False
    retry_min_backoff_seconds: int = 1
    retry_max_backoff_seconds: int = 10
    max_delivery_attempts: int = 5
    # function name -> another source/target (tests point validate at a function that fails once),
    # or None to run the stack without that function.
    functions: Mapping[str, FunctionSource | None] = field(default_factory=dict)
    extra_env: Mapping[str, str] = field(default_factory=dict)  # given to every function process
    dashboard: bool = (
        True  # serve the live pipeline page (autotune.dashboard) at AUTOTUNE_DASHBOARD_URL
    )


# Locally nothing is lost for long: the emulators lose messages on a restart, and a pass over a
# small bucket is cheap (Google Cloud keeps the config.toml values).
LOCAL_RECONCILIATION = {"reconcile_every_seconds": 15, "reconcile_after_seconds": 60}

FUNCTION_NAMES = ("validate", "submit", "status")
# The emulator answers a create at once unless a fault says otherwise: after a create without an
# answer, the local pipeline looks for its job again after 10 s, not Google Cloud's 5 minutes.
LOCAL_TUNING_ENV = {"AUTOTUNE_TUNING_CREATE_SETTLE_SECONDS": "10"}


def default_functions() -> dict[str, FunctionSource]:
    return {name: FunctionSource(FUNCTIONS_DIR / name / "main.py", name) for name in FUNCTION_NAMES}


@dataclass
class Subscriptions:
    """Names (short ids) of what the stack created on the Pub/Sub emulator."""

    push: dict[str, str]  # function name -> push subscription id
    dead_letter: dict[str, str]  # function name -> pull subscription id on its dead-letter topic


@dataclass
class LocalStack:
    state_dir: Path
    config: PipelineConfig
    env: dict[str, str]
    processes: list[RunningProcess]
    ports: dict[str, int]
    subscriptions: Subscriptions
    _stopped: bool = False
    _relaunch: Callable[[str], RunningProcess] | None = None  # set by start_stack

    def restart(self, name: str) -> RunningProcess:
        """Kill one server as a crash would (SIGKILL to its process group) and start it again on
        the same port, waiting until it is ready. The Pub/Sub emulator comes back empty: its
        topics and subscriptions are created again, the messages it held are gone."""
        if self._relaunch is None or self._stopped:
            raise RuntimeError(
                "this stack cannot restart its servers (stopped, or not started by start_stack)"
            )
        processes.kill(next(p for p in self.processes if p.name == name))
        return self._relaunch(name)

    @property
    def project(self) -> str:
        return self.config.project

    @property
    def bucket(self) -> str:
        return self.config.bucket

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    def stop(self) -> None:
        if not self._stopped:
            processes.stop(self.processes)
            _forget(self.state_dir, self.processes)
            self._stopped = True
            atexit.unregister(self.stop)

    def keep_running_after_exit(self) -> None:
        """`autotune up --detach`: the stack outlives this process; `autotune down` stops it."""
        atexit.unregister(self.stop)

    def dead_processes(self) -> list[RunningProcess]:
        return [p for p in self.processes if not processes.is_running(p)]

    # Clients bound to this stack explicitly (not through os.environ), so two stacks can live in
    # one process (a test session with a second, differently configured stack).
    def storage_client(self):
        from autotune_local.clients import storage_client

        return storage_client(self.env)

    def publisher(self):
        from autotune_local.clients import publisher_client

        return publisher_client(self.env)

    def subscriber(self):
        from autotune_local.clients import subscriber_client

        return subscriber_client(self.env)

    def firestore_client(self):
        from autotune_local.clients import firestore_client

        return firestore_client(self.env)

    def upload(
        self,
        data: bytes | Path,
        object_name: str,
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> int:
        """Upload like a user would; returns the object's generation."""
        from autotune_local.clients import upload_object

        return upload_object(
            self.storage_client(),
            self.bucket,
            object_name,
            data,
            metadata=metadata,
            content_type=content_type,
        )

    def listen_events(self, name: str | None = None):
        """A pull subscription of one's own on tuning-events (see clients.EventListener)."""
        from autotune_local.clients import EventListener

        return EventListener.create(self.subscriber(), self.project, self.config.events_topic, name)


def options_with(base: StackOptions | None = None, /, **overrides: Any) -> StackOptions:
    """StackOptions with `overrides` applied; PipelineConfig field names (max_concurrent_jobs, ...)
    go to config_overrides, the rest must be StackOptions fields."""
    base = base or StackOptions()
    option_fields = set(StackOptions.__dataclass_fields__)
    config_fields = set(PipelineConfig.__struct_fields__)
    unknown = set(overrides) - option_fields - config_fields
    if unknown:
        raise TypeError(f"unknown stack override(s): {', '.join(sorted(unknown))}")
    config_overrides = {
        **base.config_overrides,
        **{k: v for k, v in overrides.items() if k in config_fields and k not in option_fields},
    }
    return dataclasses.replace(
        base,
        **{k: v for k, v in overrides.items() if k in option_fields},
        config_overrides=config_overrides,
    )


def start_stack(options: StackOptions = StackOptions()) -> LocalStack:
    executables = find_executables()
    functions = {
        k: v for k, v in {**default_functions(), **options.functions}.items() if v is not None
    }
    _check_present(functions)
    state_dir = options.state_dir.resolve()
    stop_recorded(state_dir)
    data_dir, log_dir = state_dir / "data", state_dir / "logs"
    for directory in (data_dir, log_dir):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)

    base_config = load_config_file(CONFIG_FILE) if CONFIG_FILE.exists() else PipelineConfig()
    own_tuning = not options.tuning_endpoint
    names = [
        "pubsub",
        "firestore",
        "storage",
        *(["tuning"] if own_tuning else []),
        "bridge",
        *functions,
        *(["dashboard"] if options.dashboard else []),
    ]
    ports = {name: processes.free_port() for name in names}
    config = msgspec.structs.replace(
        base_config,
        project=options.project,
        bucket=options.bucket,
        vertex_endpoint=f"http://127.0.0.1:{ports['tuning']}"
        if own_tuning
        else options.tuning_endpoint.rstrip("/"),
        **{**LOCAL_RECONCILIATION, **dict(options.config_overrides)},
    )
    if config.models_file:
        # A models file that does not load stops the stack here (CatalogError names the file and
        # key), not in every validate call; the functions load it through AUTOTUNE_MODELS_FILE.
        from autotune.catalog import CATALOG_FILE, catalog_from_files

        catalog_from_files(CATALOG_FILE.read_text(encoding="utf-8"), Path(config.models_file))
    env = stack_environment(config, ports)
    child_env = {
        **_clean_parent_env(),
        **env,
        **LOCAL_TUNING_ENV,
        **options.extra_env,
        "PYTHONUNBUFFERED": "1",
        "GOOGLE_CLOUD_PROJECT": config.project,
    }
    started: list[RunningProcess] = []
    stack = LocalStack(state_dir, config, env, started, ports, _subscription_names(functions))
    atexit.register(stack.stop)
    recipes: dict[str, tuple[list[str], dict]] = {}
    try:

        def launch(name: str, argv: list[str], **kwargs) -> RunningProcess:
            recipes[name] = (argv, kwargs)
            proc = processes.launch(
                name, argv, env=child_env, log_dir=log_dir, port=ports.get(name, 0), **kwargs
            )
            started.append(proc)
            _record(state_dir, started, env)
            return proc

        pubsub = launch(
            "pubsub",
            [
                str(executables.pubsub_emulator),
                "--host=127.0.0.1",
                f"--port={ports['pubsub']}",
                f"--dir={data_dir / 'pubsub'}",
            ],
        )
        firestore = launch(
            "firestore",
            [
                str(executables.firestore_emulator),
                "start",
                "--host=127.0.0.1",
                f"--port={ports['firestore']}",
            ],
        )
        quota = options.quota if options.quota is not None else config.max_concurrent_jobs
        tuning = launch("tuning", _tuning_argv(ports, quota, options)) if own_tuning else None
        functions_running = {
            name: launch(name, _function_argv(source, ports[name]), cwd=ROOT)
            for name, source in functions.items()
        }
        bridge = launch("bridge", _bridge_argv(config, ports, functions))

        processes.wait_ready(
            pubsub,
            processes.http_answers(f"http://127.0.0.1:{ports['pubsub']}/"),
            timeout=READY_TIMEOUT_SECONDS,
        )
        from autotune_local import topology

        publisher, subscriber = stack.publisher(), stack.subscriber()
        topology.create_topics_and_subscriptions(
            publisher,
            subscriber,
            config,
            bridge_url=f"http://127.0.0.1:{ports['bridge']}",
            functions=list(functions),
            storage_topic=STORAGE_NOTIFICATIONS_TOPIC,
            subscriptions=stack.subscriptions,
            options=options,
        )
        # fake-gcs-server publishes to this topic from its first upload on: start it once the topic exists.
        storage = launch(
            "storage", _storage_argv(executables.fake_gcs_server, config, ports, data_dir)
        )
        launch(
            "ticker",
            [
                sys.executable,
                "-m",
                "autotune_local.status_ticker",
                "--project",
                config.project,
                "--topic",
                config.ticks_topic,
                "--seconds",
                str(options.tick_seconds),
            ],
        )
        # The page subscribes to tuning-events when it starts: after the topics exist.
        dashboard = (
            launch(
                "dashboard",
                [
                    sys.executable,
                    "-m",
                    "autotune.dashboard.serve",
                    "--port",
                    str(ports["dashboard"]),
                ],
            )
            if options.dashboard
            else None
        )

        waits = [
            (storage, processes.http_answers(f"http://127.0.0.1:{ports['storage']}/storage/v1/b")),
            (firestore, processes.http_answers(f"http://127.0.0.1:{ports['firestore']}/")),
            *(
                [(tuning, processes.http_ok(f"http://127.0.0.1:{ports['tuning']}/healthz"))]
                if tuning is not None
                else []
            ),
            (bridge, processes.http_ok(f"http://127.0.0.1:{ports['bridge']}/healthz")),
            *(
                (proc, processes.http_answers(f"http://127.0.0.1:{ports[name]}/"))
                for name, proc in functions_running.items()
            ),
            *(
                [(dashboard, processes.http_ok(f"http://127.0.0.1:{ports['dashboard']}/healthz"))]
                if dashboard is not None
                else []
            ),
        ]
        with ThreadPoolExecutor(max_workers=len(waits)) as pool:
            for future in [
                pool.submit(processes.wait_ready, proc, probe, timeout=READY_TIMEOUT_SECONDS)
                for proc, probe in waits
            ]:
                future.result()
        topology.create_bucket(stack.storage_client(), config.bucket)
        write_env_file(state_dir / ENV_FILE, env)
        readiness = {proc.name: probe for proc, probe in waits}

        def relaunch(name: str) -> RunningProcess:
            argv, kwargs = recipes[name]
            proc = processes.launch(
                name, argv, env=child_env, log_dir=log_dir, port=ports.get(name, 0), **kwargs
            )
            started[[p.name for p in started].index(name)] = proc
            _record(state_dir, started, env)
            if name == "pubsub":
                processes.wait_ready(
                    proc,
                    processes.http_answers(f"http://127.0.0.1:{ports['pubsub']}/"),
                    timeout=READY_TIMEOUT_SECONDS,
                )
                topology.create_topics_and_subscriptions(
                    stack.publisher(),
                    stack.subscriber(),
                    config,
                    bridge_url=f"http://127.0.0.1:{ports['bridge']}",
                    functions=list(functions),
                    storage_topic=STORAGE_NOTIFICATIONS_TOPIC,
                    subscriptions=stack.subscriptions,
                    options=options,
                )
            elif name in readiness:
                processes.wait_ready(proc, readiness[name], timeout=READY_TIMEOUT_SECONDS)
            return proc

        stack._relaunch = relaunch
    except BaseException:
        stack.stop()
        raise
    return stack


def stack_environment(config: PipelineConfig, ports: Mapping[str, int]) -> dict[str, str]:
    """The variables of .autotune/local.env; every function process gets them too."""
    return {
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{ports['storage']}",
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{ports['pubsub']}",
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{ports['firestore']}",
        **config.to_env(),
        "AUTOTUNE_VALIDATE_URL": f"http://127.0.0.1:{ports['validate']}"
        if "validate" in ports
        else "",
        "AUTOTUNE_SUBMIT_URL": f"http://127.0.0.1:{ports['submit']}" if "submit" in ports else "",
        "AUTOTUNE_STATUS_URL": f"http://127.0.0.1:{ports['status']}" if "status" in ports else "",
        "AUTOTUNE_DASHBOARD_URL": f"http://127.0.0.1:{ports['dashboard']}/"
        if "dashboard" in ports
        else "",
    }


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    lines = ["# Written by `autotune up`: `source` it to talk to the local stack."]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_state(state_dir: Path = DEFAULT_STATE_DIR) -> dict | None:
    try:
        return json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def recorded_processes(state_dir: Path = DEFAULT_STATE_DIR) -> list[RunningProcess]:
    state = read_state(state_dir)
    if not state:
        return []
    return [RunningProcess.from_dict(p) for p in state.get("processes", [])]


def stop_recorded(state_dir: Path = DEFAULT_STATE_DIR) -> list[RunningProcess]:
    """Stop the stack recorded in state_dir (running, or left by a killed `up`). Returns what it stopped."""
    recorded = recorded_processes(state_dir)
    alive = [p for p in recorded if processes.group_pids(p)]
    processes.stop(recorded)
    for name in (STATE_FILE, ENV_FILE):
        (state_dir / name).unlink(missing_ok=True)
    return alive


def _check_present(functions: Mapping[str, FunctionSource]) -> None:
    missing = [
        f"{source.source} (function {name})"
        for name, source in functions.items()
        if not source.source.exists()
    ]
    if importlib.util.find_spec("autotune_local.tuning_emulator") is None:
        missing.append(
            str(ROOT / "deploy" / "local" / "tuning_emulator.py")
            + " (the Vertex AI tuning emulator)"
        )
    if missing:
        raise MissingPrerequisite(
            "cannot start the local stack, these parts are missing:\n  - " + "\n  - ".join(missing)
        )


def _clean_parent_env() -> dict[str, str]:
    # A developer's own emulator or credential settings must not leak into the stack's processes.
    dropped = {"GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CORE_PROJECT", "DATASTORE_EMULATOR_HOST"}
    return {
        k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("AUTOTUNE_")
    }


def _function_argv(source: FunctionSource, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "functions_framework",
        "--target",
        source.target,
        "--source",
        str(source.source),
        "--signature-type",
        "cloudevent",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def _tuning_argv(ports: Mapping[str, int], quota: int, options: StackOptions) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "autotune_local.tuning_emulator",
        "--host",
        "127.0.0.1",
        "--port",
        str(ports["tuning"]),
        "--storage-endpoint",
        f"http://127.0.0.1:{ports['storage']}",
        "--quota",
        str(quota),
        "--job-seconds",
        str(options.job_seconds),
    ]
    if options.fault_rate_429:
        argv += ["--fault-rate-429", str(options.fault_rate_429)]
    if options.fault_rate_500:
        argv += ["--fault-rate-500", str(options.fault_rate_500)]
    return argv


def _bridge_argv(
    config: PipelineConfig, ports: Mapping[str, int], functions: Mapping[str, FunctionSource]
) -> list[str]:
    topics = {"submit": config.requests_topic, "status": config.ticks_topic}
    routes = {}
    for name in functions:
        target = f"http://127.0.0.1:{ports[name]}/"
        if name == "validate":
            routes[name] = {"kind": "storage", "target": target}
        else:
            routes[name] = {"kind": "pubsub", "target": target, "topic": topics.get(name, name)}
    return [
        sys.executable,
        "-m",
        "autotune_local.event_bridge",
        "--port",
        str(ports["bridge"]),
        "--project",
        config.project,
        "--routes",
        json.dumps(routes),
    ]


def _storage_argv(
    binary: Path, config: PipelineConfig, ports: Mapping[str, int], data_dir: Path
) -> list[str]:
    url = f"http://127.0.0.1:{ports['storage']}"
    return [
        str(binary),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(ports["storage"]),
        "-external-url",
        url,
        "-backend",
        "filesystem",
        "-filesystem-root",
        str(data_dir / "storage"),
        "-event.pubsub-project-id",
        config.project,
        "-event.pubsub-topic",
        STORAGE_NOTIFICATIONS_TOPIC,
        "-event.list",
        "finalize",
        "-event.bucket",
        config.bucket,
    ]


def _subscription_names(functions: Mapping[str, FunctionSource]) -> Subscriptions:
    return Subscriptions(
        push={name: f"{name}-push" for name in functions},
        dead_letter={name: f"{name}-push-dead-letter" for name in functions},
    )


def _record(state_dir: Path, started: list[RunningProcess], env: Mapping[str, str]) -> None:
    state = {
        "created": datetime.now(UTC).isoformat(),
        "owner_pid": os.getpid(),
        "processes": [p.to_dict() for p in started],
        "env": dict(env),
    }
    tmp = state_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
    tmp.replace(state_dir / STATE_FILE)


def _forget(state_dir: Path, stopped: list[RunningProcess]) -> None:
    state = read_state(state_dir)
    if state is None:
        return
    pids = {p.pid for p in stopped}
    if {p["pid"] for p in state.get("processes", [])} <= pids:
        for name in (STATE_FILE, ENV_FILE):
            (state_dir / name).unlink(missing_ok=True)
