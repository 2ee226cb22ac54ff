"""The planner: a deployment and what exists in, the ordered gcloud steps out. Pure.

`deploy_plan(target, state)` lists only what is missing or different, so against a project
that already matches it returns nothing. With the default `NOTHING` state it is the whole
plan from scratch, which is what `--dry-run` prints. `destroy_plan` is the reverse.

Order matters and is fixed: APIs, then the bucket, topics, database and identities, then the
grants on them, then the functions (which need their identities and triggers' topics), then
what only exists once a function does (its invoker grant, its trigger's subscription), then
the push subscription of `--notify-url` (when given), then the schedule that sets
everything going.
"""

from __future__ import annotations

import msgspec

from autotune.job_end_notice import NOTIFY_SUBSCRIPTION, job_end_filter
from autotune_gcp import deployment as d
from autotune_gcp import roles
from autotune_gcp.commands import Step
from autotune_gcp.deployment import DeployTarget, FunctionSpec, StorageTrigger, TopicTrigger
from autotune_gcp.state import NOTHING, ObservedState


class PlanConflict(RuntimeError):
    """Something exists in a shape the deployment cannot change (the message says what to do)."""


def deploy_plan(target: DeployTarget, state: ObservedState = NOTHING) -> list[Step]:
    if state.bucket and state.bucket.location:
        target = msgspec.structs.replace(target, bucket_location=state.bucket.location)
    number = state.project_number or roles.PROJECT_NUMBER
    p = f"--project={target.project}"
    steps: list[Step] = []

    if state.project_number is None:
        steps.append(
            Step(
                argv=(
                    "gcloud",
                    "projects",
                    "describe",
                    target.project,
                    "--format=value(projectNumber)",
                ),
                why="the project number names Google's service agents (service-NUMBER@...)",
                capture="PROJECT_NUMBER",
                supports=roles.PROJECT_NUMBER,
            )
        )

    missing_apis = [api for api in d.APIS if api not in state.enabled_services]
    if missing_apis:
        steps.append(
            Step(
                argv=("gcloud", "services", "enable", *missing_apis, p),
                why="enable the APIs the pipeline uses",
            )
        )

    steps += _bucket_steps(target, state)

    for topic in d.topics(target) + [d.dead_letter_topic(fn) for fn in d.functions(target)]:
        if topic not in state.topics:
            steps.append(
                Step(argv=("gcloud", "pubsub", "topics", "create", topic, p), why=f"topic {topic}")
            )
    for fn in d.functions(target):
        hold = d.dead_letter_subscription(fn)
        if f"projects/{target.project}/subscriptions/{hold}" not in state.subscriptions:
            steps.append(
                Step(
                    argv=(
                        "gcloud",
                        "pubsub",
                        "subscriptions",
                        "create",
                        hold,
                        f"--topic={d.dead_letter_topic(fn)}",
                        f"--message-retention-duration={d.DEAD_LETTER_RETENTION}",
                        "--expiration-period=never",
                        p,
                    ),
                    why=f"keep what {fn.name} could not process (a topic without a subscription drops messages)",
                )
            )

    if state.firestore_type is None:
        steps.append(
            Step(
                argv=(
                    "gcloud",
                    "firestore",
                    "databases",
                    "create",
                    f"--database={d.FIRESTORE_DATABASE}",
                    f"--location={target.firestore_location}",
                    "--type=firestore-native",
                    p,
                ),
                why="the ledger's database (Firestore native mode)",
            )
        )
    elif state.firestore_type != "FIRESTORE_NATIVE":
        raise PlanConflict(
            f"project {target.project}: the {d.FIRESTORE_DATABASE} Firestore database is in {state.firestore_type}; "
            "the ledger needs Firestore native mode, and a database's mode cannot be changed. "
            "Deploy to another project."
        )

    for account_id, description in d.SERVICE_ACCOUNTS.items():
        if d.service_account_email(target, account_id) not in state.service_accounts:
            steps.append(
                Step(
                    argv=(
                        "gcloud",
                        "iam",
                        "service-accounts",
                        "create",
                        account_id,
                        f"--display-name={description}",
                        p,
                    ),
                    why=f"identity {account_id}",
                )
            )
    notifier = d.service_account_email(target, d.NOTIFIER)
    if target.notify_url and notifier not in state.service_accounts:
        steps.append(
            Step(
                argv=(
                    "gcloud",
                    "iam",
                    "service-accounts",
                    "create",
                    d.NOTIFIER,
                    f"--display-name={d.NOTIFIER_DESCRIPTION}",
                    p,
                ),
                why=f"identity {d.NOTIFIER}",
            )
        )

    steps += [
        Step(
            argv=(
                "gcloud",
                "beta",
                "services",
                "identity",
                "create",
                "--service=pubsub.googleapis.com",
                p,
            ),
            why="make sure the Pub/Sub service agent exists before granting it roles",
            supports=roles.SERVICE_AGENTS["pubsub-agent"][0],
        ),
        Step(
            argv=(
                "gcloud",
                "beta",
                "services",
                "identity",
                "create",
                "--service=aiplatform.googleapis.com",
                p,
            ),
            why="make sure the Vertex AI service agent exists before granting it roles",
            supports=roles.SERVICE_AGENTS["vertex-agent"][0],
        ),
        Step(
            argv=("gcloud", "storage", "service-agent", p),
            why="make sure the Cloud Storage service agent exists before granting it roles",
            supports=roles.SERVICE_AGENTS["storage-agent"][0],
        ),
    ]

    grants = roles.grants(target)
    for grant in grants:
        if grant.scope not in {"subscription", "run-service"}:
            steps += _grant_steps(target, state, grant, number)

    for fn in d.functions(target):
        steps += _function_steps(target, state, fn, grants, number)

    steps += _notify_steps(target, state)
    steps += _scheduler_steps(target, state)
    return _drop_unused_support(steps)


