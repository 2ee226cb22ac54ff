"""What already exists in the project, read with gcloud's describe/list commands.

`observe` asks gcloud (through any `run` callable, so a test can answer from recorded
outputs) and turns the JSON answers into an `ObservedState`; the planner compares that with
what the deployment wants. Reading never changes anything. A resource that is not there is
simply absent; any other failure (no permission, API disabled, no network) stops the deploy
with gcloud's own message, because planning against a state we could not read would
recreate what exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from autotune_gcp import deployment as d
from autotune_gcp.deployment import DeployTarget


class CommandResult(msgspec.Struct, frozen=True):
    returncode: int
    stdout: str
    stderr: str


Run = Callable[[Sequence[str]], CommandResult]


class InspectionError(RuntimeError):
    """gcloud could not read something, for a reason other than its absence."""


class Binding(msgspec.Struct, frozen=True):
    scope: str  # as in roles.Grant.scope, with subscriptions by full path
    resource: str
    member: str
    role: str
    condition_title: str | None = None


class BucketState(msgspec.Struct, frozen=True, kw_only=True):
    location: str
    uniform_access: bool
    public_access_prevention: str


class SubscriptionState(msgspec.Struct, frozen=True, kw_only=True):
    topic: str
    dead_letter_topic: str | None = None
    max_delivery_attempts: int | None = None
    push_endpoint: str | None = None
    push_service_account: str | None = None  # the OIDC token's account
    push_audience: str | None = None
    filter: str = ""


class FunctionState(msgspec.Struct, frozen=True, kw_only=True):
    source_label: str | None
    runtime: str | None
    entry_point: str | None
    memory: str | None
    cpu: str | None
    timeout_seconds: int | None
    max_instances: int | None
    concurrency: int | None
    service_account: str | None
    environment: dict[str, str]
    event_type: str | None
    pubsub_topic: str | None
    event_filters: dict[str, str]
    trigger_region: str | None
    retry: bool
    trigger_service_account: str | None
    trigger: str | None  # projects/P/locations/L/triggers/NAME
    trigger_subscription: str | None = None  # from the Eventarc trigger


class SchedulerJobState(msgspec.Struct, frozen=True, kw_only=True):
    schedule: str
    time_zone: str
    topic: str


class ObservedState(msgspec.Struct, frozen=True, kw_only=True):
    project_number: str | None = None
    enabled_services: frozenset[str] = frozenset()
    bucket: BucketState | None = None
    topics: frozenset[str] = frozenset()  # short names
    subscriptions: dict[str, SubscriptionState] = {}  # full path -> state
    service_accounts: frozenset[str] = frozenset()  # emails
    bindings: frozenset[Binding] = frozenset()
    firestore_type: str | None = None  # FIRESTORE_NATIVE | DATASTORE_MODE | None when absent
    functions: dict[str, FunctionState] = {}  # function name -> state
    scheduler_job: SchedulerJobState | None = None

    def has_binding(
        self, scope: str, resource: str, member: str, role: str, condition: str | None = None
    ) -> bool:
        return Binding(scope, resource, member, role, condition) in self.bindings


NOTHING = ObservedState()

# gcloud's ways of saying "there is no such thing".
_NOT_FOUND = re.compile(
    r"NOT_FOUND|not found|does not exist|404|notFound|was not found", re.IGNORECASE
)


def gcloud_json(run: Run, argv: list[str], *, absent_ok: bool = True) -> Any | None:
    result = run([*argv, "--format=json"])
    if result.returncode == 0:
        text = result.stdout.strip()
        return json.loads(text) if text else None
    if absent_ok and _NOT_FOUND.search(result.stderr):
        return None
    raise InspectionError(
        f"`{' '.join(argv)}` failed: {result.stderr.strip() or result.returncode}"
    )


def observe(target: DeployTarget, run: Run) -> ObservedState:
    """Read the project. Resources of an API that is not enabled are taken as absent without
    asking (gcloud would fail on them): in a new project, the plan's first step enables it."""
    p = f"--project={target.project}"
    project = gcloud_json(run, ["gcloud", "projects", "describe", target.project], absent_ok=False)
    assert project is not None  # absent_ok=False, and a project that is described prints itself
    services = (
        gcloud_json(run, ["gcloud", "services", "list", "--enabled", p], absent_ok=False) or []
    )
    enabled = frozenset(
        s.get("config", {}).get("name") or s["name"].rsplit("/", 1)[-1] for s in services
    )
    policy = gcloud_json(
        run, ["gcloud", "projects", "get-iam-policy", target.project], absent_ok=False
    )
    found = _Found(bindings=parse_policy(policy, "project", target.project))
    if "storage.googleapis.com" in enabled:
        _read_buckets(target, run, found)
    if "pubsub.googleapis.com" in enabled:
        _read_pubsub(target, run, found)
    if "iam.googleapis.com" in enabled:
        _read_service_accounts(target, run, found)
    firestore = None
    if "firestore.googleapis.com" in enabled:
        firestore = gcloud_json(
            run,
            [
                "gcloud",
                "firestore",
                "databases",
                "describe",
                f"--database={d.FIRESTORE_DATABASE}",
                p,
            ],
        )
    if "cloudfunctions.googleapis.com" in enabled:
        _read_functions(target, run, found)
    job = None
    if "cloudscheduler.googleapis.com" in enabled:
        job = gcloud_json(
            run,
            [
                "gcloud",
                "scheduler",
                "jobs",
                "describe",
                d.SCHEDULER_JOB,
                f"--location={target.region}",
                p,
            ],
        )
    return ObservedState(
        project_number=str(project["projectNumber"]),
        enabled_services=enabled,
        bucket=found.bucket,
        topics=frozenset(found.topics),
        subscriptions=found.subscriptions,
        service_accounts=frozenset(found.accounts),
        bindings=frozenset(found.bindings),
        firestore_type=(firestore or {}).get("type"),
        functions=found.functions,
        scheduler_job=parse_scheduler_job(job) if job else None,
    )


