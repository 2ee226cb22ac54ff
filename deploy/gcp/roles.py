"""Every IAM role the deployment grants, on what, to whom, and why: the one table the plan
and docs/deploy.md are both built from.

Least privilege, concretely: no identity gets a role on the project when one on a single
bucket, topic, subscription, service account or service does the job. Project-level grants
remain only where Google offers no narrower resource (tuning jobs, Firestore, Eventarc
event receipt, the Cloud Storage agent's publishing to topics Eventarc creates itself).
"""

from __future__ import annotations

import msgspec

from autotune_gcp.deployment import (
    INVOKER,
    NOTIFIER,
    PREFIX,
    DeployTarget,
    dead_letter_topic,
    functions,
    service_account_email,
)

PROJECT_NUMBER = "${PROJECT_NUMBER}"  # filled by the `gcloud projects describe` step


class Condition(msgspec.Struct, frozen=True):
    title: str
    expression: str


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    principal: str  # an account id of ours (autotune-validate, ...) or a service agent kind
    role: str
    scope: str  # project | bucket | topic | subscription | service-account | run-service
    resource: str  # bucket name, topic name, function key, service account email, function name
    why: str
    condition: Condition | None = None


# Google-managed identities, by kind: how each one's email is made from the project number.
SERVICE_AGENTS = {
    "pubsub-agent": ("gcp-sa-pubsub.iam.gserviceaccount.com", "Pub/Sub service agent"),
    "vertex-agent": ("gcp-sa-aiplatform.iam.gserviceaccount.com", "Vertex AI service agent"),
    "storage-agent": ("gs-project-accounts.iam.gserviceaccount.com", "Cloud Storage service agent"),
}
TUNING_ACCOUNT = "tuning-account"


def member(principal: str, target: DeployTarget, project_number: str = PROJECT_NUMBER) -> str:
    if principal in SERVICE_AGENTS:
        return f"serviceAccount:service-{project_number}@{SERVICE_AGENTS[principal][0]}"
    if principal == TUNING_ACCOUNT:
        return f"serviceAccount:{target.config.tuning_service_account}"
    return f"serviceAccount:{service_account_email(target, principal)}"


def describe_principal(principal: str, target: DeployTarget) -> str:
    if principal in SERVICE_AGENTS:
        return SERVICE_AGENTS[principal][1]
    if principal == TUNING_ACCOUNT:
        return f"tuning service account ({target.config.tuning_service_account})"
    return principal


def reports_only(target: DeployTarget) -> Condition:
    prefix = target.config.reports_prefix
    return Condition(
        title="autotune-reports-only",
        expression=f'resource.name.startsWith("projects/_/buckets/{target.bucket}/objects/{prefix}")',
    )


def intake_grants(target: DeployTarget, principal: str, *, purpose: str = "") -> list[Grant]:
    """What running the intake (validate's code) needs: validate's own, and status's, whose
    reconciliation takes in again the uploads whose messages were lost."""
    cfg, bucket = target.config, target.bucket
    lead = f"{purpose}: " if purpose else ""
    return [
        Grant(
            principal=principal,
            role="roles/storage.objectViewer",
            scope="bucket",
            resource=bucket,
            why=f"{lead}stream the dataset, its manifest and validation file; check referenced media exist",
        ),
        Grant(
            principal=principal,
            role="roles/storage.objectUser",
            scope="bucket",
            resource=bucket,
            condition=reports_only(target),
            why=(
                f"{lead}write (and, on a retried event, overwrite) its report under {cfg.reports_prefix} "
                "only: the condition keeps it from writing into incoming/, which would start jobs"
            ),
        ),
        *[
            Grant(
                principal=principal,
                role="roles/storage.objectViewer",
                scope="bucket",
                resource=m,
                why=f"{lead}check that media the dataset references exist",
            )
            for m in cfg.allowed_media_buckets
        ],
        Grant(
            principal=principal,
            role="roles/pubsub.publisher",
            scope="topic",
            resource=cfg.requests_topic,
            why=f"{lead}hand an accepted dataset to submit",
        ),
    ]


