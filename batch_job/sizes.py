"""Byte counts and durations as people write and read them: "20GiB" in, "21.47 GB" out; "4m05s";
the pace of long work: "12.30 MB/s, about 4m05s left"."""

from __future__ import annotations

import re

UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_bytes(text: str) -> int:
    """`123`, `20GiB`, `500 MB`, `1.5TiB` -> bytes (kB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024)."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in UNITS:
        raise ValueError(f"{text!r} is not a size: give bytes, or a number with B, kB, MB, GB, TB, KiB, MiB, GiB, TiB")
    return int(float(match.group(1)) * UNITS[unit])


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} TB"


def human_duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def seconds_left(done: int, total: int, seconds: float) -> float | None:
    """The time the rest takes at the rate of the bytes done so far; None before any byte is done."""
    if done <= 0 or seconds <= 0:
        return None
    return max(total - done, 0) / (done / seconds)


def elapsed(done: int, total: int, seconds: float) -> str:
    """ "1m05s, 12.30 MB/s, about 4m10s left": the time spent, then the pace once bytes are done."""
    going = pace(done, total, seconds)
    return human_duration(seconds) + (f", {going}" if going else "")


def pace(done: int, total: int, seconds: float) -> str:
    """The rate of the bytes done so far and the time left at that rate; "" before any byte is done."""
    left = seconds_left(done, total, seconds)
    if left is None:
        return ""
    return f"{human_bytes(done / seconds)}/s" + (f", about {human_duration(left)} left" if total > done else "")
