"""Starting and stopping the stack's servers by PID.

Each server starts in a session (and so a process group) of its own, so stopping the group
whose id is the PID we started also stops whatever that process started (the Firestore
wrapper script runs Java as a child). A process is identified by its PID *and* its start time,
read from /proc, so a recycled PID is never signalled by mistake.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


class ProcessFailed(RuntimeError):
    """A server exited or never became ready; the message ends with the tail of its log."""


@dataclass(frozen=True)
class RunningProcess:
    name: str
    pid: int  # also the process group id: every server leads its own session
    started: str  # /proc start time, guards against PID reuse
    log: str
    port: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> RunningProcess:
        return cls(**{k: data[k] for k in ("name", "pid", "started", "log", "port") if k in data})


# Ports a stack's servers listen on are picked outside the kernel's ephemeral range: a port from
# that range, free when picked, can be taken before the server binds it by the local end of any
# outgoing connection (the emulators' clients and health checks open many), and the server then
# fails with "address already in use". Seen with the dashboard, the last server a stack starts.
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PICKED_PORT = 10_000
_picked_ports: set[int] = set()
# Not the `random` module's shared state, which a test framework may seed: two processes must
# not walk the same sequence of ports.
_port_chooser = random.SystemRandom()


def ephemeral_ports(range_file: Path | None = None) -> range:
    """The kernel's range for the local end of outgoing connections (Linux's default elsewhere)."""
    try:
        text = (range_file or EPHEMERAL_RANGE_FILE).read_text()
        low, high = (int(part) for part in text.split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port(*, attempts: int = 200) -> int:
    """A port nobody listens on right now, outside the ephemeral range, and not handed out
    before by this process (two servers of one stack never get the same port)."""
    ephemeral = ephemeral_ports()
    below = range(LOWEST_PICKED_PORT, ephemeral.start)
    above = range(ephemeral.stop, 65536)
    choices = below if len(below) >= len(above) else above
    if len(choices) < 1000:
        attempts = 0  # too little room outside the range to be worth searching
    for _ in range(attempts):
        port = _port_chooser.choice(choices)
        if port in _picked_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _picked_ports.add(port)
        return port
    # No room outside the ephemeral range (an unusual kernel setting): let the OS pick.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _picked_ports.add(port)
    return port


def launch(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log_dir: Path,
    cwd: Path | None = None,
    port: int = 0,
) -> RunningProcess:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningProcess(
        name=name, pid=proc.pid, started=_start_time(proc.pid) or "", log=str(log_path), port=port
    )


def is_running(proc: RunningProcess) -> bool:
    started = _start_time(proc.pid)
    return (
        started is not None
        and (started == proc.started or not started)
        and not _is_zombie(proc.pid)
    )


def group_pids(proc: RunningProcess) -> list[int]:
    """PIDs still alive in the process's group (the group id is the PID we started)."""
    started = _start_time(proc.pid)
    if started is not None and proc.started and started and started != proc.started:
        return []  # the PID now belongs to another program: not ours
    return _live_group_members(proc.pid)


def stop(processes: Sequence[RunningProcess], *, grace_seconds: float = 5.0) -> None:
    """SIGTERM every group, wait, then SIGKILL what is left. A group whose leader already
    exited is still cleaned (Linux does not hand out a PID still in use as a group id); a
    PID that now runs another program is left alone."""
    targets = [p for p in processes if group_pids(p)]
    for proc in targets:
        _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and any(_group_alive(p.pid) for p in targets):
        _reap(targets)
        time.sleep(0.05)
    for proc in targets:
        if _group_alive(proc.pid):
            _signal_group(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(_group_alive(p.pid) for p in targets):
        _reap(targets)
        time.sleep(0.05)


def kill(proc: RunningProcess, *, timeout: float = 5.0) -> None:
    """SIGKILL the process's group at once, as a crash would (no chance to finish or clean up),
    and wait until the group is gone so its port is free again."""
    if group_pids(proc):
        _signal_group(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _group_alive(proc.pid):
        _reap([proc])
        time.sleep(0.05)


def wait_ready(proc: RunningProcess, probe: Callable[[], bool], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_running(proc):
            raise ProcessFailed(
                f"{proc.name} exited while starting; see {proc.log}\n{log_tail(proc.log)}"
            )
        if probe():
            return
        time.sleep(0.05)
    raise ProcessFailed(
        f"{proc.name} was not ready after {timeout:.0f} s; see {proc.log}\n{log_tail(proc.log)}"
    )


def http_answers(url: str) -> Callable[[], bool]:
    """Ready when the URL answers at all (any status): the server accepts requests."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except (OSError, ValueError):
            return False

    return probe


def http_ok(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return 200 <= response.status < 300
        except (OSError, ValueError):
            return False

    return probe


def log_tail(path: str, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


_HAS_PROC = Path("/proc/self/stat").exists()


def _start_time(pid: int) -> str | None:
    if not _HAS_PROC:
        # Without /proc (macOS) the start time is unknown: "" matches any, liveness alone decides.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return ""
        return ""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) counted after the parenthesised command name, which may hold spaces.
    return stat.rsplit(")", 1)[1].split()[19]


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return bool(_live_group_members(pgid))


def _live_group_members(pgid: int) -> list[int]:
    if not _HAS_PROC:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            try:
                if os.getpgid(pid) == pgid and not _is_zombie(pid):
                    alive.append(pid)
            except (ProcessLookupError, PermissionError):
                continue
    return alive


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(processes: Sequence[RunningProcess]) -> None:
    # Our own children must be waited for, or they linger as zombies until we exit.
    for proc in processes:
        try:
            os.waitpid(proc.pid, os.WNOHANG)
        except ChildProcessError:
            pass
