"""A Fail state's Cause holds at most 32,768 characters; a longer text is cut, saying where the rest is."""

from __future__ import annotations

MAX_CAUSE = 32_000


def cap(text: str, limit: int = MAX_CAUSE, where: str = "") -> str:
    """At most `limit` characters: the head, then how much was left out and where the rest is."""
    if len(text) <= limit:
        return text
    tail = f" ... ({len(text) - limit:,} characters more{'; all of it: ' + where if where else ''})"
    return text[: limit - len(tail)] + tail
