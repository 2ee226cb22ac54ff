"""What a deployment consists of: names, functions, topics, schedule, APIs. Pure data.

Everything here derives from deploy/config.toml (a `PipelineConfig`) plus the three things
only the person deploying knows: project, region and bucket. Topic names come from the
config; the names this module adds (functions, service accounts, dead-letter topics, the
scheduler job) all start with `autotune-` so they never collide with what else the project
holds and `autotune destroy` removes only what deploy made.
"""

from __future__ import annotations

import re

import msgspec

from autotune.config import PipelineConfig
from autotune.job_end_notice import NOTIFY_SUBSCRIPTION, notify_url_problem

PREFIX = "autotune"
RUNTIME = "python312"
MAX_DELIVERY_ATTEMPTS = 5
# Dead-lettered messages wait here for someone to look: 7 days is Pub/Sub's maximum retention.
DEAD_LETTER_RETENTION = "7d"
# Tuning jobs run for hours and Vertex AI sends no completion event, so status polls. Every
# 5 minutes notices an ended job (and starts the next queued one) within 5 minutes, for
# 8,640 invocations a month.
STATUS_SCHEDULE = "*/5 * * * *"
SCHEDULER_JOB = f"{PREFIX}-status-tick"
SCHEDULER_TIME_ZONE = "Etc/UTC"
TICK_MESSAGE = '{"source":"cloud-scheduler"}'
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
FIRESTORE_DATABASE = "(default)"
SOURCE_LABEL = "autotune-source"

# APIs the deployment uses, each with what needs it (docs/deploy.md lists them from here).
APIS: dict[str, str] = {
    "cloudfunctions.googleapis.com": "Cloud Run functions (2nd gen) deploys the three functions",
    "run.googleapis.com": "the functions run as Cloud Run services",
    "cloudbuild.googleapis.com": "builds each function's container from its source",
    "artifactregistry.googleapis.com": "stores the built containers",
    "eventarc.googleapis.com": "delivers storage and Pub/Sub events to the functions",
    "pubsub.googleapis.com": "tuning-requests, tuning-events, status-ticks and the dead-letter topics",
    "storage.googleapis.com": "the dataset bucket",
    "firestore.googleapis.com": "the ledger (one record per dataset)",
    "cloudscheduler.googleapis.com": "the status tick",
    "aiplatform.googleapis.com": "Vertex AI tuning jobs",
    "iam.googleapis.com": "the functions' service accounts",
    "cloudresourcemanager.googleapis.com": "reading the project number and its IAM policy",
}


class TargetError(ValueError):
    """A deploy option that cannot be used; the message names the option."""


class StorageTrigger(msgspec.Struct, frozen=True, tag="storage"):
    bucket: str
    location: str  # must be the bucket's own location


class TopicTrigger(msgspec.Struct, frozen=True, tag="topic"):
    topic: str


class FunctionSpec(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # validate | submit | status: the directory under functions/
    name: str  # the Cloud Run function (and its Cloud Run service)
    entry_point: str
    service_account: str  # email of its own runtime identity
    trigger: StorageTrigger | TopicTrigger
    memory: str
    cpu: str | None
    timeout_seconds: int
    max_instances: int
    concurrency: int
    sizing: str  # why memory/timeout/instances are what they are (docs/deploy.md)


class DeployTarget(msgspec.Struct, frozen=True, kw_only=True):
    project: str
    region: str
    bucket: str
    config: PipelineConfig  # project and bucket filled in
    firestore_location: str
    source_root: str = ".autotune/gcp-source"  # where each function's source is staged
    source_digests: dict[str, str] = {}  # function key -> digest of its staged source
    bucket_location: str = ""  # an existing bucket's location, when it differs from region
    notify_url: str = ""  # `--notify-url`: push the job end events there (none when empty)

    @property
    def trigger_location(self) -> str:
        return (self.bucket_location or self.region).lower()


def make_target(
    *,
    project: str,
    region: str,
    bucket: str | None,
    config: PipelineConfig,
    firestore_location: str | None = None,
    tuning_service_account: str | None = None,
    source_root: str = ".autotune/gcp-source",
    source_digests: dict[str, str] | None = None,
    notify_url: str | None = None,
) -> DeployTarget:
    _check(
        "--project",
        project,
        r"[a-z][a-z0-9-]{4,28}[a-z0-9]",
        "6-30 lowercase letters, digits or hyphens",
    )
    _check(
        "--region", region, r"[a-z]+(-[a-z]+)+[0-9]+", "a Google Cloud region such as us-central1"
    )
    bucket = bucket or f"{project}-{PREFIX}"
    _check(
        "--bucket",
        bucket,
        r"[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]",
        "3-63 lowercase letters, digits, '-' or '_' (no dots), starting and ending with a letter or digit",
    )
    if bucket.startswith("goog"):
        raise TargetError(
            f"--bucket {bucket!r}: names starting with 'goog' are reserved by Cloud Storage"
        )
    location = firestore_location or region
    _check(
        "--firestore-location",
        location,
        r"[a-z0-9-]+",
        "a Firestore location such as us-central1 or nam5",
    )
    tuning_sa = (
        config.tuning_service_account if tuning_service_account is None else tuning_service_account
    )
    if tuning_sa:
        _check(
            "tuning service account",
            tuning_sa,
            r"[a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z0-9.-]+\.gserviceaccount\.com",
            "a service account email",
        )
    for media in config.allowed_media_buckets:
        _check(
            "allowed_media_buckets", media, r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]", "a bucket name"
        )
    if notify_url is not None:
        problem = notify_url_problem(notify_url, local=False)
        if not problem and "$" in notify_url:
            # The plan writes values that exist only at run time as ${NAME}: a URL holding
            # "$" could be mistaken for one, printed or run.
            problem = f"{notify_url!r}: the URL contains '$' (percent-encode it as %24)"
        if problem:
            raise TargetError(f"--notify-url {problem}")
    filled = msgspec.structs.replace(
        config, project=project, bucket=bucket, vertex_endpoint="", tuning_service_account=tuning_sa
    )
    return DeployTarget(
        project=project,
        region=region,
        bucket=bucket,
        config=filled,
        firestore_location=location,
        source_root=source_root,
        source_digests=dict(source_digests or {}),
        notify_url=notify_url or "",
    )