def _notify_steps(target: DeployTarget, state: ObservedState) -> list[Step]:
    """The push subscription of `--notify-url`. Without the flag an existing one is left alone:
    a re-deploy that forgot the flag should not silence the person who asked to be told."""
    if not target.notify_url:
        return []
    p = f"--project={target.project}"
    url = target.notify_url
    # The audience is the URL itself, stated rather than left to the default, so the receiver
    # knows exactly which `aud` to check.
    push = (
        f"--push-endpoint={url}",
        f"--push-auth-service-account={d.service_account_email(target, d.NOTIFIER)}",
        f"--push-auth-token-audience={url}",
    )
    create = Step(
        argv=(
            "gcloud",
            "pubsub",
            "subscriptions",
            "create",
            NOTIFY_SUBSCRIPTION,
            f"--topic={target.config.events_topic}",
            *push,
            f"--message-filter={job_end_filter()}",
            f"--ack-deadline={d.NOTIFY_ACK_DEADLINE_SECONDS}",
            p,
        ),
        why=f"push the job end events of {target.config.events_topic} to {url}, signed with an OIDC token",
    )
    found = state.subscriptions.get(d.notify_subscription(target))
    if found is None:
        return [create]
    topic = f"projects/{target.project}/topics/{target.config.events_topic}"
    if found.topic != topic or found.filter != job_end_filter():
        # Pub/Sub cannot change a subscription's topic or filter: it is made again.
        return [
            Step(
                argv=(
                    "gcloud",
                    "pubsub",
                    "subscriptions",
                    "delete",
                    NOTIFY_SUBSCRIPTION,
                    p,
                    "--quiet",
                ),
                why=f"{NOTIFY_SUBSCRIPTION} has another topic or filter, which cannot be changed in place",
            ),
            create,
        ]
    wanted = (url, d.service_account_email(target, d.NOTIFIER), url)
    if (found.push_endpoint, found.push_service_account, found.push_audience) != wanted:
        return [
            Step(
                argv=("gcloud", "pubsub", "subscriptions", "update", NOTIFY_SUBSCRIPTION, *push, p),
                why=f"point {NOTIFY_SUBSCRIPTION} at {url}, signed with an OIDC token",
            )
        ]
    return []


