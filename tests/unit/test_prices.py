"""Prices: the catalog's price with its page and date, [prices] in deploy/config.toml supplying or
overriding one, the unknown price saying how to set it, bad values named, and the estimate in
dollars in text, JSON and HTML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autotune.catalog import CATALOG_FILE, catalog_from_files
from autotune.catalog.prices import format_prices, parse_prices_env
from autotune.config import ConfigError, PipelineConfig, load_config_file
from autotune.settings import TuningSettings
from autotune.validation import DatasetSource, validate_for_model

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "classification.jsonl"
PAGE = "https://pricing.example/vertex-ai"  # a stand-in source: these tests set prices of their own

OVERLAY = f"""
[sources.test-pricing]
url = "{PAGE}"
read_on = "2026-12-01"

[models."gemini-3.5-flash"]
price_per_million_training_tokens = 3.0
price_read_on = "2026-12-01"
sources = {{ lifecycle = "versions", regions = "regions", price_per_million_training_tokens = "test-pricing" }}
"""


def rows(n: int) -> bytes:
    return b"".join(
        json.dumps(
            {
                "contents": [
                    {"role": "user", "parts": [{"text": "question " * 40}]},
                    {"role": "model", "parts": [{"text": "answer " * 40}]},
                ]
            }
        ).encode()
        + b"\n"
        for _ in range(n)
    )


def estimate(
    model: str,
    tmp_path: Path,
    *,
    overlay: str | None = OVERLAY,
    prices: dict | None = None,
    epochs: int = 2,
) -> dict:
    path = None
    if overlay is not None:
        path = tmp_path / "models.toml"
        path.write_text(overlay)
    catalog = catalog_from_files(CATALOG_FILE.read_text(), path)
    report = validate_for_model(
        DatasetSource("t.jsonl", [rows(10)]),
        settings=TuningSettings(model=model, epochs=epochs),
        model=catalog.get(model),
        catalog=catalog,
        prices=prices,
    )
    return report.cost_estimate


def test_a_catalog_price_comes_with_its_page_and_date(tmp_path):
    cost = estimate("gemini-3.5-flash", tmp_path)
    assert (cost["price_source"], cost["price_url"], cost["price_read_on"]) == (
        "catalog",
        PAGE,
        "2026-12-01",
    )
    assert cost["price_per_million_training_tokens"] == 3.0
    assert (
        cost["estimated_cost"] == round(cost["billable_tokens"] * 3.0 / 1e6, 2)
        and cost["estimated_cost"] > 0
    )
    assert PAGE in cost["note"] and "2026-12-01" in cost["note"] and "catalog" in cost["note"]


def test_a_configured_price_overrides_the_catalogs(tmp_path):
    cost = estimate("gemini-3.5-flash", tmp_path, prices={"gemini-3.5-flash": 1.5})
    assert (cost["price_source"], cost["price_url"], cost["price_per_million_training_tokens"]) == (
        "config",
        None,
        1.5,
    )
    assert cost["estimated_cost"] == round(cost["billable_tokens"] * 1.5 / 1e6, 2)
    assert "deploy/config.toml [prices]" in cost["note"]


def test_a_configured_price_supplies_one_the_catalog_lacks(tmp_path):
    assert estimate("gemini-3.1-flash-lite", tmp_path)["price_per_million_training_tokens"] is None
    cost = estimate(
        "gemini-3.1-flash-lite",
        tmp_path,
        prices={"gemini-3.1-flash-lite": 0.75, "other-model": 9.0},
    )
    assert (cost["price_source"], cost["price_per_million_training_tokens"]) == ("config", 0.75)


@pytest.mark.parametrize(
    "model", ["gemini-3.5-flash", "gemini-3.5-flash-lite", "gemini-3.1-flash-lite"]
)
def test_an_unknown_price_says_how_to_set_one(model, tmp_path):
    cost = estimate(model, tmp_path, overlay=None, prices={"some-other-model": 2.0})
    assert (
        cost["price_per_million_training_tokens"] is None
        and cost["estimated_cost"] is None
        and cost["price_source"] is None
    )
    assert cost["note"].startswith("price unknown; set [prices] in deploy/config.toml")
    assert f'"{model}" = <USD per 1M training tokens>' in cost["note"]


def test_no_current_model_ships_a_price_without_a_page_and_a_date():
    catalog = catalog_from_files(CATALOG_FILE.read_text(), None)
    for model in catalog.models.values():
        if model.price_per_million_training_tokens is None:
            continue
        source = catalog.sources[
            model.sources.get("price_per_million_training_tokens", model.source)
        ]
        assert source.url and model.price_read_on, model.name


def config_file(tmp_path: Path, prices: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(prices if "[pipeline]" in prices else f'{prices}\n\n[pipeline]\nbucket = "b"\n')
    return path


def test_the_prices_table_is_read_from_the_config_file_and_travels_in_the_environment(tmp_path):
    config = load_config_file(
        config_file(tmp_path, '[prices]\n"gemini-3.5-flash" = 2.5\n"team-model" = 4')
    )
    assert config.prices == {"gemini-3.5-flash": 2.5, "team-model": 4.0}
    env = config.to_env()
    assert env["AUTOTUNE_PRICES"] == "gemini-3.5-flash=2.5,team-model=4.0"
    assert PipelineConfig.from_env(env).prices == config.prices
    assert parse_prices_env(format_prices({"a": 0.1})) == {"a": 0.1}
    assert load_config_file(config_file(tmp_path, "")).prices == {}


@pytest.mark.parametrize(
    ("table", "says"),
    [
        (
            '[prices]\n"gemini-3.5-flash" = "cheap"',
            "[prices] \"gemini-3.5-flash\": 'cheap' is not a number",
        ),
        ('[prices]\n"gemini-3.5-flash" = -1.0', '[prices] "gemini-3.5-flash": -1.0 is not a price'),
        ('[prices]\n"gemini-3.5-flash" = nan', '[prices] "gemini-3.5-flash": nan is not a price'),
        ('[prices]\n"gemini-3.5-flash" = inf', '[prices] "gemini-3.5-flash": inf is not a price'),
        (
            '[prices]\n"gemini-3.5-flash" = true',
            '[prices] "gemini-3.5-flash": True is not a number',
        ),
        ('[prices]\n"gemini-3.5-flash" = { usd = 2 }', "is not a number"),
        ('[prices]\n"two words" = 2.0', '[prices] "two words": not a model name'),
        ("prices = 3", "[prices] must be a table"),
        (
            '[pipeline]\nprices = { "gemini-3.5-flash" = 2.0 }',
            "pipeline.prices: prices go in a [prices] table",
        ),
    ],
)
def test_a_bad_price_in_the_config_file_names_the_file_the_key_and_the_problem(
    tmp_path, table, says
):
    path = config_file(tmp_path, table)
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    assert str(caught.value).startswith(f"{path}: ") and says in str(caught.value)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("gemini-3.5-flash=cheap", "is not a number"),
        ("gemini-3.5-flash", "is not model=price"),
        ("gemini-3.5-flash=-2", "is not a price"),
    ],
)
def test_a_bad_price_in_the_environment_names_the_variable(text, says):
    with pytest.raises(ConfigError) as caught:
        PipelineConfig.from_env({"AUTOTUNE_PRICES": text})
    assert str(caught.value).startswith("AUTOTUNE_PRICES=") and says in str(caught.value)


def validate(tmp_path: Path, *args: str, prices: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTUNE_")}
    if prices is not None:
        env["AUTOTUNE_PRICES"] = prices
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from autotune.command import main; main()",
            "validate",
            str(EXAMPLE),
            "--model",
            "gemini-3.5-flash",
            "--epochs",
            "2",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )


def test_validate_prints_the_estimate_in_dollars_in_text_json_and_html(tmp_path):
    # A negotiated rate set in the configuration (AUTOTUNE_PRICES is what [prices] becomes).
    as_json = validate(
        tmp_path, "--json", "--html", str(tmp_path / "r.html"), prices="gemini-3.5-flash=1000"
    )
    assert as_json.returncode == 0, as_json.stderr
    cost = json.loads(as_json.stdout)["cost_estimate"]
    dollars = round(cost["billable_tokens"] * 1000 / 1e6, 2)
    assert cost["estimated_cost"] == dollars and dollars >= 1 and cost["price_source"] == "config"
    text = validate(tmp_path, prices="gemini-3.5-flash=1000")
    assert (
        f"about ${dollars:,.2f}; USD 1000 per 1M training tokens, set in deploy/config.toml [prices]"
        in text.stdout
    )
    html = (tmp_path / "r.html").read_text()
    assert (
        f"about ${dollars:,.2f}</strong>" in html
        and 'id="price-source"' in html
        and "deploy/config.toml [prices]" in html
    )


def test_validate_without_a_price_says_how_to_set_one_in_text_and_html(tmp_path):
    result = validate(tmp_path, "--html", str(tmp_path / "r.html"), prices=None)
    assert result.returncode == 0, result.stderr
    assert (
        'price unknown; set [prices] in deploy/config.toml: "gemini-3.5-flash" = <USD per 1M training tokens>'
        in result.stdout
    )
    html = (tmp_path / "r.html").read_text()
    assert (
        "price unknown" in html
        and 'id="price-unknown"' in html
        and "set [prices] in deploy/config.toml" in html
    )


def test_a_tiny_estimate_is_not_shown_as_free(tmp_path):
    result = validate(tmp_path, prices="gemini-3.5-flash=0.5")
    assert "about under $0.01" in result.stdout


def test_autotune_report_shows_the_stored_estimate_and_its_source(tmp_path):
    from autotune.cli.report import render_stored_report

    cost = estimate("gemini-3.5-flash", tmp_path, prices={"gemini-3.5-flash": 1000.0})
    doc = {
        "valid": True,
        "model": "gemini-3.5-flash",
        "files": {},
        "errors": [],
        "counts": {},
        "cost_estimate": cost,
    }
    text = render_stored_report(
        doc, "gs://b/reports/incoming/t.jsonl/1.json", ("incoming/t.jsonl", "1")
    )
    assert (
        f"cost: about ${cost['estimated_cost']:,.2f}; USD 1000 per 1M training tokens, set in deploy/config.toml [prices]"
        in text
    )
    unknown = estimate("gemini-3.5-flash", tmp_path, overlay=None)
    text = render_stored_report({**doc, "cost_estimate": unknown}, "gs://b/r.json", None)
    assert "cost: price unknown; set [prices] in deploy/config.toml" in text


def test_the_html_page_names_the_catalog_page_and_date_of_its_price(tmp_path):
    from html.parser import HTMLParser

    from autotune.report_page import render_report_page

    cost = estimate("gemini-3.5-flash", tmp_path)
    html = render_report_page(
        {
            "valid": True,
            "model": "gemini-3.5-flash",
            "files": {},
            "errors": [],
            "counts": {},
            "cost_estimate": cost,
        }
    )
    texts: dict[str, str] = {}

    class ById(HTMLParser):
        current = None

        def handle_starttag(self, tag, attrs):
            self.current = dict(attrs).get("id") or self.current

        def handle_data(self, data):
            if self.current:
                texts[self.current] = texts.get(self.current, "") + data

    ById().feed(html)
    assert f"about ${cost['estimated_cost']:,.2f}" in texts["cost"]
    assert f"Price from the model catalog: {PAGE}, read on 2026-12-01." in " ".join(
        texts["price-source"].split()
    )
