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


LOG = """\
============================= slowest 10 durations =============================
2.75s call     tests/test_terminal.py::test_ctrl_c
264 passed in 17.47s
============================= slowest 15 durations =============================
40.20s call     tests/test_demo.py::test_the_demo
8.74s setup    tests/test_iam.py::test_every_call[a-b]
183 passed, 1 skipped in 456.53s (0:07:36)
ci: 544 s
"""


def test_the_suite_times_are_written_from_a_runs_log():
    from tests import suite_times

    tiers, total = suite_times.read_log(LOG)
    block = suite_times.render(tiers, total)
    assert block == (
        "- the fast tier: 264 tests in 17 s;\n"
        "- the rest: 183 tests in 7 min 37 s;\n"
        "- the suite: 7 min 54 s, 1 skipped; the whole `.ci/run` 9 min 04 s, `make sam-build` included;\n"
        "- the rest's longest tests:\n"
        "  40 s `test_demo::test_the_demo`,\n"
        "  9 s `test_iam::test_every_call[a-b]`."
    )
    doc = suite_times.DOC.read_text()
    assert suite_times.rewrite(doc, block).count(block) == 1
    with pytest.raises(ValueError, match="found 1"):
        suite_times.read_log(LOG.split("=====\n40.20s")[0])
    with pytest.raises(ValueError, match="not the log of a passing run: 1 failed, 182 passed"):
        suite_times.read_log(LOG.replace("183 passed", "1 failed, 182 passed"))
    call = "0.50s call     tests/test_iam.py::test_every_call[a-b]\n"
    with_call = LOG.replace("183 passed", call + "183 passed")
    assert suite_times.read_log(with_call)[0][1].longest[1] == (9.24, "test_iam::test_every_call[a-b]")
    written = doc.split(suite_times.BEGIN)[1].split(suite_times.END)[0].strip()
    assert re.fullmatch(r"- the fast tier: \d+ tests in [^\n]+;\n- the rest: \d+ tests in (.|\n)+\.", written), written
