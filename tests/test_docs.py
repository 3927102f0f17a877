"""The README and docs/: every link lands (file and heading), every document is reachable from the
README, and the README stays the short document it is meant to be."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bgz import cli

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        found.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_lands_on_a_file_and_a_heading(document):
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        landing = (document.parent / path).resolve() if path else document
        assert landing.exists(), f"{document.name}: {target} names no file"
        if anchor:
            assert anchor in anchors(landing), f"{document.name}: {target} names no heading of {landing.name}"


def test_every_document_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in LINK.findall(readme)}
    assert set(DOCUMENTS[1:]) <= linked, "a document in docs/ no reader can find"


def test_the_readme_opens_with_the_two_commands_and_stays_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[2] == "```sh" and lines[3].startswith("make demo ") and lines[4].startswith("make test "), lines[:6]
    assert len(lines) <= 300, f"{len(lines)} lines: the details belong in docs/"


def test_the_readme_exit_table_is_bgz_s():
    """The README's table of bgz's exit statuses has the codes `bgz -h` lists."""
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"^\| `bgz` exit \|.*?\n\n", readme, re.M | re.S).group(0)
    assert re.findall(r"^\| (\d+) \|", table, re.M) == re.findall(r"^  (\d+) ", cli.EXIT_STATUS, re.M)
