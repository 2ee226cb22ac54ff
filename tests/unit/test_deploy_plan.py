"""The Google Cloud deployment plan: shape, least privilege, idempotency, docs that match it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from autotune.cli import app
from autotune.config import PipelineConfig, load_config_file
from autotune.job_end_notice import job_end_filter
from autotune_gcp import deployment as d
from autotune_gcp import roles, staging
from autotune_gcp.commands import REFERENCE, Step, render_script, render_step, substitute
from autotune_gcp.deployment import TargetError, make_target
from autotune_gcp.plan import PlanConflict, deploy_plan, destroy_plan, env_vars_flag
from autotune_gcp.state import NOTHING, CommandResult, InspectionError, observe

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "gcp_deployed_state.json"
DIGESTS = {
    "validate": "0123456789abcdef",
    "submit": "1123456789abcdef",
    "status": "2123456789abcdef",
}
FUNCTIONS = ("validate", "submit", "status")

# The roles each identity may hold, written from the issue rather than from roles.py, so the
# plan is checked against the requirement and not against itself. status creates tuning jobs
# when it promotes a queued dataset (autotune.jobs.tick.status_tick), hence aiplatform.user.
ALLOWED_ROLES = {
    "autotune-validate": {
        "roles/storage.objectViewer",
        "roles/storage.objectUser",
        "roles/pubsub.publisher",
    },
    # submit re-checks each request against the bucket's report and pinned copies (read only)
    "autotune-submit": {
        "roles/aiplatform.user",
        "roles/iam.serviceAccountUser",
        "roles/datastore.user",
        "roles/pubsub.publisher",
        "roles/storage.objectViewer",
    },
    # status reconciles lost uploads with validate's code, so it also holds validate's storage roles
    "autotune-status": {
        "roles/aiplatform.user",
        "roles/iam.serviceAccountUser",
        "roles/datastore.user",
        "roles/pubsub.publisher",
        "roles/storage.objectViewer",
        "roles/storage.objectUser",
    },
    "autotune-invoker": {"roles/eventarc.eventReceiver", "roles/run.invoker"},
    # --notify-url: its OIDC token only names the account, which needs no access to anything
    "autotune-notifier": set(),
    "gcp-sa-aiplatform": {"roles/storage.objectViewer"},
    "gcp-sa-pubsub": {
        "roles/pubsub.publisher",
        "roles/pubsub.subscriber",
        "roles/iam.serviceAccountTokenCreator",
    },
    "gs-project-accounts": {"roles/pubsub.publisher"},
    "tuning": {"roles/storage.objectViewer"},
}


def sample_target(**overrides) -> d.DeployTarget:
    config = overrides.pop("config", PipelineConfig())
    return make_target(
        project="sample-project",
        region="us-central1",
        bucket=overrides.pop("bucket", None),
        config=config,
        source_digests=DIGESTS,
        **overrides,
    )


def recorded_run():
    outputs = json.loads(FIXTURE.read_text())["outputs"]
    asked: list[str] = []

    def run(argv):
        line = " ".join(argv)
        asked.append(line)
        if line in outputs:
            return CommandResult(0, json.dumps(outputs[line]), "")
        return CommandResult(1, "", f"ERROR: (gcloud) NOT_FOUND: {line}")

    return run, asked


def deployed_state():
    run, _ = recorded_run()
    return observe(sample_target(), run)


def flag_values(argv, flag):
    return [a.split("=", 1)[1] for a in argv if a.startswith(f"{flag}=")]


def principal_of(member: str) -> str:
    email = member.removeprefix("serviceAccount:")
    local, _, domain = email.partition("@")
    if domain.endswith(".iam.gserviceaccount.com") and domain.startswith("gcp-sa-"):
        return domain.split(".")[0]
    if domain == "gs-project-accounts.iam.gserviceaccount.com":
        return "gs-project-accounts"
    if local.startswith("autotune-"):
        return local
    return "tuning"


# --- the plan from scratch (what --dry-run prints) -------------------------------------------


def test_every_function_is_deployed_gen2_python312_with_a_trigger_and_retries():
    steps = deploy_plan(sample_target())
    deploys = {s.argv[3]: s.argv for s in steps if s.argv[:3] == ("gcloud", "functions", "deploy")}
    assert set(deploys) == {f"autotune-{f}" for f in FUNCTIONS}
    for name, argv in deploys.items():
        assert "--gen2" in argv and "--runtime=python312" in argv and "--retry" in argv
        triggers = [
            a for a in argv if a.startswith(("--trigger-topic=", "--trigger-event-filters="))
        ]
        assert triggers, f"{name} has no trigger"
        assert flag_values(argv, "--service-account") == [
            f"{name}@sample-project.iam.gserviceaccount.com"
        ]
        assert flag_values(argv, "--trigger-service-account") == [
            "autotune-invoker@sample-project.iam.gserviceaccount.com"
        ]
    assert flag_values(deploys["autotune-submit"], "--trigger-topic") == ["tuning-requests"]
    assert flag_values(deploys["autotune-status"], "--trigger-topic") == ["status-ticks"]
    assert flag_values(deploys["autotune-validate"], "--trigger-event-filters") == [
        "type=google.cloud.storage.object.v1.finalized",
        "bucket=sample-project-autotune",
    ]


def test_sizing_values_are_in_the_formats_the_service_accepts():
    # gcloud checks these only after credentials, so the offline CLI test cannot: check here.
    for fn in d.functions(sample_target()):
        assert re.fullmatch(r"[0-9]+(Mi|Gi)", fn.memory)
        assert fn.cpu is None or re.fullmatch(r"[0-9]+(\.[0-9]+)?", fn.cpu)
        assert 1 <= fn.timeout_seconds <= 540  # the limit for event-driven functions
        assert fn.max_instances >= 1 and fn.concurrency == 1
    status = next(fn for fn in d.functions(sample_target()) if fn.key == "status")
    assert status.max_instances == 1


def test_every_trigger_subscription_gets_a_dead_letter_topic_that_keeps_its_messages():
    steps = deploy_plan(sample_target())
    created_topics = {
        s.argv[4] for s in steps if s.argv[:4] == ("gcloud", "pubsub", "topics", "create")
    }
    held = {
        flag_values(s.argv, "--topic")[0]
        for s in steps
        if s.argv[:4] == ("gcloud", "pubsub", "subscriptions", "create")
    }
    updates = {
        s.argv[4]: s.argv
        for s in steps
        if s.argv[:4] == ("gcloud", "pubsub", "subscriptions", "update")
    }
    for fn in FUNCTIONS:
        subscription = f"${{{fn.upper()}_SUBSCRIPTION}}"
        dead_letter = f"autotune-{fn}-dead-letter"
        assert updates[subscription][5:] == (
            f"--dead-letter-topic=projects/sample-project/topics/{dead_letter}",
            "--max-delivery-attempts=5",
        )
        assert dead_letter in created_topics and dead_letter in held
    pubsub_agent = "serviceAccount:service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com"
    grants = {
        (s.argv[2], s.argv[4], flag_values(s.argv, "--role")[0])
        for s in steps
        if s.argv[3:4] == ("add-iam-policy-binding",) and f"--member={pubsub_agent}" in s.argv
    }
    for fn in FUNCTIONS:
        assert ("topics", f"autotune-{fn}-dead-letter", "roles/pubsub.publisher") in grants
        assert (
            "subscriptions",
            f"${{{fn.upper()}_SUBSCRIPTION}}",
            "roles/pubsub.subscriber",
        ) in grants


def test_topics_come_from_the_config():
    config = msgspec.structs.replace(
        PipelineConfig(), requests_topic="req-x", events_topic="ev-x", ticks_topic="tick-x"
    )
    steps = deploy_plan(sample_target(config=config))
    created = {s.argv[4] for s in steps if s.argv[:4] == ("gcloud", "pubsub", "topics", "create")}
    assert {"req-x", "ev-x", "tick-x"} <= created and "tuning-requests" not in created


@pytest.mark.parametrize("tuning_sa", ["", "tuner-sa@other-project.iam.gserviceaccount.com"])
def test_no_identity_holds_a_role_outside_its_list(tuning_sa):
    config = msgspec.structs.replace(
        PipelineConfig(),
        allowed_media_buckets=("media-a", "media-b"),
        tuning_service_account=tuning_sa,
    )
    steps = deploy_plan(
        sample_target(config=config, notify_url="https://hooks.example.com/autotune")
    )
    held: dict[str, set[str]] = {}
    for step in steps:
        if "add-iam-policy-binding" in step.argv:
            member, role = (
                flag_values(step.argv, "--member")[0],
                flag_values(step.argv, "--role")[0],
            )
            held.setdefault(principal_of(member), set()).add(role)
    for principal, granted in held.items():
        assert granted <= ALLOWED_ROLES[principal], (
            f"{principal} holds {granted - ALLOWED_ROLES[principal]}"
        )
    assert "roles/aiplatform.user" not in held["autotune-validate"] | held["autotune-invoker"]
    assert ("roles/iam.serviceAccountUser" in held["autotune-submit"]) == bool(tuning_sa)


def test_no_basic_roles_and_report_writing_is_confined_to_the_reports_prefix():
    steps = deploy_plan(sample_target())
    roles_granted = {r for s in steps for r in flag_values(s.argv, "--role")}
    assert not roles_granted & {
        "roles/owner",
        "roles/editor",
        "roles/viewer",
        "roles/storage.admin",
        "roles/storage.objectAdmin",
    }
    writers = [s for s in steps if "--role=roles/storage.objectUser" in s.argv]
    assert sorted(principal_of(flag_values(w.argv, "--member")[0]) for w in writers) == [
        "autotune-status",
        "autotune-validate",
    ]
    for writer in writers:
        assert flag_values(writer.argv, "--condition") == [
            'expression=resource.name.startsWith("projects/_/buckets/sample-project-autotune/objects/reports/"),'
            "title=autotune-reports-only"
        ]


def test_the_vertex_ai_agent_reads_the_bucket_and_the_project_number_is_looked_up_first():
    steps = deploy_plan(sample_target())
    assert steps[0].capture == "PROJECT_NUMBER"
    assert steps[0].argv[:4] == ("gcloud", "projects", "describe", "sample-project")
    vertex = [
        s
        for s in steps
        if "--member=serviceAccount:service-${PROJECT_NUMBER}@gcp-sa-aiplatform.iam.gserviceaccount.com"
        in s.argv
    ]
    assert [(s.argv[1:4], flag_values(s.argv, "--role")) for s in vertex] == [
        (("storage", "buckets", "add-iam-policy-binding"), ["roles/storage.objectViewer"])
    ]


def test_every_reference_is_captured_by_an_earlier_step_and_every_capture_is_used():
    steps = deploy_plan(sample_target())
    captured: set[str] = set()
    for step in steps:
        assert step.references() <= captured, render_step(step)
        if step.capture:
            captured.add(step.capture)
    used = {name for s in steps for name in s.references()}
    assert captured == used


def test_bucket_scheduler_and_firestore_are_created_as_required():
    steps = deploy_plan(sample_target())
    bucket = next(s for s in steps if s.argv[:4] == ("gcloud", "storage", "buckets", "create"))
    assert (
        "--uniform-bucket-level-access" in bucket.argv
        and "--public-access-prevention" in bucket.argv
    )
    database = next(
        s for s in steps if s.argv[:4] == ("gcloud", "firestore", "databases", "create")
    )
    assert "--type=firestore-native" in database.argv
    job = next(s for s in steps if s.argv[:4] == ("gcloud", "scheduler", "jobs", "create"))
    assert flag_values(job.argv, "--topic") == ["projects/sample-project/topics/status-ticks"]
    assert flag_values(job.argv, "--schedule") == ["*/5 * * * *"]


def test_functions_get_the_configuration_as_environment_variables():
    config = msgspec.structs.replace(
        PipelineConfig(), allowed_media_buckets=("media-a", "media-b"), max_concurrent_jobs=4
    )
    target = sample_target(config=config)
    deploys = [s for s in deploy_plan(target) if s.argv[:3] == ("gcloud", "functions", "deploy")]
    for step in deploys:
        (flag,) = flag_values(step.argv, "--set-env-vars")
        env = parse_env_flag(flag)
        assert env == target.config.to_env()
        assert env["AUTOTUNE_ALLOWED_MEDIA_BUCKETS"] == "media-a,media-b"
        assert (
            env["AUTOTUNE_PROJECT"] == "sample-project"
            and env["AUTOTUNE_BUCKET"] == "sample-project-autotune"
        )
        assert env["AUTOTUNE_VERTEX_ENDPOINT"] == ""


def parse_env_flag(flag: str) -> dict[str, str]:
    # gcloud's list syntax: KEY=VALUE,... or ^D^KEY=VALUE D KEY=VALUE (gcloud topic escaping)
    delimiter = ","
    if flag.startswith("^"):
        delimiter, flag = flag[1], flag[3:]
    return dict(pair.split("=", 1) for pair in flag.split(delimiter))


def test_env_flag_switches_delimiter_only_when_a_value_holds_a_comma():
    assert env_vars_flag({"A": "1", "B": "x"}) == "A=1,B=x"
    assert env_vars_flag({"A": "x,y", "B": "z"}) == "^@^A=x,y@B=z"
    assert env_vars_flag({"A": "x,y@", "B": "z"}) == "^|^A=x,y@|B=z"


def test_the_printed_plan_is_valid_shell_that_gives_back_each_command():
    steps = deploy_plan(sample_target())
    script = render_script(steps)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    for step in steps:
        if not step.references() and not step.capture:
            assert tuple(shlex.split(render_step(step))) == step.argv


def test_rendering_refuses_an_argument_that_would_expand_differently():
    with pytest.raises(ValueError, match="shell-special"):
        render_step(Step(argv=("echo", '${X}"$(rm)'), why="x"))
    assert substitute(("a=${X}", "b"), {"X": "1"}) == ("a=1", "b")
    with pytest.raises(KeyError, match="X"):
        substitute(("${X}",), {})


# --- idempotency --------------------------------------------------------------------------------


def test_inspection_reads_the_recorded_project():
    state = deployed_state()
    assert state.project_number == "123456789012"
    assert (
        state.bucket
        and state.bucket.uniform_access
        and state.bucket.public_access_prevention == "enforced"
    )
    assert state.firestore_type == "FIRESTORE_NATIVE"
    assert set(state.functions) == {f"autotune-{f}" for f in FUNCTIONS}
    assert all(f.trigger_subscription for f in state.functions.values())


def test_a_second_deploy_against_the_deployed_project_has_nothing_to_do():
    assert deploy_plan(sample_target(), deployed_state()) == []


def test_cli_says_nothing_to_change(monkeypatch, tmp_path):
    from autotune_gcp import runner

    run, _ = recorded_run()
    monkeypatch.setattr(runner, "run_gcloud", run)
    monkeypatch.setattr(runner, "require_gcloud", lambda: "gcloud")
    monkeypatch.setattr(staging, "source_digest", lambda key: DIGESTS[key])
    monkeypatch.setattr("autotune.config.load_config_file", lambda path=None: PipelineConfig())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["deploy", "--project", "sample-project", "--region", "us-central1", "--no-smoke"]
    )
    assert result.exit_code == 0, result.output
    assert "nothing to change" in result.output


def test_deploy_ends_with_the_smoke_test_and_fails_when_it_does(monkeypatch, tmp_path):
    from autotune.cli import smoke
    from autotune_gcp import runner

    run, _ = recorded_run()
    monkeypatch.setattr(runner, "run_gcloud", run)
    monkeypatch.setattr(runner, "require_gcloud", lambda: "gcloud")
    monkeypatch.setattr(staging, "source_digest", lambda key: DIGESTS[key])
    monkeypatch.setattr("autotune.config.load_config_file", lambda path=None: PipelineConfig())
    checked = []
    monkeypatch.setattr(
        smoke,
        "google_cloud_clients",
        lambda project, bucket, config: (
            "storage",
            "subscriber",
            {"project": project, "bucket": bucket},
        ),
    )

    def run_and_report(storage, subscriber, names, timeout):
        checked.append(names)
        return False

    monkeypatch.setattr(smoke, "run_and_report", run_and_report)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["deploy", "--project", "sample-project", "--region", "us-central1"]
    )
    assert checked == [{"project": "sample-project", "bucket": "sample-project-autotune"}]
    assert result.exit_code == 1


def test_only_what_drifted_is_planned():
    state = deployed_state()
    drifted = msgspec.structs.replace(
        state,
        bucket=msgspec.structs.replace(state.bucket, uniform_access=False),
        scheduler_job=msgspec.structs.replace(state.scheduler_job, schedule="0 * * * *"),
        topics=state.topics - {"tuning-events"},
    )
    steps = deploy_plan(sample_target(), drifted)
    kinds = [s.argv[1:4] for s in steps]
    assert ("storage", "buckets", "update") in kinds
    assert ("scheduler", "jobs", "update") in kinds
    assert ("pubsub", "topics", "create") in kinds
    assert not any(s.argv[:3] == ("gcloud", "functions", "deploy") for s in steps)
    # the topic's grants were lost with it (the recorded policy still names them, but the
    # topic being absent is what the plan sees first): recreate only the topic here
    assert len(steps) == 3


def test_new_source_redeploys_only_that_function_and_reattaches_its_dead_letter_policy():
    target = msgspec.structs.replace(
        sample_target(), source_digests={**DIGESTS, "submit": "ffffffffffffffff"}
    )
    steps = deploy_plan(target, deployed_state())
    assert [s.argv[3] for s in steps if s.argv[:3] == ("gcloud", "functions", "deploy")] == [
        "autotune-submit"
    ]
    assert [s.capture for s in steps if s.capture] == ["SUBMIT_TRIGGER", "SUBMIT_SUBSCRIPTION"]
    assert any(s.argv[:4] == ("gcloud", "pubsub", "subscriptions", "update") for s in steps)
    assert all("${PROJECT_NUMBER}" not in " ".join(s.argv) for s in steps)  # known from the state


def test_a_missing_grant_is_the_only_step():
    state = deployed_state()
    member = "serviceAccount:autotune-status@sample-project.iam.gserviceaccount.com"
    lost = frozenset(
        b for b in state.bindings if not (b.member == member and b.role == "roles/datastore.user")
    )
    steps = deploy_plan(sample_target(), msgspec.structs.replace(state, bindings=lost))
    assert [s.argv[:3] for s in steps] == [("gcloud", "projects", "add-iam-policy-binding")]
    assert f"--member={member}" in steps[0].argv


def test_a_datastore_mode_database_is_a_clear_conflict():
    state = msgspec.structs.replace(deployed_state(), firestore_type="DATASTORE_MODE")
    with pytest.raises(PlanConflict, match="Datastore|DATASTORE_MODE"):
        deploy_plan(sample_target(), state)


def test_an_unreadable_project_stops_inspection_with_gclouds_message():
    def run(argv):
        return CommandResult(
            1, "", "ERROR: (gcloud.projects.describe) PERMISSION_DENIED: no access"
        )

    with pytest.raises(InspectionError, match="PERMISSION_DENIED"):
        observe(sample_target(), run)


def test_an_existing_bucket_elsewhere_moves_the_storage_trigger_to_its_location():
    state = msgspec.structs.replace(deployed_state(), bucket=d_bucket("us"), functions={})
    steps = deploy_plan(sample_target(), state)
    validate = next(
        s for s in steps if s.argv[:4] == ("gcloud", "functions", "deploy", "autotune-validate")
    )
    assert flag_values(validate.argv, "--trigger-location") == ["us"]


def d_bucket(location):
    from autotune_gcp.state import BucketState

    return BucketState(location=location, uniform_access=True, public_access_prevention="enforced")


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("--project", {"project": "Bad_Project"}),
        ("--region", {"region": "mars"}),
        ("--bucket", {"bucket": "Bad Bucket"}),
        ("--bucket", {"bucket": "google-data"}),
    ],
)
def test_bad_targets_are_named(field, kwargs):
    args = {
        "project": "sample-project",
        "region": "us-central1",
        "bucket": None,
        "config": PipelineConfig(),
        **kwargs,
    }
    with pytest.raises(TargetError, match=re.escape(field)):
        make_target(**args)


def test_cli_reports_a_bad_option_without_a_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["deploy", "--project", "X", "--region", "us-central1", "--dry-run"]
    )
    assert result.exit_code == 2
    assert "--project 'X'" in result.output and "Traceback" not in result.output


# --- --notify-url: job end notices pushed to a person's URL --------------------------------------

NOTIFY_URL = "https://hooks.example.com/autotune?team=ml&kind=job-end"
NOTIFIER = "autotune-notifier@sample-project.iam.gserviceaccount.com"
NOTIFY_PATH = "projects/sample-project/subscriptions/autotune-notify"
PUBSUB_AGENT = "serviceAccount:service-123456789012@gcp-sa-pubsub.iam.gserviceaccount.com"


def notify_subscription_json(**changes) -> dict:
    """`gcloud pubsub subscriptions list` as it shows the subscription deploy made."""
    raw = {
        "name": NOTIFY_PATH,
        "topic": "projects/sample-project/topics/tuning-events",
        "ackDeadlineSeconds": 60,
        "filter": job_end_filter(),
        "pushConfig": {
            "pushEndpoint": NOTIFY_URL,
            "oidcToken": {"serviceAccountEmail": NOTIFIER, "audience": NOTIFY_URL},
        },
        "state": "ACTIVE",
    }
    raw.update(changes)
    return raw


def recorded_run_with_notify(subscription: dict | None = None):
    """The deployed project after `deploy --notify-url`, read through the same gcloud commands."""
    outputs = json.loads(FIXTURE.read_text())["outputs"]
    p = "--project=sample-project --format=json"
    outputs[f"gcloud pubsub subscriptions list {p}"].append(
        subscription or notify_subscription_json()
    )
    outputs[f"gcloud iam service-accounts list {p}"].append(
        {"email": NOTIFIER, "name": f"projects/sample-project/serviceAccounts/{NOTIFIER}"}
    )
    outputs[f"gcloud iam service-accounts get-iam-policy {NOTIFIER} {p}"] = {
        "bindings": [{"role": "roles/iam.serviceAccountTokenCreator", "members": [PUBSUB_AGENT]}]
    }

    def run(argv):
        line = " ".join(argv)
        if line in outputs:
            return CommandResult(0, json.dumps(outputs[line]), "")
        return CommandResult(1, "", f"ERROR: (gcloud) NOT_FOUND: {line}")

    return run


def notify_state(subscription: dict | None = None):
    return observe(sample_target(notify_url=NOTIFY_URL), recorded_run_with_notify(subscription))


def test_without_notify_url_nothing_pushes_anywhere():
    steps = deploy_plan(sample_target())
    assert not any("--push-endpoint" in arg for s in steps for arg in s.argv)
    assert not any("autotune-notifier" in arg for s in steps for arg in s.argv)


def test_notify_url_adds_a_filtered_push_subscription_signed_as_an_account_of_its_own():
    steps = deploy_plan(sample_target(notify_url=NOTIFY_URL))
    [create] = [
        s
        for s in steps
        if s.argv[:4] == ("gcloud", "pubsub", "subscriptions", "create")
        and s.argv[4] == "autotune-notify"
    ]
    assert flag_values(create.argv, "--topic") == ["tuning-events"]
    assert flag_values(create.argv, "--push-endpoint") == [NOTIFY_URL]
    assert flag_values(create.argv, "--push-auth-service-account") == [NOTIFIER]
    assert flag_values(create.argv, "--push-auth-token-audience") == [NOTIFY_URL]
    assert flag_values(create.argv, "--message-filter") == [
        'attributes.ce-type = "autotune.job.v1.succeeded" OR attributes.ce-type = "autotune.job.v1.failed" '
        'OR attributes.ce-type = "autotune.job.v1.cancelled"'
    ]
    argvs = [s.argv for s in steps]
    account = argvs.index(
        (
            "gcloud",
            "iam",
            "service-accounts",
            "create",
            "autotune-notifier",
            f"--display-name={d.NOTIFIER_DESCRIPTION}",
            "--project=sample-project",
        )
    )
    token = argvs.index(
        (
            "gcloud",
            "iam",
            "service-accounts",
            "add-iam-policy-binding",
            NOTIFIER,
            "--member=serviceAccount:service-${PROJECT_NUMBER}@gcp-sa-pubsub.iam.gserviceaccount.com",
            "--role=roles/iam.serviceAccountTokenCreator",
            "--project=sample-project",
        )
    )
    assert account < token < argvs.index(create.argv)
    # no role for the notifier itself: the token names it, it reaches nothing
    assert not any(f"--member=serviceAccount:{NOTIFIER}" in s.argv for s in steps)
    # the URL's "?" and "&" survive the printed plan
    assert shlex.split(render_step(create)) == list(create.argv)


def test_a_second_deploy_with_notify_url_has_nothing_to_do():
    state = notify_state()
    assert state.subscriptions[NOTIFY_PATH].push_service_account == NOTIFIER
    assert deploy_plan(sample_target(notify_url=NOTIFY_URL), state) == []


def test_redeploy_without_notify_url_leaves_the_subscription_alone():
    assert deploy_plan(sample_target(), notify_state()) == []


def test_a_new_notify_url_updates_the_push_endpoint_in_place():
    other = "https://other.example.com/hook"
    steps = deploy_plan(sample_target(notify_url=other), notify_state())
    assert [s.argv for s in steps] == [
        (
            "gcloud",
            "pubsub",
            "subscriptions",
            "update",
            "autotune-notify",
            f"--push-endpoint={other}",
            f"--push-auth-service-account={NOTIFIER}",
            f"--push-auth-token-audience={other}",
            "--project=sample-project",
        )
    ]


@pytest.mark.parametrize(
    "change",
    [
        {"filter": ""},
        {"filter": 'attributes.ce-type = "autotune.job.v1.succeeded"'},
        {"topic": "projects/sample-project/topics/elsewhere"},
    ],
)
def test_a_subscription_with_another_filter_or_topic_is_made_again(change):
    steps = deploy_plan(
        sample_target(notify_url=NOTIFY_URL), notify_state(notify_subscription_json(**change))
    )
    assert [s.argv[:5] for s in steps] == [
        ("gcloud", "pubsub", "subscriptions", "delete", "autotune-notify"),
        ("gcloud", "pubsub", "subscriptions", "create", "autotune-notify"),
    ]


def test_an_unsigned_push_subscription_gets_its_token_back():
    unsigned = notify_subscription_json(pushConfig={"pushEndpoint": NOTIFY_URL})
    steps = deploy_plan(sample_target(notify_url=NOTIFY_URL), notify_state(unsigned))
    assert [s.argv[3] for s in steps] == ["update"]
    assert flag_values(steps[0].argv, "--push-auth-service-account") == [NOTIFIER]


def test_a_missing_token_creator_grant_on_the_notifier_is_the_only_change():
    state = notify_state()
    without = frozenset(b for b in state.bindings if b.resource != NOTIFIER)
    steps = deploy_plan(
        sample_target(notify_url=NOTIFY_URL), msgspec.structs.replace(state, bindings=without)
    )
    # making sure the Pub/Sub agent exists precedes any grant to it
    assert [s.argv[:5] for s in steps] == [
        ("gcloud", "beta", "services", "identity", "create"),
        ("gcloud", "iam", "service-accounts", "add-iam-policy-binding", NOTIFIER),
    ]
    assert f"--member={PUBSUB_AGENT}" in steps[1].argv


@pytest.mark.parametrize(
    "url",
    [
        "",  # given, but empty: not the same as not asking
        "http://hooks.example.com/autotune",  # Google Cloud pushes to https only
        "hooks.example.com/autotune",
        "https:///autotune",
        "https://hooks.example.com/a b",
        "https://hooks.example.com/${PROJECT_NUMBER}",  # would be read as a plan variable
    ],
)
def test_a_notify_url_google_cannot_push_to_is_named(url):
    with pytest.raises(TargetError, match="--notify-url"):
        sample_target(notify_url=url)


def test_cli_deploy_dry_run_with_notify_url_prints_the_subscription(monkeypatch, tmp_path):
    monkeypatch.setattr(staging, "source_digest", lambda key: DIGESTS[key])
    monkeypatch.setattr("autotune.config.load_config_file", lambda path=None: PipelineConfig())
    monkeypatch.chdir(tmp_path)
    base = ["deploy", "--project", "sample-project", "--region", "us-central1", "--dry-run"]
    result = CliRunner().invoke(app, [*base, "--notify-url", NOTIFY_URL])
    assert result.exit_code == 0, result.output
    assert "gcloud pubsub subscriptions create autotune-notify" in result.output
    refused = CliRunner().invoke(app, [*base, "--notify-url", "http://hooks.example.com/x"])
    assert refused.exit_code == 2
    assert "--notify-url" in refused.output and "https" in refused.output
    assert "Traceback" not in refused.output


def test_destroy_removes_the_notify_subscription_and_its_account():
    steps = destroy_plan(sample_target(), notify_state())
    argvs = [s.argv for s in steps]
    delete_subscription = (
        "gcloud",
        "pubsub",
        "subscriptions",
        "delete",
        "autotune-notify",
        "--project=sample-project",
        "--quiet",
    )
    assert delete_subscription in argvs
    assert argvs.index(delete_subscription) < argvs.index(
        (
            "gcloud",
            "pubsub",
            "topics",
            "delete",
            "tuning-events",
            "--project=sample-project",
            "--quiet",
        )
    )
    assert (
        "gcloud",
        "iam",
        "service-accounts",
        "delete",
        NOTIFIER,
        "--project=sample-project",
        "--quiet",
    ) in argvs
    # not made, not removed
    assert not any(
        "autotune-notif" in arg
        for s in destroy_plan(sample_target(), deployed_state())
        for arg in s.argv
    )
    assert not any("autotune-notif" in arg for s in destroy_plan(sample_target()) for arg in s.argv)
    assert (
        sum(
            "autotune-notif" in " ".join(s.argv)
            for s in destroy_plan(sample_target(notify_url=NOTIFY_URL))
        )
        == 2
    )


# --- destroy -------------------------------------------------------------------------------------


def test_destroy_marks_data_and_can_keep_it():
    steps = destroy_plan(sample_target())
    data = [s for s in steps if s.deletes_data]
    assert [s.argv[1:3] for s in data] == [("firestore", "bulk-delete"), ("storage", "rm")]
    assert not any(s.deletes_data for s in destroy_plan(sample_target(), keep_data=True))
    deleted = {s.argv[1:4] for s in steps}
    assert ("functions", "delete", "autotune-validate") in deleted
    # the ledger collection, never the project's shared default database
    assert not any(s.argv[1:4] == ("firestore", "databases", "delete") for s in steps)


def test_destroy_against_an_empty_project_has_nothing_to_do():
    empty = msgspec.structs.replace(NOTHING, project_number="123456789012")
    assert destroy_plan(sample_target(), empty) == []


def test_destroy_against_the_deployed_project_removes_every_function_and_identity():
    steps = destroy_plan(sample_target(), deployed_state())
    text = render_script(steps)
    for fn in FUNCTIONS:
        assert f"gcloud functions delete autotune-{fn}" in text
    for account in d.SERVICE_ACCOUNTS:
        assert f"gcloud iam service-accounts delete {account}@" in text
    assert "${" not in text  # everything known from the state


def test_destroy_without_yes_and_without_a_terminal_keeps_data(monkeypatch, tmp_path):
    from autotune_gcp import runner

    run, _ = recorded_run()
    ran: list[tuple[str, ...]] = []
    monkeypatch.setattr(runner, "run_gcloud", run)
    monkeypatch.setattr(runner, "require_gcloud", lambda: "gcloud")
    monkeypatch.setattr(runner, "execute", lambda steps, echo: ran.extend(s.argv for s in steps))
    monkeypatch.setattr("autotune.config.load_config_file", lambda path=None: PipelineConfig())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["destroy", "--project", "sample-project", "--region", "us-central1"], input=""
    )
    assert result.exit_code == 0, result.output
    assert ran and not any(a[1:3] in {("storage", "rm"), ("firestore", "bulk-delete")} for a in ran)
    assert "kept:" in result.output


# --- function sources and their dependencies ------------------------------------------------------


def pinned(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path.relative_to(ROOT)}: {line!r} is not pinned with =="
            out[staging.normalise(name)] = version
    return out


def project_pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {staging.normalise(dep.split("==")[0]): dep.split("==")[1] for dep in deps}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_requirements_are_exactly_what_the_function_imports_pinned_as_in_pyproject(function):
    requirements = pinned(ROOT / "functions" / function / "requirements.txt")
    imported = staging.imported_distributions(function)
    installed = staging.installed_with(set(requirements))
    missing = {dist: mods for dist, mods in imported.items() if dist not in installed}
    assert not missing, (
        f"functions/{function} imports {missing} but requirements.txt does not install it"
    )
    unused = set(requirements) - set(imported)
    assert not unused, (
        f"functions/{function}/requirements.txt installs {unused}, which the function never imports"
    )
    pins = project_pins()
    for name, version in requirements.items():
        assert pins.get(name) == version, (
            f"{name}=={version} differs from pyproject.toml ({pins.get(name)})"
        )


def test_validate_installs_and_imports_neither_vertex_ai_nor_firestore():
    requirements = pinned(ROOT / "functions" / "validate" / "requirements.txt")
    assert not {"google-cloud-aiplatform", "google-cloud-firestore"} & set(requirements)
    assert not {"google-cloud-aiplatform", "google-cloud-firestore"} & set(
        staging.imported_distributions("validate")
    )


def test_the_import_scan_follows_autotune_modules_and_lazy_imports():
    modules = staging.imported_modules("submit")
    assert "autotune.jobs.submit" in modules
    assert any(
        m.startswith("google.cloud.aiplatform") for m in modules
    )  # imported inside a function


def test_staging_writes_what_the_digest_covers(tmp_path):
    staged = staging.stage("validate", tmp_path)
    files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
    assert {
        "main.py",
        "requirements.txt",
        ".gcloudignore",
        "autotune/__init__.py",
        "autotune/config.py",
    } <= set(files)
    assert not any(f.startswith("autotune/cli/") or "__pycache__" in f for f in files)
    expected = {rel for rel, _ in staging.source_files("validate")} | {".gcloudignore"}
    assert set(files) == expected
    assert staging.source_digest("validate") == staging.source_digest("validate")
    for module in staging.imported_modules("validate"):
        if module.startswith("autotune"):
            parts = module.split(".")
            assert (staged / Path(*parts)).with_suffix(".py").exists() or (
                staged / Path(*parts) / "__init__.py"
            ).exists()


# --- docs/deploy.md shows the real plan and the real roles ----------------------------------------


DEPLOY_DOC = ROOT / "docs" / "deploy.md"


def readme_block(name: str) -> str:
    text = DEPLOY_DOC.read_text()
    match = re.search(
        rf"<!-- {name}:begin -->\n```[a-z]*\n(.*?)```\n<!-- {name}:end -->", text, re.S
    )
    assert match, f"docs/deploy.md has no {name} block"
    return match.group(1)


def mask_digests(text: str) -> str:
    return re.sub(r"autotune-source=[0-9a-f]{16}", "autotune-source=<digest>", text)


def test_readme_plan_is_the_commands_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app, ["deploy", "--project", "sample-project", "--region", "us-central1", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    # The source digests change with every code change; docs/deploy.md states they are examples.
    assert mask_digests(readme_block("deploy-plan")) == mask_digests(result.output), (
        "docs/deploy.md's plan is stale: regenerate it with `python -m autotune_gcp.readme`"
    )


def test_readme_roles_table_is_the_role_table():
    target = make_target(
        project="sample-project",
        region="us-central1",
        bucket=None,
        config=load_config_file(ROOT / "deploy" / "config.toml"),
    )
    text = DEPLOY_DOC.read_text()
    match = re.search(r"<!-- deploy-roles:begin -->\n(.*?)<!-- deploy-roles:end -->", text, re.S)
    assert match and match.group(1) == roles.roles_markdown(target), (
        "docs/deploy.md's roles table is stale: regenerate it with `python -m autotune_gcp.readme`"
    )


def test_references_in_the_plan_are_shell_variable_names():
    for step in deploy_plan(sample_target()):
        for arg in step.argv:
            for name in REFERENCE.findall(arg):
                assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name)


# --- the shell around the plan ----------------------------------------------------------------


def test_inspection_only_reads():
    run, asked = recorded_run()
    observe(
        sample_target(
            config=msgspec.structs.replace(
                PipelineConfig(),
                tuning_service_account="tuning-runner@other-project.iam.gserviceaccount.com",
            )
        ),
        run,
    )
    assert all(line.endswith("--format=json") for line in asked)
    for line in asked:
        words = line.split()
        assert {"describe", "list", "get-iam-policy"} & set(words), f"not a read: {line}"
    assert any("tuning-runner@other-project" in line for line in asked)


def test_runner_feeds_captured_values_to_later_steps(monkeypatch):
    from autotune_gcp import runner

    seen: list[list[str]] = []

    class Done:
        def __init__(self, returncode, stdout=""):
            self.returncode, self.stdout, self.stderr = returncode, stdout, ""

    def fake_run(argv, **kwargs):
        seen.append(list(argv))
        return Done(0, "987654321\n") if "describe" in argv else Done(0)

    monkeypatch.setattr(runner.subprocess, "run", fake_run)
    steps = [
        Step(argv=("gcloud", "projects", "describe", "p"), why="number", capture="PROJECT_NUMBER"),
        Step(argv=("gcloud", "x", "--member=service-${PROJECT_NUMBER}@a"), why="use it"),
    ]
    echoed: list[str] = []
    runner.execute(steps, echoed.append)
    assert seen[1] == ["gcloud", "x", "--member=service-987654321@a"]
    assert "service-987654321@a" in echoed[1]


def test_runner_names_the_failed_step(monkeypatch):
    from autotune_gcp import runner

    class Failed:
        returncode, stdout, stderr = 1, "", "boom"

    monkeypatch.setattr(runner.subprocess, "run", lambda argv, **kwargs: Failed())
    with pytest.raises(runner.DeployError, match=r"step 1 \(topic x\) failed with exit code 1"):
        runner.execute(
            [Step(argv=("gcloud", "pubsub", "topics", "create", "x"), why="topic x")],
            lambda _: None,
        )
    with pytest.raises(runner.DeployError, match="found nothing: boom"):
        runner.execute(
            [Step(argv=("gcloud", "projects", "describe", "p"), why="n", capture="N")],
            lambda _: None,
        )


def test_the_import_scan_catches_a_dependency_hidden_in_a_lazy_import(tmp_path, monkeypatch):
    function = tmp_path / "probe"
    function.mkdir()
    (function / "main.py").write_text(
        "from autotune.config import PipelineConfig\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import google.cloud.aiplatform_v1\n"
        "def handler():\n"
        "    from google.cloud import firestore\n"
        "    return firestore, PipelineConfig\n"
    )
    monkeypatch.setattr(staging, "FUNCTIONS_DIR", tmp_path)
    found = staging.imported_distributions("probe")
    assert "google-cloud-firestore" in found  # imported inside a function body
    assert "msgspec" in found  # through autotune.config
    assert "google-cloud-aiplatform" not in found  # type-checking only, never executed


def test_a_function_stored_without_its_empty_variables_is_still_current():
    state = deployed_state()
    trimmed = {
        name: msgspec.structs.replace(
            fn, environment={k: v for k, v in fn.environment.items() if v}
        )
        for name, fn in state.functions.items()
    }
    assert deploy_plan(sample_target(), msgspec.structs.replace(state, functions=trimmed)) == []
    changed = {
        name: msgspec.structs.replace(
            fn, environment={**fn.environment, "AUTOTUNE_DEFAULT_EPOCHS": "9"}
        )
        for name, fn in state.functions.items()
    }
    steps = deploy_plan(sample_target(), msgspec.structs.replace(state, functions=changed))
    assert len([s for s in steps if s.argv[:3] == ("gcloud", "functions", "deploy")]) == 3


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_staged_function_imports_from_its_own_directory(function, tmp_path):
    import sys

    staged = staging.stage(function, tmp_path)
    own = sorted(m for m in staging.imported_modules(function) if m.startswith("autotune"))
    code = (
        "import importlib, sys; sys.path.insert(0, '.'); import main, autotune\n"
        f"for name in {own!r}: importlib.import_module(name)\n"
        "print(autotune.__file__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=staged, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).resolve().is_relative_to(staged.resolve())


def test_a_new_project_is_read_without_touching_apis_it_has_not_enabled():
    asked: list[str] = []

    def run(argv):
        line = " ".join(argv)
        asked.append(line)
        argv = tuple(argv)
        if argv[1:3] == ("projects", "describe"):
            return CommandResult(
                0, json.dumps({"projectId": "sample-project", "projectNumber": "42"}), ""
            )
        if argv[1:3] == ("services", "list"):
            enabled = ["serviceusage.googleapis.com", "cloudresourcemanager.googleapis.com"]
            return CommandResult(
                0,
                json.dumps(
                    [{"config": {"name": n}, "name": f"projects/42/services/{n}"} for n in enabled]
                ),
                "",
            )
        if argv[1:3] == ("projects", "get-iam-policy"):
            return CommandResult(0, json.dumps({"bindings": [], "etag": "ACAB"}), "")
        return CommandResult(
            1,
            "",
            "ERROR: PERMISSION_DENIED: the API has not been used in project 42 or it is disabled",
        )

    state = observe(sample_target(), run)
    assert len(asked) == 3
    steps = deploy_plan(sample_target(), state)
    scratch = deploy_plan(sample_target())
    assert len(steps) == len(scratch) - 1  # all of it, but the project number is known
    assert "service-42@gcp-sa-pubsub.iam.gserviceaccount.com" in render_script(steps)
    enable = next(s for s in steps if s.argv[1:3] == ("services", "enable"))
    assert (
        "cloudresourcemanager.googleapis.com" not in enable.argv
        and "pubsub.googleapis.com" in enable.argv
    )