class _Found(msgspec.Struct, kw_only=True):
    bindings: set[Binding]
    bucket: BucketState | None = None
    topics: set[str] = set()
    subscriptions: dict[str, SubscriptionState] = {}
    accounts: set[str] = set()
    functions: dict[str, FunctionState] = {}


def _read_buckets(target: DeployTarget, run: Run, found: _Found) -> None:
    raw = gcloud_json(run, ["gcloud", "storage", "buckets", "describe", f"gs://{target.bucket}"])
    found.bucket = parse_bucket(raw) if raw is not None else None
    for name in ([target.bucket] if found.bucket else []) + list(
        target.config.allowed_media_buckets
    ):
        policy = gcloud_json(
            run, ["gcloud", "storage", "buckets", "get-iam-policy", f"gs://{name}"]
        )
        found.bindings |= parse_policy(policy, "bucket", name)


def _read_pubsub(target: DeployTarget, run: Run, found: _Found) -> None:
    p = f"--project={target.project}"
    listed = gcloud_json(run, ["gcloud", "pubsub", "topics", "list", p], absent_ok=False) or []
    found.topics = {t["name"].rsplit("/", 1)[-1] for t in listed}
    for topic in d.topics(target) + [d.dead_letter_topic(fn) for fn in d.functions(target)]:
        if topic in found.topics:
            policy = gcloud_json(run, ["gcloud", "pubsub", "topics", "get-iam-policy", topic, p])
            found.bindings |= parse_policy(policy, "topic", topic)
    listed = (
        gcloud_json(run, ["gcloud", "pubsub", "subscriptions", "list", p], absent_ok=False) or []
    )
    found.subscriptions = {s["name"]: parse_subscription(s) for s in listed}


def _read_service_accounts(target: DeployTarget, run: Run, found: _Found) -> None:
    p = f"--project={target.project}"
    listed = (
        gcloud_json(run, ["gcloud", "iam", "service-accounts", "list", p], absent_ok=False) or []
    )
    found.accounts = {a["email"] for a in listed}
    # Grants are made on our invoker and notifier, and on the tuning account (which may live
    # in another project, so it is read whether or not it is listed here).
    ours = [d.service_account_email(target, account) for account in (d.INVOKER, d.NOTIFIER)]
    emails = [email for email in ours if email in found.accounts]
    if target.config.tuning_service_account:
        emails.append(target.config.tuning_service_account)
    for email in emails:
        policy = gcloud_json(run, ["gcloud", "iam", "service-accounts", "get-iam-policy", email, p])
        found.bindings |= parse_policy(policy, "service-account", email)


