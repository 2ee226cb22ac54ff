"""Refresh the generated parts of docs/deploy.md ("Deploy to Google Cloud"): the sample dry-run
plan and the roles table. Run from anywhere: `python -m autotune_gcp.readme`.

Only the text between the `<!-- deploy-apis|deploy-functions|deploy-plan|deploy-roles:begin -->`
and matching `:end -->` markers changes; tests/unit/test_deploy_plan.py fails when one is stale.
"""

from __future__ import annotations

import re

from autotune.config import load_config_file
from autotune_gcp.commands import render_script
from autotune_gcp.deployment import APIS, TopicTrigger, functions, make_target
from autotune_gcp.plan import deploy_plan
from autotune_gcp.roles import roles_markdown
from autotune_gcp.target import dry_run_header
from autotune_local.checkout import CONFIG_FILE, ROOT

SAMPLE = {"project": "sample-project", "region": "us-central1"}


def sample_plan() -> str:
    from autotune_gcp.target import prepare_target

    target = prepare_target(SAMPLE["project"], SAMPLE["region"], None, None)
    return dry_run_header(target, "deploy") + render_script(deploy_plan(target))


def sample_roles() -> str:
    target = make_target(
        project=SAMPLE["project"],
        region=SAMPLE["region"],
        bucket=None,
        config=load_config_file(CONFIG_FILE),
    )
    return roles_markdown(target)


def apis_markdown() -> str:
    return "".join(f"- `{api}`: {why}\n" for api, why in APIS.items())


def functions_markdown() -> str:
    target = make_target(
        project=SAMPLE["project"],
        region=SAMPLE["region"],
        bucket=None,
        config=load_config_file(CONFIG_FILE),
    )
    rows = [
        "| Function | Trigger | Memory | vCPU | Timeout | Max instances | Why |",
        "|---|---|---|---|---|---|---|",
    ]
    for fn in functions(target):
        trigger = (
            f"topic `{fn.trigger.topic}`"
            if isinstance(fn.trigger, TopicTrigger)
            else "object finalized in the bucket"
        )
        cpu = fn.cpu or "default (1/3)"
        rows.append(
            f"| `{fn.name}` | {trigger} | {fn.memory} | {cpu} | {fn.timeout_seconds} s | "
            f"{fn.max_instances} | {fn.sizing} |"
        )
    return "\n".join(rows) + "\n"


def refresh(text: str) -> str:
    text = _replace(text, "deploy-apis", apis_markdown())
    text = _replace(text, "deploy-functions", functions_markdown())
    text = _replace(text, "deploy-plan", f"```bash\n{sample_plan()}```\n")
    return _replace(text, "deploy-roles", sample_roles())


def _replace(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(
            f"docs/deploy.md has no <!-- {name}:begin --> ... <!-- {name}:end --> block"
        )
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


def main() -> None:
    path = ROOT / "docs" / "deploy.md"
    path.write_text(refresh(path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"refreshed the generated blocks in {path.name}")


if __name__ == "__main__":
    main()
