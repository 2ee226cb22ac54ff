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

    def has_binding(self, scope: str, resource: str, member: str, role: str, condition: str | None = None) -> bool:
        return Binding(scope, resource, member, role, condition) in self.bindings


NOTHING = ObservedState()

# gcloud's ways of saying "there is no such thing".
_NOT_FOUND = re.compile(r"NOT_FOUND|not found|does not exist|404|notFound|was not found", re.IGNORECASE)


def gcloud_json(run: Run, argv: list[str], *, absent_ok: bool = True) -> Any | None:
    result = run([*argv, "--format=json"])
    if result.returncode == 0:
        text = result.stdout.strip()
        return json.loads(text) if text else None
    if absent_ok and _NOT_FOUND.search(result.stderr):
        return None
    raise InspectionError(f"`{' '.join(argv)}` failed: {result.stderr.strip() or result.returncode}")


def observe(target: DeployTarget, run: Run) -> ObservedState:
    p = f"--project={target.project}"
    project = gcloud_json(run, ["gcloud", "projects", "describe", target.project], absent_ok=False)
    project_number = str(project["projectNumber"])
    services = gcloud_json(run, ["gcloud", "services", "list", "--enabled", p], absent_ok=False) or []
    enabled = frozenset(s.get("config", {}).get("name") or s["name"].rsplit("/", 1)[-1] for s in services)

    bindings: set[Binding] = set()
    policy = gcloud_json(run, ["gcloud", "projects", "get-iam-policy", target.project], absent_ok=False)
    bindings |= parse_policy(policy, "project", target.project)

    bucket = None
    raw_bucket = gcloud_json(run, ["gcloud", "storage", "buckets", "describe", f"gs://{target.bucket}"])
    if raw_bucket is not None:
        bucket = parse_bucket(raw_bucket)
    for name in ([target.bucket] if bucket else []) + list(target.config.allowed_media_buckets):
        raw = gcloud_json(run, ["gcloud", "storage", "buckets", "get-iam-policy", f"gs://{name}"])
        bindings |= parse_policy(raw, "bucket", name)

    topic_list = gcloud_json(run, ["gcloud", "pubsub", "topics", "list", p], absent_ok=False) or []
    topic_names = frozenset(t["name"].rsplit("/", 1)[-1] for t in topic_list)
    wanted_topics = d.topics(target) + [d.dead_letter_topic(fn) for fn in d.functions(target)]
    for topic in wanted_topics:
        if topic in topic_names:
            raw = gcloud_json(run, ["gcloud", "pubsub", "topics", "get-iam-policy", topic, p])
            bindings |= parse_policy(raw, "topic", topic)
    subscription_list = gcloud_json(run, ["gcloud", "pubsub", "subscriptions", "list", p], absent_ok=False) or []
    subscriptions = {s["name"]: parse_subscription(s) for s in subscription_list}

    account_list = gcloud_json(run, ["gcloud", "iam", "service-accounts", "list", p], absent_ok=False) or []
    accounts = frozenset(a["email"] for a in account_list)
    # Grants are made on two accounts: our invoker, and the tuning account (which may live
    # in another project, so it is read whether or not it is listed here).
    invoker = d.service_account_email(target, d.INVOKER)
    emails = [invoker] if invoker in accounts else []
    if target.config.tuning_service_account:
        emails.append(target.config.tuning_service_account)
    for email in emails:
        raw = gcloud_json(run, ["gcloud", "iam", "service-accounts", "get-iam-policy", email, p])
        bindings |= parse_policy(raw, "service-account", email)

    firestore = gcloud_json(
        run, ["gcloud", "firestore", "databases", "describe", f"--database={d.FIRESTORE_DATABASE}", p]
    )
    functions: dict[str, FunctionState] = {}
    for fn in d.functions(target):
        raw = gcloud_json(run, ["gcloud", "functions", "describe", fn.name, "--gen2", f"--region={target.region}", p])
        if raw is None:
            continue
        state = parse_function(raw)
        if state.trigger:
            trigger = gcloud_json(run, ["gcloud", "eventarc", "triggers", "describe", state.trigger])
            subscription = ((trigger or {}).get("transport", {}).get("pubsub", {}) or {}).get("subscription")
            state = msgspec.structs.replace(state, trigger_subscription=subscription)
            if subscription:
                raw_policy = gcloud_json(run, ["gcloud", "pubsub", "subscriptions", "get-iam-policy", subscription])
                bindings |= parse_policy(raw_policy, "subscription", subscription)
        run_policy = gcloud_json(
            run, ["gcloud", "run", "services", "get-iam-policy", fn.name, f"--region={target.region}", p]
        )
        bindings |= parse_policy(run_policy, "run-service", fn.name)
        functions[fn.name] = state

    job = gcloud_json(
        run, ["gcloud", "scheduler", "jobs", "describe", d.SCHEDULER_JOB, f"--location={target.region}", p]
    )
    return ObservedState(
        project_number=project_number,
        enabled_services=enabled,
        bucket=bucket,
        topics=topic_names,
        subscriptions=subscriptions,
        service_accounts=accounts,
        bindings=frozenset(bindings),
        firestore_type=(firestore or {}).get("type"),
        functions=functions,
        scheduler_job=parse_scheduler_job(job) if job else None,
    )


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
    return SubscriptionState(
        topic=raw.get("topic", ""),
        dead_letter_topic=policy.get("deadLetterTopic"),
        max_delivery_attempts=policy.get("maxDeliveryAttempts"),
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
