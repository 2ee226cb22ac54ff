"""From a JSON report (the dict the validator or the intake wrote) to the page's plain values,
then through the template (autoescaped: every string from a dataset or its metadata is text)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources

TEMPLATE = "report.html.j2"
ROLE_TITLES = {"train": "Training file", "validation": "Validation file"}
CHART_WIDTH = 600
CHART_HEIGHT = 140
CHART_MARGIN = 4


def render_report_page(
    report: Mapping, *, upload: str | None = None, report_uri: str | None = None
) -> str:
    """The whole page for `report` (a stored JSON report, or ValidationReport.to_dict()).
    `upload` names what was uploaded (gs://B/O#generation or a local path); `report_uri` the
    JSON report the page stands beside."""
    return _template().render(page=page_view(report, upload=upload, report_uri=report_uri))


@functools.cache
def _template():
    import jinja2

    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["num"] = lambda n: f"{n:,}"
    env.filters["many"] = lambda n, word: f"{n:,} {word}{'' if n == 1 else 's'}"
    env.filters["money"] = lambda amount: f"{amount:,.2f}"
    return env.from_string(
        resources.files(__package__).joinpath(TEMPLATE).read_text(encoding="utf-8")
    )


def page_view(report: Mapping, *, upload: str | None = None, report_uri: str | None = None) -> dict:
    """Everything the template shows, as plain values; tolerant of reports written by older
    versions or by the intake (a rejection before any line was read has no files or stats)."""
    files = _mapping(report.get("files"))
    stats = _mapping(report.get("stats"))
    counts = {str(k): v for k, v in _mapping(report.get("counts")).items() if isinstance(v, int)}
    totals = _mapping(report.get("totals"))
    valid = report.get("valid") is True
    return {
        "valid": valid,
        "verdict": "VALID" if valid else "INVALID",
        "outcome": "accepted: the dataset can be tuned"
        if valid
        else "rejected: fix the problems below and upload again",
        "model": str(report.get("model") or "an unknown model"),
        "upload": upload,
        "report_uri": report_uri,
        "errors": _int(totals.get("errors"), sum(counts.values())),
        "warnings": _int(totals.get("warnings"), 0),
        "files": [
            _file_view(role, _mapping(summary), _mapping(stats.get(role)))
            for role, summary in files.items()
        ],
        "token_method": stats.get("method"),
        "cost": _cost_view(_mapping(report.get("cost_estimate"))),
        "problems": _problems(report.get("errors"), counts, files),
        "media": _media_view(_mapping(stats.get("media")), _mapping(stats.get("media_tokens"))),
    }


def _mapping(value: object) -> Mapping:
    return value if isinstance(value, Mapping) else {}


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _file_view(role: str, summary: Mapping, stats: Mapping) -> dict:
    tokens = _mapping(stats.get("tokens"))
    return {
        "title": ROLE_TITLES.get(role, str(role)),
        "name": str(summary.get("name") or ""),
        "examples": _int(summary.get("examples"), 0),
        "lines": _int(summary.get("lines"), 0),
        "size": _int(summary.get("size"), 0),
        "sha256": str(summary.get("sha256") or ""),
        "format": summary.get("format"),
        "tokens": {k: _int(tokens.get(k), 0) for k in ("min", "median", "p95", "max", "total")}
        if _int(tokens.get("examples"), 0)
        else None,
        "chart": _chart(tokens.get("histogram")),
    }


def _chart(bins: object) -> dict | None:
    """Bars for the token histogram: one rectangle per bin, heights in proportion to the
    examples in it, on a fixed-size canvas."""
    if not isinstance(bins, list) or not bins:
        return None
    rows = [b for b in bins if isinstance(b, Mapping)]
    peak = max((_int(b.get("examples"), 0) for b in rows), default=0)
    if not rows or peak <= 0:
        return None
    slot = (CHART_WIDTH - 2 * CHART_MARGIN) / len(rows)
    plot = CHART_HEIGHT - 2 * CHART_MARGIN
    bars = []
    for i, b in enumerate(rows):
        n = _int(b.get("examples"), 0)
        height = round(plot * n / peak, 2)
        bars.append(
            {
                "x": round(CHART_MARGIN + i * slot + 1, 2),
                "y": round(CHART_MARGIN + plot - height, 2),
                "width": round(max(slot - 2, 1), 2),
                "height": height,
                "examples": n,
                "low": _int(b.get("from"), 0),
                "high": _int(b.get("to"), 0),
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "bars": bars,
        "peak": peak,
        "low": bars[0]["low"],
        "high": bars[-1]["high"],
    }


def _cost_view(cost: Mapping) -> dict | None:
    if not cost:
        return None
    price = cost.get("price_per_million_training_tokens")
    amount = cost.get("estimated_cost")
    billable = _int(cost.get("billable_tokens"), 0)
    exact = (
        billable / 1e6 * price
        if isinstance(price, (int, float)) and not isinstance(price, bool)
        else 0
    )
    return {
        "under_a_cent": 0 < exact < 0.005,
        "billable_tokens": _int(cost.get("billable_tokens"), 0),
        "training_tokens": _int(cost.get("training_tokens"), 0),
        "epochs": _int(cost.get("epochs"), 0),
        "currency": str(cost.get("currency") or "USD"),
        "price": price if isinstance(price, (int, float)) and not isinstance(price, bool) else None,
        "amount": amount
        if isinstance(amount, (int, float)) and not isinstance(amount, bool)
        else None,
        "price_source": cost.get("price_source"),
        "price_url": cost.get("price_url"),
        "price_read_on": cost.get("price_read_on"),
        "note": cost.get("note"),
    }


def _problems(issues: object, counts: Mapping[str, int], files: Mapping) -> list[dict]:
    """Listed issues grouped by code (errors before warnings, in the order met), each with how
    many the validator counted beyond the ones listed."""
    groups: dict[str, dict] = {}
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, Mapping):
            continue
        code = str(issue.get("code"))
        group = groups.setdefault(
            code, {"code": code, "severity": str(issue.get("severity") or "error"), "items": []}
        )
        if (
            issue.get("severity") != "warning"
        ):  # a code may hold both: the group is an error if any item is
            group["severity"] = "error"
        # "file" holds the path; reports written before "role" existed hold the role there.
        role = issue.get("role") or issue.get("file")
        name = _mapping(files.get(role)).get("name") if isinstance(role, str) else None
        group["items"].append(
            {
                "file": str(name or issue.get("file") or "settings"),
                "line": issue.get("line") if isinstance(issue.get("line"), int) else None,
                "field": issue.get("field"),
                "message": str(issue.get("message") or ""),
            }
        )
    for code in counts:  # counted but none listed (should not happen, but say so)
        groups.setdefault(code, {"code": code, "severity": "error", "items": []})
    out = []
    for group in groups.values():
        total = counts.get(group["code"], len(group["items"]))
        out.append({**group, "total": total, "more": max(total - len(group["items"]), 0)})
    return sorted(out, key=lambda g: g["severity"] != "error")


def _media_view(media: Mapping, media_tokens: Mapping) -> dict | None:
    if not media:
        return None
    return {
        "references": _int(media.get("references"), 0),
        "distinct_objects": _int(media.get("distinct_objects"), 0),
        "checked": media.get("checked") is True,
        "lower_bound_examples": _int(media_tokens.get("lower_bound_examples"), 0),
    }