def _bucket_steps(target: DeployTarget, state: ObservedState) -> list[Step]:
    url = f"gs://{target.bucket}"
    if state.bucket is None:
        return [
            Step(
                argv=(
                    "gcloud",
                    "storage",
                    "buckets",
                    "create",
                    url,
                    f"--project={target.project}",
                    f"--location={target.region}",
                    "--uniform-bucket-level-access",
                    "--public-access-prevention",
                ),
                why="the dataset bucket: IAM only (no object ACLs), never public",
            )
        ]
    if not state.bucket.uniform_access or state.bucket.public_access_prevention != "enforced":
        return [
            Step(
                argv=(
                    "gcloud",
                    "storage",
                    "buckets",
                    "update",
                    url,
                    "--uniform-bucket-level-access",
                    "--public-access-prevention",
                ),
                why="the existing bucket: IAM only (no object ACLs), never public",
            )
        ]
    return []


def _grant_steps(
    target: DeployTarget,
    state: ObservedState,
    grant: roles.Grant,
    number: str,
    resource: str | None = None,
) -> list[Step]:
    member = roles.member(grant.principal, target, number)
    resource = resource or grant.resource
    title = grant.condition.title if grant.condition else None
    if state.has_binding(grant.scope, resource, member, grant.role, title):
        return []
    binding = (f"--member={member}", f"--role={grant.role}")
    p = f"--project={target.project}"
    argv: tuple[str, ...] = {
        # --condition=None: a project policy may already hold conditional bindings, and gcloud
        # then refuses an unconditional one without being told explicitly.
        "project": (
            "gcloud",
            "projects",
            "add-iam-policy-binding",
            resource,
            *binding,
            "--condition=None",
        ),
        "bucket": (
            "gcloud",
            "storage",
            "buckets",
            "add-iam-policy-binding",
            f"gs://{resource}",
            *binding,
        ),
        "topic": ("gcloud", "pubsub", "topics", "add-iam-policy-binding", resource, *binding, p),
        "subscription": (
            "gcloud",
            "pubsub",
            "subscriptions",
            "add-iam-policy-binding",
            resource,
            *binding,
        ),
        "service-account": (
            "gcloud",
            "iam",
            "service-accounts",
            "add-iam-policy-binding",
            resource,
            *binding,
            p,
        ),
        "run-service": (
            "gcloud",
            "run",
            "services",
            "add-iam-policy-binding",
            resource,
            *binding,
            f"--region={target.region}",
            p,
        ),
    }[grant.scope]
    if grant.condition:
        argv += (
            f"--condition=expression={grant.condition.expression},title={grant.condition.title}",
        )
    who = roles.describe_principal(grant.principal, target)
    return [Step(argv=argv, why=f"{who}: {grant.role} ({grant.why})")]


def function_deploy_argv(target: DeployTarget, fn: FunctionSpec) -> tuple[str, ...]:
    digest = target.source_digests.get(fn.key, "unstaged")
    if isinstance(fn.trigger, StorageTrigger):
        trigger: tuple[str, ...] = (
            f"--trigger-event-filters=type={d.STORAGE_FINALIZED}",
            f"--trigger-event-filters=bucket={fn.trigger.bucket}",
            f"--trigger-location={fn.trigger.location}",
        )
    else:
        trigger = (f"--trigger-topic={fn.trigger.topic}",)
    return (
        "gcloud",
        "functions",
        "deploy",
        fn.name,
        "--gen2",
        f"--project={target.project}",
        f"--region={target.region}",
        f"--runtime={d.RUNTIME}",
        f"--source={target.source_root}/{fn.key}",
        f"--entry-point={fn.entry_point}",
        *trigger,
        "--retry",
        f"--trigger-service-account={d.service_account_email(target, d.INVOKER)}",
        f"--service-account={fn.service_account}",
        f"--memory={fn.memory}",
        *((f"--cpu={fn.cpu}",) if fn.cpu else ()),
        f"--timeout={fn.timeout_seconds}s",
        f"--max-instances={fn.max_instances}",
        f"--concurrency={fn.concurrency}",
        f"--set-env-vars={env_vars_flag(d.function_env(target))}",
        f"--update-labels={d.SOURCE_LABEL}={digest}",
    )


