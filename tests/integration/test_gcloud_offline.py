"""Every command the deployment can run, fed to the installed Google Cloud CLI offline.

gcloud parses a command line completely (command group, flags, their types and choices,
required arguments) before it looks for credentials. Run with an empty configuration
directory, no account and prompts disabled, a well-formed command therefore stops at "You do
not currently have an active account selected" (exit 1), while a malformed one stops earlier
with an argument error (exit 2). That is what this test proves for every command of the
deploy, destroy and inspection plans. Values gcloud checks only after authenticating
(memory sizes, member formats) are covered by tests/unit/test_deploy_plan.py instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest

from autotune.config import PipelineConfig
from autotune.job_end_notice import job_end_filter
from autotune_gcp import deployment as d
from autotune_gcp import staging
from autotune_gcp.commands import substitute
from autotune_gcp.deployment import make_target
from autotune_gcp.plan import deploy_plan, destroy_plan
from autotune_gcp.state import CommandResult, SubscriptionState, observe

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("gcloud") is None, reason="the Google Cloud CLI (gcloud) is not installed"
    ),
]

FIXTURE = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "gcp_deployed_state.json"
NO_CREDENTIALS = "You do not currently have an active account selected"
ARGUMENT_ERROR = re.compile(
    r"unrecognized arguments|argument [-A-Z_a-z]+:|Invalid choice|Invalid value for|must be specified|"
    r"is required|Usage: gcloud|ambiguous option"
)
WORKERS = 4  # gcloud takes 1-2 s of CPU to start; the machine is shared
TIMEOUT_SECONDS = 60  # nothing should reach the network; a hang fails instead of blocking CI
DIGESTS = {
    "validate": "0123456789abcdef",
    "submit": "1123456789abcdef",
    "status": "2123456789abcdef",
}
# What the lookups would capture in a real project.
CAPTURED = {
    "PROJECT_NUMBER": "123456789012",
    **{
        f"{fn.upper()}_TRIGGER": f"projects/sample-project/locations/us-central1/triggers/autotune-{fn}-547219"
        for fn in DIGESTS
    },
    **{
        f"{fn.upper()}_SUBSCRIPTION": f"projects/sample-project/subscriptions/eventarc-us-central1-autotune-{fn}-547219-sub-938"
        for fn in DIGESTS
    },
}


NOTIFY_URL = "https://hooks.example.com/autotune?team=ml&kind=job-end"


def target(config: PipelineConfig | None = None, notify_url: str | None = None):
    return make_target(
        project="sample-project",
        region="us-central1",
        bucket=None,
        config=config or PipelineConfig(),
        source_digests=DIGESTS,
        notify_url=notify_url,
    )


def inspection_commands() -> list[tuple[str, ...]]:
    outputs = json.loads(FIXTURE.read_text())["outputs"]
    asked: list[tuple[str, ...]] = []

    def run(argv):
        asked.append(tuple(argv))
        line = " ".join(argv)
        return (
            CommandResult(0, json.dumps(outputs[line]), "")
            if line in outputs
            else CommandResult(1, "", "NOT_FOUND")
        )

    observe(target(), run)
    return asked


def every_command() -> list[tuple[str, ...]]:
    variant = msgspec.structs.replace(
        PipelineConfig(),
        allowed_media_buckets=("media-a", "media-b"),
        tuning_service_account="tuning-runner@other-project.iam.gserviceaccount.com",
    )
    run, _ = _recorded()
    deployed = observe(target(), run)
    assert deployed.bucket is not None and deployed.scheduler_job is not None
    drifted = msgspec.structs.replace(
        deployed,
        bucket=msgspec.structs.replace(deployed.bucket, uniform_access=False),
        scheduler_job=msgspec.structs.replace(deployed.scheduler_job, schedule="0 * * * *"),
    )
    # --notify-url: the subscription made, pointed elsewhere, made again with another filter, removed
    notifying = target(notify_url=NOTIFY_URL)
    notify_path = d.notify_subscription(notifying)
    pushing = SubscriptionState(
        topic="projects/sample-project/topics/tuning-events",
        push_endpoint="https://old.example.com/hook",
        filter="",
    )
    with_notify = msgspec.structs.replace(
        deployed, subscriptions={**deployed.subscriptions, notify_path: pushing}
    )
    plans = [
        deploy_plan(notifying),
        deploy_plan(notifying, with_notify),
        deploy_plan(
            notifying,
            msgspec.structs.replace(
                with_notify,
                subscriptions={
                    **deployed.subscriptions,
                    notify_path: msgspec.structs.replace(pushing, filter=job_end_filter()),
                },
            ),
        ),
        destroy_plan(notifying),
        deploy_plan(target()),
        deploy_plan(target(variant)),
        deploy_plan(target(), drifted),
        destroy_plan(target()),
        destroy_plan(target(variant)),
    ]
    commands = [substitute(step.argv, CAPTURED) for plan in plans for step in plan]
    commands += inspection_commands()
    return list(dict.fromkeys(commands))  # unique, in order


def _recorded():
    outputs = json.loads(FIXTURE.read_text())["outputs"]

    def run(argv):
        line = " ".join(argv)
        return (
            CommandResult(0, json.dumps(outputs[line]), "")
            if line in outputs
            else CommandResult(1, "", "NOT_FOUND")
        )

    return run, outputs


@pytest.fixture(scope="module")
def offline_gcloud(tmp_path_factory):
    """Run gcloud with no account, no prompts, no metadata-server probe, in a directory
    holding the staged sources the deploy commands name."""
    home = tmp_path_factory.mktemp("gcloud-offline")
    config_dir = home / "config"
    config_dir.mkdir()
    for function in DIGESTS:
        staging.stage(function, home / ".autotune" / "gcp-source")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLOUDSDK_", "GOOGLE_", "GCE_"))
        and k not in {"HTTPS_PROXY", "HTTP_PROXY"}
    }
    env.update(
        {
            "CLOUDSDK_CONFIG": str(config_dir),
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
            "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
            "CLOUDSDK_CORE_DISABLE_FILE_LOGGING": "1",
        }
    )
    # The first run writes the configuration directory's files; do it alone, not racing 4 ways.
    subprocess.run(
        ["gcloud", "config", "list"],
        cwd=home,
        env=env,
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
        stdin=subprocess.DEVNULL,
    )

    def run(argv: tuple[str, ...]) -> subprocess.CompletedProcess | str:
        try:
            return subprocess.run(
                list(argv),
                cwd=home,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return f"timed out after {TIMEOUT_SECONDS} s"

    return run


def verdict(result: subprocess.CompletedProcess | str) -> str | None:
    """None when gcloud stopped only for lack of credentials; otherwise what went wrong."""
    if isinstance(result, str):
        return result
    error = result.stderr.strip()
    if ARGUMENT_ERROR.search(error):
        return f"argument error (exit {result.returncode}): {error[:400]}"
    if result.returncode != 1 or NO_CREDENTIALS not in error:
        return f"unexpected exit {result.returncode}: {error[:400]}"
    return None


def test_the_check_tells_an_argument_error_from_missing_credentials(offline_gcloud):
    good, bad = (
        ("gcloud", "pubsub", "topics", "create", "tuning-events", "--project=sample-project"),
        (
            "gcloud",
            "pubsub",
            "topics",
            "create",
            "tuning-events",
            "--project=sample-project",
            "--no-such-flag",
        ),
    )
    wrong_value = (
        "gcloud",
        "pubsub",
        "subscriptions",
        "update",
        "s",
        "--max-delivery-attempts=500",
    )
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(offline_gcloud, [good, bad, wrong_value]))
    assert verdict(results[0]) is None
    for rejected in (verdict(results[1]), verdict(results[2])):
        assert rejected is not None and "argument error" in rejected


def test_every_planned_command_fails_only_for_lack_of_credentials(offline_gcloud):
    commands = every_command()
    assert len(commands) > 60  # deploy, its variants, destroy and inspection together
    assert {c[1] for c in commands} >= {
        "projects",
        "services",
        "storage",
        "pubsub",
        "firestore",
        "iam",
        "functions",
        "eventarc",
        "run",
        "scheduler",
        "beta",
    }
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(offline_gcloud, commands))
    assert any(c[3:5] == ("update", "autotune-notify") for c in commands)
    assert any(c[3:5] == ("delete", "autotune-notify") for c in commands)
    problems = [
        f"{' '.join(c)}\n    -> {v}"
        for c, r in zip(commands, results, strict=True)
        if (v := verdict(r))
    ]
    assert not problems, (
        f"{len(problems)} of {len(commands)} commands were rejected:\n" + "\n".join(problems)
    )