def grants(target: DeployTarget) -> list[Grant]:
    cfg = target.config
    bucket = target.bucket
    media = list(cfg.allowed_media_buckets)
    validate, submit, status, invoker = (
        f"{PREFIX}-validate",
        f"{PREFIX}-submit",
        f"{PREFIX}-status",
        INVOKER,
    )
    out: list[Grant] = [
        # validate
        *intake_grants(target, validate),
        Grant(
            principal=validate,
            role="roles/pubsub.publisher",
            scope="topic",
            resource=cfg.events_topic,
            why="announce accepted/rejected",
        ),
        # submit
        Grant(
            principal=submit,
            role="roles/aiplatform.user",
            scope="project",
            resource=target.project,
            why="create tuning jobs (aiplatform.tuningJobs.create) and look up its own jobs by label; "
            "Vertex AI has no per-job IAM, so the role is project-wide",
        ),
        Grant(
            principal=submit,
            role="roles/datastore.user",
            scope="project",
            resource=target.project,
            why="the ledger: create-if-absent and transactional updates (Firestore IAM is per database)",
        ),
        Grant(
            principal=submit,
            role="roles/pubsub.publisher",
            scope="topic",
            resource=cfg.events_topic,
            why="announce queued/submitted",
        ),
        Grant(
            principal=submit,
            role="roles/storage.objectViewer",
            scope="bucket",
            resource=bucket,
            why="re-check a request before acting: read its upload's report and the pinned copies' generations",
        ),
        # status
        Grant(
            principal=status,
            role="roles/aiplatform.user",
            scope="project",
            resource=target.project,
            why="get and list tuning jobs, and create one: when a slot frees it submits the oldest queued "
            "dataset itself and takes over submissions whose submitter died (viewer could not create)",
        ),
        Grant(
            principal=status,
            role="roles/datastore.user",
            scope="project",
            resource=target.project,
            why="read active records, record state transitions",
        ),
        Grant(
            principal=status,
            role="roles/pubsub.publisher",
            scope="topic",
            resource=cfg.events_topic,
            why="announce running/succeeded/failed/cancelled, and accepted/rejected for uploads it takes in again",
        ),
        # status: reconciliation runs validate's code on uploads whose messages were lost
        *intake_grants(
            target,
            status,
            purpose="reconciliation of lost uploads, with validate's code (listing included)",
        ),
        # the triggers' identity
        Grant(
            principal=invoker,
            role="roles/eventarc.eventReceiver",
            scope="project",
            resource=target.project,
            why="Eventarc requires it of a trigger's service account for Cloud Storage events",
        ),
        *[
            Grant(
                principal=invoker,
                role="roles/run.invoker",
                scope="run-service",
                resource=fn.name,
                why=f"deliver events to {fn.name} (the functions do not accept unauthenticated calls)",
            )
            for fn in functions(target)
        ],
        # Google's service agents
        Grant(
            principal="storage-agent",
            role="roles/pubsub.publisher",
            scope="project",
            resource=target.project,
            why="Eventarc's Cloud Storage trigger: the bucket publishes its notifications to a topic "
            "Eventarc creates, so the grant cannot name the topic in advance",
        ),
        Grant(
            principal="vertex-agent",
            role="roles/storage.objectViewer",
            scope="bucket",
            resource=bucket,
            why="the tuning job reads the training and validation files",
        ),
        *[
            Grant(
                principal="vertex-agent",
                role="roles/storage.objectViewer",
                scope="bucket",
                resource=m,
                why="the tuning job reads media the examples reference",
            )
            for m in media
        ],
        Grant(
            principal="pubsub-agent",
            role="roles/iam.serviceAccountTokenCreator",
            scope="service-account",
            resource=service_account_email(target, invoker),
            why="sign the push requests to the functions as the trigger identity (needed in projects "
            "whose Pub/Sub agent predates April 2021; scoped to that one account)",
        ),
    ]
    for fn in functions(target):
        out.append(
            Grant(
                principal="pubsub-agent",
                role="roles/pubsub.publisher",
                scope="topic",
                resource=dead_letter_topic(fn),
                why=f"move a message {fn.name} failed 5 times to its dead-letter topic",
            )
        )
        out.append(
            Grant(
                principal="pubsub-agent",
                role="roles/pubsub.subscriber",
                scope="subscription",
                resource=fn.key,
                why=f"acknowledge the dead-lettered message on {fn.name}'s trigger subscription",
            )
        )
    if target.notify_url:
        out.append(
            Grant(
                principal="pubsub-agent",
                role="roles/iam.serviceAccountTokenCreator",
                scope="service-account",
                resource=service_account_email(target, NOTIFIER),
                why="sign each job end notice pushed to --notify-url with an OIDC token of that account (needed "
                "in projects whose Pub/Sub agent predates April 2021; scoped to that one account)",
            )
        )
    if cfg.tuning_service_account:
        out += [
            *[
                Grant(
                    principal=creator,
                    role="roles/iam.serviceAccountUser",
                    scope="service-account",
                    resource=cfg.tuning_service_account,
                    why="start tuning jobs that run as the tuning service account (actAs), on that account only",
                )
                for creator in (submit, status)
            ],
            Grant(
                principal=TUNING_ACCOUNT,
                role="roles/storage.objectViewer",
                scope="bucket",
                resource=bucket,
                why="the tuning job, running as this account, reads the training and validation files",
            ),
            *[
                Grant(
                    principal=TUNING_ACCOUNT,
                    role="roles/storage.objectViewer",
                    scope="bucket",
                    resource=m,
                    why="the tuning job reads referenced media",
                )
                for m in media
            ],
        ]
    return out


def roles_markdown(target: DeployTarget) -> str:
    """The table of roles in docs/deploy.md."""
    rows = ["| Who | Role | On | Why |", "|---|---|---|---|"]
    for grant in grants(target):
        on = {
            "project": "the project",
            "bucket": f"bucket `{grant.resource}`",
            "topic": f"topic `{grant.resource}`",
            "subscription": f"the trigger subscription of `{PREFIX}-{grant.resource}`",
            "service-account": f"service account `{grant.resource}`",
            "run-service": f"service `{grant.resource}`",
        }[grant.scope]
        if grant.condition:
            on += f" (condition: `{grant.condition.expression}`)"
        rows.append(
            f"| {describe_principal(grant.principal, target)} | `{grant.role}` | {on} | {grant.why} |"
        )
    return "\n".join(rows) + "\n"