def env_vars_flag(env: dict[str, str]) -> str:
    """KEY=VALUE pairs for --set-env-vars; gcloud's ^DELIM^ form when a value holds a comma."""
    values = "".join(env.values())
    if "," not in values:
        return ",".join(f"{k}={v}" for k, v in env.items())
    delimiter = next(c for c in "@|;:#~+" if c not in values)
    return f"^{delimiter}^" + delimiter.join(f"{k}={v}" for k, v in env.items())


def function_is_current(target: DeployTarget, fn: FunctionSpec, state: ObservedState) -> bool:
    current = state.functions.get(fn.name)
    if current is None:
        return False
    # Compared without empty values: an unset AUTOTUNE_* variable and an empty one mean the
    # same to PipelineConfig.from_env, whichever way the service chooses to store it.
    env = {k: v for k, v in current.environment.items() if k.startswith("AUTOTUNE_") and v}
    wanted_env = {k: v for k, v in d.function_env(target).items() if v}
    if isinstance(fn.trigger, StorageTrigger):
        trigger_ok = (
            current.event_type == d.STORAGE_FINALIZED
            and current.event_filters.get("bucket") == fn.trigger.bucket
            and (current.trigger_region or "").lower() == fn.trigger.location
        )
    else:
        trigger_ok = current.pubsub_topic == f"projects/{target.project}/topics/{fn.trigger.topic}"
    return (
        trigger_ok
        and current.source_label == target.source_digests.get(fn.key, "unstaged")
        and current.runtime == d.RUNTIME
        and current.entry_point == fn.entry_point
        and current.memory == fn.memory
        and (fn.cpu is None or current.cpu == fn.cpu)
        and current.timeout_seconds == fn.timeout_seconds
        and current.max_instances == fn.max_instances
        and current.concurrency == fn.concurrency
        and current.service_account == fn.service_account
        and current.retry
        and current.trigger_service_account == d.service_account_email(target, d.INVOKER)
        and env == wanted_env
    )


def _function_steps(
    target: DeployTarget,
    state: ObservedState,
    fn: FunctionSpec,
    grants: list[roles.Grant],
    number: str,
) -> list[Step]:
    steps: list[Step] = []
    redeploy = not function_is_current(target, fn, state)
    if redeploy:
        steps.append(
            Step(
                argv=function_deploy_argv(target, fn),
                why=f"function {fn.name} ({_trigger_text(fn)})",
            )
        )
    for grant in grants:
        if grant.scope == "run-service" and grant.resource == fn.name:
            steps += _grant_steps(target, state, grant, number)

    current = state.functions.get(fn.name)
    known = None if redeploy or current is None else current.trigger_subscription
    var = fn.key.upper()
    if known is None:
        steps += [
            Step(
                argv=(
                    "gcloud",
                    "functions",
                    "describe",
                    fn.name,
                    "--gen2",
                    f"--region={target.region}",
                    f"--project={target.project}",
                    "--format=value(eventTrigger.trigger)",
                ),
                why=f"the Eventarc trigger of {fn.name}",
                capture=f"{var}_TRIGGER",
                supports=f"${{{var}_TRIGGER}}",
            ),
            Step(
                argv=(
                    "gcloud",
                    "eventarc",
                    "triggers",
                    "describe",
                    f"${{{var}_TRIGGER}}",
                    "--format=value(transport.pubsub.subscription)",
                ),
                why=f"the Pub/Sub subscription Eventarc made for {fn.name}",
                capture=f"{var}_SUBSCRIPTION",
                supports=f"${{{var}_SUBSCRIPTION}}",
            ),
        ]
    subscription = known or f"${{{var}_SUBSCRIPTION}}"
    dead_letter = f"projects/{target.project}/topics/{d.dead_letter_topic(fn)}"
    found = state.subscriptions.get(subscription) if known else None
    if (
        not found
        or found.dead_letter_topic != dead_letter
        or found.max_delivery_attempts != d.MAX_DELIVERY_ATTEMPTS
    ):
        steps.append(
            Step(
                argv=(
                    "gcloud",
                    "pubsub",
                    "subscriptions",
                    "update",
                    subscription,
                    f"--dead-letter-topic={dead_letter}",
                    f"--max-delivery-attempts={d.MAX_DELIVERY_ATTEMPTS}",
                ),
                why=(
                    f"after {d.MAX_DELIVERY_ATTEMPTS} failed deliveries, move the event to {d.dead_letter_topic(fn)} "
                    "instead of retrying it until Eventarc's 24-hour retention drops it"
                ),
            )
        )
    for grant in grants:
        if grant.scope == "subscription" and grant.resource == fn.key:
            steps += _grant_steps(target, state, grant, number, resource=subscription)
    return steps


