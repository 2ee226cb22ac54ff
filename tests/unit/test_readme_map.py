"""The README is a map that stays true: its feature table names modules that exist, every relative
link (and image) in README.md and docs/*.md reaches a file (and a heading, when it names one), and
the README stays short enough to read, the long reference living under docs/."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_README_LINES = 450

LINK = re.compile(r"\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)([^`]+?)\1")


def markdown_files() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """Lines outside fenced code blocks, numbered from 1: links and headings live only there."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its words
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of each relative link; a link's text may run over several lines."""
    text = path.read_text(encoding="utf-8")
    kept = dict(prose_lines(text))
    prose = "\n".join(kept.get(number, "") for number in range(1, len(text.splitlines()) + 1))
    prose = INLINE_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)
    links = []
    for match in LINK.finditer(prose):
        target = match.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:, ...
            continue
        links.append((prose.count("\n", 0, match.start(1)) + 1, target))
    return links


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for number, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        where = f"{path.relative_to(root)}:{number}: {target}"
        destination = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not destination.exists():
            problems.append(f"{where}: no such file")
            continue
        if not destination.is_relative_to(root):
            problems.append(f"{where}: points outside the repository")
            continue
        if anchor:
            if destination.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif unquote(anchor) not in anchors(destination):
                problems.append(
                    f"{where}: {destination.relative_to(root)} has no heading #{anchor}"
                )
    return problems


def feature_table() -> list[tuple[str, str]]:
    """The rows of the README's table under "## Where each feature lives": (feature, module path)."""
    text = README.read_text(encoding="utf-8")
    assert "\n## Where each feature lives" in text, (
        "README.md has no section '## Where each feature lives'"
    )
    start = text.index("\n## Where each feature lives")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else len(text)]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or set(cells[1]) <= set("-: "):
            continue
        if cells[0].lower() == "feature":
            continue
        paths = re.findall(r"\[`?([^`\]]+)`?\]\(([^)]+)\)", cells[1])
        assert paths, f"README feature table: the row {cells[0]!r} names no module as a link"
        for shown, target in paths:
            assert shown == target, (
                f"README feature table: {cells[0]!r} shows {shown} but links to {target}"
            )
            rows.append((cells[0], target))
    return rows


def test_readme_is_short() -> None:
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count < MAX_README_LINES, (
        f"README.md has {count} lines; move reference text under docs/ (limit {MAX_README_LINES})"
    )


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "README.md has no bash block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["make demo", "make test"], f"README's first commands are {commands}"
    assert text.index("```bash") < text.index("\n## "), (
        "the two commands come before the first section"
    )


def test_feature_table_names_modules_that_exist() -> None:
    rows = feature_table()
    features = {feature for feature, _ in rows}
    for feature in (
        "Validate",
        "Look at it",
        "Prepare",
        "Models",
        "Local pipeline",
        "Intake",
        "Notifications",
        "Jobs",
        "Deploy",
        "Configuration",
    ):
        assert any(f.startswith(feature) for f in features), (
            f"README feature table has no row for {feature}"
        )
    missing = [f"{feature}: {path}" for feature, path in rows if not (ROOT / path).exists()]
    assert missing == [], (
        f"README feature table names paths that are not in the tree (re-point them): {missing}"
    )


def _ignored_by_git(path: Path) -> bool:
    # What a run leaves behind (test-artifacts/ from the browser tests, say) is not the layout.
    found = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False)
    return found.returncode == 0


def test_layout_matches_the_tree() -> None:
    text = README.read_text(encoding="utf-8")
    assert "\n## Layout" in text, "README.md has no section '## Layout'"
    start = text.index("\n## Layout")
    block = re.search(r"```\n(.*?)```", text[start:], re.S)
    assert block, "README's Layout has no block"
    entries = [line.split()[0] for line in block.group(1).splitlines() if line.strip()]
    missing = [entry for entry in entries if not (ROOT / entry).exists()]
    assert missing == [], f"README Layout names paths that are not in the tree: {missing}"
    top = {entry.split("/")[0] for entry in entries}
    unlisted = sorted(
        path.name
        for path in ROOT.iterdir()
        if path.is_dir()
        and not path.name.startswith(".")
        and not path.name.endswith(".egg-info")
        and path.name != "__pycache__"
        and path.name not in top
        and not _ignored_by_git(path)
    )
    assert unlisted == [], f"README Layout leaves out top-level directories: {unlisted}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_reach_their_target(path: Path) -> None:
    assert broken_links(path) == []


def test_the_link_check_catches_what_it_should(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text(
        "# A\n\n## Roles and why\n\n## `autotune` jobs: one line\n"
    )
    page = tmp_path / "README.md"
    page.write_text(
        "# T\n\n[ok](docs/a.md#roles-and-why) [ok](docs/a.md#autotune-jobs-one-line) [ok](#t)\n"
        "[gone](docs/b.md) [no heading](docs/a.md#roles) [web](https://example.com/x) [up](../x.md)\n"
        "![shown](docs/a.md) ![no picture](docs/gone.png)\n"
        "[a link over\ntwo lines](docs/a.md#nowhere)\n"
        "```\n[in code](nowhere.md)\n```\n`[in inline code](nowhere.md)`\n"
    )
    (tmp_path.parent / "x.md").write_text("# X\n")
    assert broken_links(page, root=tmp_path) == [
        "README.md:4: docs/b.md: no such file",
        "README.md:4: docs/a.md#roles: docs/a.md has no heading #roles",
        "README.md:4: ../x.md: points outside the repository",
        "README.md:5: docs/gone.png: no such file",
        "README.md:7: docs/a.md#nowhere: docs/a.md has no heading #nowhere",
    ]


def test_slug_follows_github() -> None:
    assert (
        slug("Check a deployment without paying for a tuning job")
        == "check-a-deployment-without-paying-for-a-tuning-job"
    )
    assert slug("2. No lost dataset") == "2-no-lost-dataset"
    assert slug("`empty_file` (error)") == "empty_file-error"
    assert slug("Queue and errors") == "queue-and-errors"
