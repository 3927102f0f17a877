"""Progress and the one-line summary of a step.

Logs are plain lines (CloudWatch keeps one event per line); on a terminal a progress bar is drawn
on stderr instead of the periodic progress lines.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("bgzip-job")

MB = 1_000_000


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} TB"


@dataclass
class Progress:
    """Counts files and bytes of one step, thread-safe; `summary()` is the step's last line."""

    step: str
    total_files: int
    total_bytes: int
    files: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    failed: list[str] = field(default_factory=list)
    interval: float = 10.0
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last: float = 0.0
    _tty: bool = field(default_factory=lambda: sys.stderr.isatty())

    def advance(self, bytes_in: int = 0, bytes_out: int = 0) -> None:
        """Count bytes as they stream, so long files show movement."""
        with self._lock:
            self.bytes_in += bytes_in
            self.bytes_out += bytes_out
            self._show()

    def file_done(self, key: str, ok: bool, error: str = "") -> None:
        with self._lock:
            self.files += 1
            if not ok:
                self.failed.append(key)
                log.error("%s: FAILED %s: %s", self.step, key, error)
            self._show(force=not ok)

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._tty:
            if now - self._last >= 0.2 or force:
                self._last = now
                frac = self.bytes_in / self.total_bytes if self.total_bytes else 1.0
                bar = "#" * int(30 * min(frac, 1.0))
                sys.stderr.write(
                    f"\r{self.step} [{bar:<30}] {self.files}/{self.total_files} files "
                    f"{human_bytes(self.bytes_in)}/{human_bytes(self.total_bytes)}"
                )
                sys.stderr.flush()
        elif now - self._last >= self.interval or force:
            self._last = now
            log.info(
                "%s: %d/%d files, %s/%s",
                self.step,
                self.files,
                self.total_files,
                human_bytes(self.bytes_in),
                human_bytes(self.total_bytes),
            )

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def summary(self) -> str:
        if self._tty:
            sys.stderr.write("\n")
        secs = self.seconds
        rate = self.bytes_in / MB / secs if secs > 0 else 0.0
        line = (
            f"{self.step}: {self.files} files, {human_bytes(self.bytes_in)} in, "
            f"{human_bytes(self.bytes_out)} out, {secs:.1f} s, {rate:.1f} MB/s, {len(self.failed)} failed"
        )
        if self.failed:
            shown = ", ".join(self.failed[:20])
            more = f" and {len(self.failed) - 20} more" if len(self.failed) > 20 else ""
            line += f": {shown}{more}"
        return line