def _read_functions(target: DeployTarget, run: Run, found: _Found) -> None:
    p = f"--project={target.project}"
    for fn in d.functions(target):
        raw = gcloud_json(
            run,
            ["gcloud", "functions", "describe", fn.name, "--gen2", f"--region={target.region}", p],
        )
        if raw is None:
            continue
        state = parse_function(raw)
        if state.trigger:
            trigger = gcloud_json(
                run, ["gcloud", "eventarc", "triggers", "describe", state.trigger]
            )
            subscription = ((trigger or {}).get("transport", {}).get("pubsub", {}) or {}).get(
                "subscription"
            )
            state = msgspec.structs.replace(state, trigger_subscription=subscription)
            if subscription:
                policy = gcloud_json(
                    run, ["gcloud", "pubsub", "subscriptions", "get-iam-policy", subscription]
                )
                found.bindings |= parse_policy(policy, "subscription", subscription)
        policy = gcloud_json(
            run,
            [
                "gcloud",
                "run",
                "services",
                "get-iam-policy",
                fn.name,
                f"--region={target.region}",
                p,
            ],
        )
        found.bindings |= parse_policy(policy, "run-service", fn.name)
        found.functions[fn.name] = state


def parse_policy(policy: dict | None, scope: str, resource: str) -> set[Binding]:
    out: set[Binding] = set()
    for binding in (policy or {}).get("bindings", []):
        title = (binding.get("condition") or {}).get("title")
        for m in binding.get("members", []):
            out.add(Binding(scope, resource, m, binding["role"], title))
    return out


def parse_bucket(raw: dict) -> BucketState:
    # `gcloud storage buckets describe` prints snake_case keys.
    return BucketState(
        location=str(raw.get("location", "")).lower(),
        uniform_access=bool(raw.get("uniform_bucket_level_access")),
        public_access_prevention=str(raw.get("public_access_prevention", "")).lower(),
    )


def parse_subscription(raw: dict) -> SubscriptionState:
    policy = raw.get("deadLetterPolicy") or {}
    push = raw.get("pushConfig") or {}
    oidc = push.get("oidcToken") or {}
    return SubscriptionState(
        topic=raw.get("topic", ""),
        dead_letter_topic=policy.get("deadLetterTopic"),
        max_delivery_attempts=policy.get("maxDeliveryAttempts"),
        push_endpoint=push.get("pushEndpoint"),
        push_service_account=oidc.get("serviceAccountEmail"),
        push_audience=oidc.get("audience"),
        filter=raw.get("filter", ""),
    )


def parse_function(raw: dict) -> FunctionState:
    service = raw.get("serviceConfig") or {}
    build = raw.get("buildConfig") or {}
    trigger = raw.get("eventTrigger") or {}
    return FunctionState(
        source_label=(raw.get("labels") or {}).get(d.SOURCE_LABEL),
        runtime=build.get("runtime"),
        entry_point=build.get("entryPoint"),
        memory=service.get("availableMemory"),
        cpu=service.get("availableCpu"),
        timeout_seconds=service.get("timeoutSeconds"),
        max_instances=service.get("maxInstanceCount"),
        concurrency=service.get("maxInstanceRequestConcurrency"),
        service_account=service.get("serviceAccountEmail"),
        environment=dict(service.get("environmentVariables") or {}),
        event_type=trigger.get("eventType"),
        pubsub_topic=trigger.get("pubsubTopic"),
        event_filters={f["attribute"]: f["value"] for f in trigger.get("eventFilters", [])},
        trigger_region=trigger.get("triggerRegion"),
        retry=trigger.get("retryPolicy") == "RETRY_POLICY_RETRY",
        trigger_service_account=trigger.get("serviceAccountEmail"),
        trigger=trigger.get("trigger"),
    )


def parse_scheduler_job(raw: dict) -> SchedulerJobState:
    return SchedulerJobState(
        schedule=raw.get("schedule", ""),
        time_zone=raw.get("timeZone", ""),
        topic=(raw.get("pubsubTarget") or {}).get("topicName", ""),
    )
