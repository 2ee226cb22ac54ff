"""One step of a plan: a gcloud command line, why it runs, and what of its output it keeps.

A step may name values that only exist once an earlier step has run (the project number,
the Pub/Sub subscription Eventarc made for a function). Those are written `${NAME}` inside
an argument; the step that produces the value has `capture="NAME"`. Printed, the plan is a
shell script (`NAME="$(gcloud ...)"`, then `"...${NAME}..."`); run, the runner substitutes
the captured output. Either way the same list of steps is the one source of truth.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping

import msgspec

REFERENCE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
# Characters that keep their meaning inside double quotes; a referencing argument must not
# hold any other than its own ${NAME} references.
_DOUBLE_QUOTE_SPECIALS = re.compile(r'["\\`]|\$(?!\{[A-Z][A-Z0-9_]*\})')


class Step(msgspec.Struct, frozen=True, kw_only=True):
    argv: tuple[str, ...]
    why: str
    capture: str | None = None  # shell variable that receives stdout (a lookup, not a change)
    deletes_data: bool = False  # destroy asks before running it
    # A step that only prepares for others (a lookup, making a service agent exist) names
    # the text a later step must contain for it to be worth running; unused ones are dropped.
    supports: str | None = None

    def references(self) -> set[str]:
        return {name for arg in self.argv for name in REFERENCE.findall(arg)}

    @property
    def is_lookup(self) -> bool:
        return self.capture is not None


def render_argument(arg: str) -> str:
    if not REFERENCE.search(arg):
        return shlex.quote(arg)
    if _DOUBLE_QUOTE_SPECIALS.search(arg):
        raise ValueError(
            f"argument {arg!r} mixes a ${{NAME}} reference with shell-special characters"
        )
    return f'"{arg}"'


def render_command(argv: Iterable[str]) -> str:
    return " ".join(render_argument(arg) for arg in argv)


def render_step(step: Step) -> str:
    command = render_command(step.argv)
    if step.capture:
        return f'{step.capture}="$({command})"'
    return command


def render_script(steps: Iterable[Step]) -> str:
    """The plan as copy-pasteable shell: a comment saying why, then the command."""
    lines: list[str] = []
    for step in steps:
        lines.append(f"# {step.why}")
        lines.append(render_step(step))
    return "\n".join(lines) + ("\n" if lines else "")


def substitute(argv: Iterable[str], values: Mapping[str, str]) -> tuple[str, ...]:
    """argv with every ${NAME} replaced by its captured value; a missing one is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"${{{name}}} is used before any step captured it")
        return values[name]

    return tuple(REFERENCE.sub(replace, arg) for arg in argv)