def _trigger_text(fn: FunctionSpec) -> str:
    if isinstance(fn.trigger, TopicTrigger):
        return f"on each message on {fn.trigger.topic}"
    return f"on each object finalized in gs://{fn.trigger.bucket}"


def _scheduler_steps(target: DeployTarget, state: ObservedState) -> list[Step]:
    topic = f"projects/{target.project}/topics/{target.config.ticks_topic}"
    where = (f"--location={target.region}", f"--project={target.project}")
    job = state.scheduler_job
    if job is None:
        return [
            Step(
                argv=(
                    "gcloud",
                    "scheduler",
                    "jobs",
                    "create",
                    "pubsub",
                    d.SCHEDULER_JOB,
                    *where,
                    f"--schedule={d.STATUS_SCHEDULE}",
                    f"--time-zone={d.SCHEDULER_TIME_ZONE}",
                    f"--topic={topic}",
                    f"--message-body={d.TICK_MESSAGE}",
                ),
                why="a tick on status-ticks every 5 minutes: Vertex AI sends no event when a job ends",
            )
        ]
    if (job.schedule, job.time_zone, job.topic) != (
        d.STATUS_SCHEDULE,
        d.SCHEDULER_TIME_ZONE,
        topic,
    ):
        return [
            Step(
                argv=(
                    "gcloud",
                    "scheduler",
                    "jobs",
                    "update",
                    "pubsub",
                    d.SCHEDULER_JOB,
                    *where,
                    f"--schedule={d.STATUS_SCHEDULE}",
                    f"--time-zone={d.SCHEDULER_TIME_ZONE}",
                    f"--topic={topic}",
                    f"--message-body={d.TICK_MESSAGE}",
                ),
                why="bring the status tick back to its schedule and topic",
            )
        ]
    return []


def _drop_unused_support(steps: list[Step]) -> list[Step]:
    kept: list[Step] = []
    for step in reversed(steps):
        if step.supports is None or any(
            step.supports in arg for later in kept for arg in later.argv
        ):
            kept.append(step)
    kept.reverse()
    # A plan holding nothing but lookups changes nothing: it is empty.
    return kept if any(s.supports is None for s in kept) else []


