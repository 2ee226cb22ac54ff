"""Whether a finding refuses a dataset: the one place a rule's finding becomes an error or a
warning.

A code whose limit rests on catalog facts (codes.CODE_FACTS) is an error only while every one
of those facts is confirmed for the model, or the media kind, at hand. Where the catalog lists
one as unconfirmed (or no source states it), the finding is a warning that says so: the rule
may be stale or a guess, and a gate must not refuse a dataset Vertex AI would take. A team
that has confirmed a fact marks it so in its models file (`models_file` in deploy/config.toml),
and the finding is an error again. Codes that rest on no catalog fact keep the severity
code_info.CODE_INFO gives them, and a warning never becomes an error.
"""

from __future__ import annotations

from autotune.catalog import Catalog, MediaKind, ModelSpec
from autotune.validation.codes import CODE_FACTS, ErrorCode, Severity

HOW_TO_CONFIRM = (
    "once confirmed, take it off that table's `unconfirmed` list in a models file (`models_file` in "
    "deploy/config.toml; docs/error-codes.md) and this refuses the dataset"
)


class Verdicts:
    """Severities for one model's findings; each (code, media kind, facts) is judged once."""

    def __init__(self, catalog: Catalog, model: ModelSpec | None) -> None:
        self._catalog = catalog
        self._model = model
        self._judged: dict[tuple, tuple[Severity, str]] = {}

    def judge(
        self, code: ErrorCode, kind: str | None = None, facts: tuple[str, ...] | None = None
    ) -> tuple[Severity, str]:
        """(severity, note for the message: empty unless the finding is lowered to a warning).
        kind: the media kind a "media.*" fact is read from; facts: the ones among the code's
        declared facts this finding rests on (default: all of them)."""
        key = (code, kind, facts)
        judged = self._judged.get(key)
        if judged is None:
            judged = self._judged[key] = self._judge(code, kind, facts)
        return judged

    def severity(
        self, code: ErrorCode, kind: str | None = None, facts: tuple[str, ...] | None = None
    ) -> Severity:
        return self.judge(code, kind, facts)[0]

    def unconfirmed(
        self, code: ErrorCode, kind: str | None = None, facts: tuple[str, ...] | None = None
    ) -> list[str]:
        """The facts, among those the finding rests on, that the catalog does not confirm
        (named as a models file spells them: 'models."gemini-3.5-flash".regions',
        "media.audio.max_per_example")."""
        declared = CODE_FACTS.get(code, ())
        named = declared if facts is None else facts
        strays = sorted(set(named) - set(declared))
        if strays:
            raise ValueError(
                f"{code.value} rests on {', '.join(declared) or 'no catalog fact'}, not on {', '.join(strays)}"
            )
        out = []
        item: ModelSpec | MediaKind | None
        for fact in named:
            table, _, name = fact.partition(".")
            if table == "model":
                item, where = self._model, f'models."{self._model.name}"' if self._model else ""
            else:
                item = self._catalog.media.get(kind) if kind is not None else None
                where = f"media.{kind}"
            if item is not None and not self._catalog.confirmed(item, name):
                out.append(f"{where}.{name}")
        return out

    def _judge(
        self, code: ErrorCode, kind: str | None, facts: tuple[str, ...] | None
    ) -> tuple[Severity, str]:
        if code.severity != "error":
            return code.severity, ""
        unconfirmed = self.unconfirmed(code, kind, facts)
        if not unconfirmed:
            return "error", ""
        return "warning", (
            f" (a warning, not an error: the model catalog lists {' and '.join(unconfirmed)} as unconfirmed, so "
            f"Vertex AI may still refuse this, or take it; {HOW_TO_CONFIRM})"
        )