def _check(option: str, value: str, pattern: str, expected: str) -> None:
    if not re.fullmatch(pattern, value or ""):
        raise TargetError(f"{option} {value!r}: expected {expected}")


def service_account_email(target: DeployTarget, account_id: str) -> str:
    return f"{account_id}@{target.project}.iam.gserviceaccount.com"


# Our own service accounts: one per function, and one identity for the triggers that invoke them.
SERVICE_ACCOUNTS: dict[str, str] = {
    f"{PREFIX}-validate": "autotune validate function: reads datasets, writes reports, publishes",
    f"{PREFIX}-submit": "autotune submit function: starts tuning jobs, keeps the ledger, publishes",
    f"{PREFIX}-status": "autotune status function: follows tuning jobs, keeps the ledger, publishes",
    f"{PREFIX}-invoker": "autotune triggers: Eventarc invokes the functions as this identity",
}
INVOKER = f"{PREFIX}-invoker"
# `--notify-url` only: the push subscription signs its requests with an OIDC token of this
# account, so the receiver can tell Pub/Sub sent them. It holds no role: the token only names it.
NOTIFIER = f"{PREFIX}-notifier"
NOTIFIER_DESCRIPTION = "autotune job end notices: identity in the OIDC token of each push"
NOTIFY_ACK_DEADLINE_SECONDS = 60


def notify_subscription(target: DeployTarget) -> str:
    return f"projects/{target.project}/subscriptions/{NOTIFY_SUBSCRIPTION}"


def functions(target: DeployTarget) -> list[FunctionSpec]:
    cfg = target.config
    return [
        FunctionSpec(
            key="validate",
            name=f"{PREFIX}-validate",
            entry_point="validate",
            service_account=service_account_email(target, f"{PREFIX}-validate"),
            trigger=StorageTrigger(bucket=target.bucket, location=target.trigger_location),
            memory="512Mi",
            cpu="1",
            timeout_seconds=540,
            max_instances=10,
            concurrency=1,
            sizing=(
                "Streams the dataset line by line, so memory does not grow with the file (up to 1 GB): "
                "importing everything it uses peaks at 73 MB and the validator adds about 30 MB, so "
                "512 MiB leaves room for the longest example line. A whole vCPU (the default for "
                "512 MiB is a third of one) because checking lines is CPU-bound: the validator runs at "
                "about 250 MB/s on one core, so 1 GB needs seconds of CPU plus its download; 540 s, the "
                "most an event-driven function may run, is the margin for slow reads. One event per "
                "instance, at most 10 instances: bounded cost when many files land at once (Eventarc "
                "retries the rest)."
            ),
        ),
        FunctionSpec(
            key="submit",
            name=f"{PREFIX}-submit",
            entry_point="submit",
            service_account=service_account_email(target, f"{PREFIX}-submit"),
            trigger=TopicTrigger(topic=cfg.requests_topic),
            memory="512Mi",
            cpu=None,
            timeout_seconds=120,
            max_instances=3,
            concurrency=1,
            sizing=(
                "One small message, one ledger transaction and one tuning-job request per event: "
                "its imports peak at 126 MB, so 512 MiB holds them and the gRPC clients; 120 s covers a slow "
                "Vertex AI call with retries. Jobs are limited by the concurrent-job quota anyway, "
                "so 3 instances are plenty; the ledger keeps one job per dataset however many run."
            ),
        ),
        FunctionSpec(
            key="status",
            name=f"{PREFIX}-status",
            entry_point="status",
            service_account=service_account_email(target, f"{PREFIX}-status"),
            trigger=TopicTrigger(topic=cfg.ticks_topic),
            memory="512Mi",
            cpu=None,
            timeout_seconds=300,
            max_instances=1,
            concurrency=1,
            sizing=(
                "Polls the active jobs on each tick: 512 MiB as for submit. At most 1 instance so "
                "ticks never run side by side (a late tick waits and retries instead of racing "
                "the previous one to promote the same queued dataset); 300 s stays under the "
                "5-minute tick interval."
            ),
        ),
    ]


def dead_letter_topic(function: FunctionSpec) -> str:
    return f"{function.name}-dead-letter"


def dead_letter_subscription(function: FunctionSpec) -> str:
    # Pub/Sub drops messages published to a topic nobody subscribes to: this keeps them.
    return f"{function.name}-dead-letter-hold"


def topics(target: DeployTarget) -> list[str]:
    cfg = target.config
    return [cfg.requests_topic, cfg.events_topic, cfg.ticks_topic]


def function_env(target: DeployTarget) -> dict[str, str]:
    env = target.config.to_env()
    if target.config.models_file:
        # The file is staged beside main.py (staging.STAGED_MODELS_FILE); the deploying
        # machine's path means nothing in the function.
        from autotune_gcp.staging import STAGED_MODELS_FILE

        env["AUTOTUNE_MODELS_FILE"] = STAGED_MODELS_FILE
    return env