def destroy_plan(
    target: DeployTarget, state: ObservedState | None = None, *, keep_data: bool = False
) -> list[Step]:
    """Remove what deploy made, newest first. `state` None: assume all of it exists (dry run).

    Left in place on purpose: the enabled APIs, the service agents' project-level grants (other
    triggers in the project may rely on them) and the Firestore database itself (a project
    has one default database and other applications may keep data in it): destroy deletes
    the ledger's collection, not the database.
    """
    everything = state is None
    state = state or NOTHING
    p = f"--project={target.project}"
    steps: list[Step] = []
    if everything or state.scheduler_job:
        steps.append(
            Step(
                argv=(
                    "gcloud",
                    "scheduler",
                    "jobs",
                    "delete",
                    d.SCHEDULER_JOB,
                    f"--location={target.region}",
                    p,
                    "--quiet",
                ),
                why="stop the status tick",
            )
        )
    for fn in d.functions(target):
        if everything or fn.name in state.functions:
            steps.append(
                Step(
                    argv=(
                        "gcloud",
                        "functions",
                        "delete",
                        fn.name,
                        "--gen2",
                        f"--region={target.region}",
                        p,
                        "--quiet",
                    ),
                    why=f"function {fn.name} (its Eventarc trigger and subscription go with it)",
                )
            )
    for fn in d.functions(target):
        hold = d.dead_letter_subscription(fn)
        if everything or f"projects/{target.project}/subscriptions/{hold}" in state.subscriptions:
            steps.append(
                Step(
                    argv=("gcloud", "pubsub", "subscriptions", "delete", hold, p, "--quiet"),
                    why=f"dead-letter subscription {hold} (and any messages in it)",
                )
            )
    # Made only with --notify-url: a dry run (which reads nothing) lists it only with the flag.
    if (everything and target.notify_url) or d.notify_subscription(target) in state.subscriptions:
        steps.append(
            Step(
                argv=(
                    "gcloud",
                    "pubsub",
                    "subscriptions",
                    "delete",
                    NOTIFY_SUBSCRIPTION,
                    p,
                    "--quiet",
                ),
                why=f"the job end notices' push subscription {NOTIFY_SUBSCRIPTION}",
            )
        )
    for topic in d.topics(target) + [d.dead_letter_topic(fn) for fn in d.functions(target)]:
        if everything or topic in state.topics:
            steps.append(
                Step(
                    argv=("gcloud", "pubsub", "topics", "delete", topic, p, "--quiet"),
                    why=f"topic {topic}",
                )
            )
    number = state.project_number or roles.PROJECT_NUMBER
    for grant in roles.grants(target):
        # Project-level grants outlive their service account (as deleted:serviceAccount:...):
        # remove ours explicitly. Grants on deleted resources go with those resources.
        if grant.scope != "project" or grant.principal not in d.SERVICE_ACCOUNTS:
            continue
        member = roles.member(grant.principal, target, number)
        if everything or state.has_binding("project", target.project, member, grant.role):
            steps.append(
                Step(
                    argv=(
                        "gcloud",
                        "projects",
                        "remove-iam-policy-binding",
                        target.project,
                        f"--member={member}",
                        f"--role={grant.role}",
                        "--condition=None",
                    ),
                    why=f"{grant.principal}: {grant.role} on the project",
                )
            )
    for grant in roles.grants(target):
        # The tuning service account is not ours to delete: take back what we gave on it.
        if (
            grant.scope == "service-account"
            and grant.resource == target.config.tuning_service_account
        ):
            member = roles.member(grant.principal, target, number)
            if everything or state.has_binding(grant.scope, grant.resource, member, grant.role):
                steps.append(
                    Step(
                        argv=(
                            "gcloud",
                            "iam",
                            "service-accounts",
                            "remove-iam-policy-binding",
                            grant.resource,
                            f"--member={member}",
                            f"--role={grant.role}",
                            p,
                        ),
                        why=f"{grant.principal} may no longer act as the tuning service account",
                    )
                )
    for account_id in d.SERVICE_ACCOUNTS:
        email = d.service_account_email(target, account_id)
        if everything or email in state.service_accounts:
            steps.append(
                Step(
                    argv=("gcloud", "iam", "service-accounts", "delete", email, p, "--quiet"),
                    why=f"identity {account_id}",
                )
            )
    notifier = d.service_account_email(target, d.NOTIFIER)
    if (everything and target.notify_url) or notifier in state.service_accounts:
        steps.append(
            Step(
                argv=("gcloud", "iam", "service-accounts", "delete", notifier, p, "--quiet"),
                why=f"identity {d.NOTIFIER} (its token creator grant goes with it)",
            )
        )
    if not keep_data and (everything or state.firestore_type):
        steps.append(
            Step(
                argv=(
                    "gcloud",
                    "firestore",
                    "bulk-delete",
                    f"--collection-ids={target.config.ledger_collection}",
                    f"--database={d.FIRESTORE_DATABASE}",
                    p,
                    "--quiet",
                ),
                why=f"DATA: the ledger collection {target.config.ledger_collection} (one record per dataset)",
                deletes_data=True,
            )
        )
    if not keep_data and (everything or state.bucket is not None):
        steps.append(
            Step(
                argv=("gcloud", "storage", "rm", "--recursive", f"gs://{target.bucket}", p),
                why=f"DATA: bucket gs://{target.bucket} with every dataset and report in it",
                deletes_data=True,
            )
        )
    return steps
