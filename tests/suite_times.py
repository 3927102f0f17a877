"""The suite's times in docs/contributing.md, written from the log of a run, never typed by hand.

    CI=true bash .ci/run > ci.log 2>&1
    python -m tests.suite_times ci.log      # rewrites the text between the suite-times markers

The log gives, in order, the fast tier's and the slow tier's `N passed ... in X s` lines, each after
its `--durations` table, and `.ci/run`'s own `ci: N s` line last.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "contributing.md"
BEGIN, END = "<!-- suite-times: written by `python -m tests.suite_times LOG` -->", "<!-- /suite-times -->"
SUMMARY = re.compile(r"^=*\s*((?:\d+ \w+(?:, )?)+) in ([\d.]+)s")  # "183 passed, 1 skipped in 456.53s"
SLOW_LINE = re.compile(r"^([\d.]+)s (?:call|setup|teardown)\s+tests/(\S+?)\.py::(\S+)")
LONGEST = 5  # of the slow tier's tests named


@dataclass(frozen=True)
class Tier:
    passed: int
    skipped: int
    seconds: float
    longest: list[tuple[float, str]]  # (seconds, test), slowest first


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def read_log(text: str) -> tuple[list[Tier], float | None]:
    """The tiers in the order they ran, and `.ci/run`'s whole time (None in a `make test` log)."""
    tiers, slowest, total = [], {}, None
    for line in text.splitlines():
        if found := SLOW_LINE.match(line):  # a test's setup, call and teardown add up
            test = f"{found[2]}::{found[3]}"
            slowest[test] = slowest.get(test, 0.0) + float(found[1])
        elif found := SUMMARY.match(line):
            counts = {word: int(n) for n, word in (part.split() for part in found[1].split(", "))}
            if counts.get("failed") or counts.get("error") or counts.get("errors") or not counts.get("passed"):
                raise ValueError(f"not the log of a passing run: {line.strip()}")
            longest = sorted(((t, test) for test, t in slowest.items()), reverse=True)[:LONGEST]
            tiers.append(Tier(counts["passed"], counts.get("skipped", 0), float(found[2]), longest))
            slowest = {}
        elif line.startswith("ci: ") and line.endswith(" s"):
            total = float(line[4:-2])
    if len(tiers) != 2:
        raise ValueError(f"expected the fast tier's and the slow tier's summary lines, found {len(tiers)}")
    return tiers, total


def render(tiers: list[Tier], total: float | None) -> str:
    fast, slow = tiers
    whole = f"; the whole `.ci/run` {_duration(total)}, `make sam-build` included" if total is not None else ""
    longest = ",\n".join(f"  {seconds:.0f} s `{test}`" for seconds, test in slow.longest)
    lines = [
        f"- the fast tier: {fast.passed} tests in {_duration(fast.seconds)};",
        f"- the rest: {slow.passed} tests in {_duration(slow.seconds)};",
        f"- the suite: {_duration(fast.seconds + slow.seconds)}, {fast.skipped + slow.skipped} skipped{whole};",
        f"- the rest's longest tests:\n{longest}.",
    ]
    return "\n".join(lines)


def rewrite(doc: str, block: str) -> str:
    before, begin, rest = doc.partition(BEGIN)
    _, end, after = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"{DOC.name} has no {BEGIN} ... {END} block")
    return f"{before}{BEGIN}\n{block}\n{END}{after}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    tiers, total = read_log(Path(argv[0]).read_text(errors="replace"))
    DOC.write_text(rewrite(DOC.read_text(), render(tiers, total)))
    print(render(tiers, total))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
