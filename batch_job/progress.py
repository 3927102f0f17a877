"""Progress and the one-line summary of a step.

Logs are plain lines (CloudWatch keeps one event per line); on a terminal a progress bar is drawn
on stderr instead of the periodic progress lines.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from batch_job.cancel import raise_if_stopped
from batch_job.sizes import elapsed, human_bytes

log = logging.getLogger("bgzip-job")

MB = 1_000_000


@dataclass
class Progress:
    """Counts files and bytes of one step, thread-safe; `summary()` is the step's last line."""

    step: str
    total_files: int
    total_bytes: int
    files: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    skipped_files: int = 0  # already done by an earlier attempt: counted, but not in the rate
    skipped_bytes: int = 0
    failed: list[str] = field(default_factory=list)
    interval: float = 10.0
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last: float = 0.0
    _tty: bool = field(default_factory=lambda: sys.stderr.isatty())

    def advance(self, bytes_in: int = 0, bytes_out: int = 0) -> None:
        """Count bytes as they stream, so long files show movement."""
        raise_if_stopped()  # every chunk loop reports its bytes here: this is where each one stops
        with self._lock:
            self.bytes_in += bytes_in
            self.bytes_out += bytes_out
            self._show()

    def skip(self, bytes_in: int, bytes_out: int = 0) -> None:
        """A file an earlier attempt finished: its bytes count as done but were not worked on now."""
        with self._lock:
            self.skipped_files += 1
            self.skipped_bytes += bytes_in
            self.bytes_in += bytes_in
            self.bytes_out += bytes_out
            self._show()

    def file_done(self, key: str, ok: bool, error: str = "") -> None:
        with self._lock:
            self.files += 1
            if not ok:
                self.failed.append(key)
                if self._tty:  # the failure gets a line of its own, not the end of the bar's
                    sys.stderr.write("\r\x1b[2K")
                log.error("%s: FAILED %s: %s", self.step, key, error)
            self._show(force=not ok)

    def _show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self._tty:
            if now - self._last >= 0.2 or force:
                self._last = now
                frac = self.bytes_in / self.total_bytes if self.total_bytes else 1.0
                bar = "#" * int(30 * min(frac, 1.0))
                sys.stderr.write(  # \x1b[2K clears the line: a shorter line leaves nothing of the last
                    f"\r\x1b[2K{self.step} [{bar:<30}] {self.files}/{self.total_files} files "
                    f"{human_bytes(self.bytes_in)}/{human_bytes(self.total_bytes)}{self._pace()}"
                )
                sys.stderr.flush()
        elif now - self._last >= self.interval or force:
            self._last = now
            log.info(
                "%s: %d/%d files, %s/%s%s",
                self.step,
                self.files,
                self.total_files,
                human_bytes(self.bytes_in),
                human_bytes(self.total_bytes),
                self._pace(),
            )

    def _pace(self) -> str:
        """ ", 1m05s, 12.30 MB/s, about 4m10s left": of the bytes worked on now, not those an earlier
        attempt did."""
        return ", " + elapsed(self.bytes_in - self.skipped_bytes, self.total_bytes - self.skipped_bytes, self.seconds)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def summary(self) -> str:
        if self._tty:
            sys.stderr.write("\n")
        secs = self.seconds
        worked = self.bytes_in - self.skipped_bytes
        rate = f", {worked / MB / secs:.1f} MB/s" if worked and secs > 0 else ""  # of the bytes worked on now
        skipped = f" ({self.skipped_files} already done)" if self.skipped_files else ""
        line = (
            f"{self.step}: {self.files} files{skipped}, {human_bytes(self.bytes_in)} in, "
            f"{human_bytes(self.bytes_out)} out, {secs:.1f} s{rate}, {len(self.failed)} failed"
        )
        if self.failed:
            shown = ", ".join(self.failed[:20])
            more = f" and {len(self.failed) - 20} more" if len(self.failed) > 20 else ""
            line += f": {shown}{more}"
        return line

    def record(self) -> dict:
        """The summary as a record, for scripts (`bgzip-job STEP --json`); sizes in bytes."""
        return {
            "step": self.step,
            "files": self.files,
            "filesAlreadyDone": self.skipped_files,
            "filesFailed": len(self.failed),
            "failed": list(self.failed),
            "bytesIn": self.bytes_in,
            "bytesOut": self.bytes_out,
            "seconds": round(self.seconds, 3),
        }


class Reports:
    """Calls `write(progress)` every `seconds` while a step works, from a thread of its own: a slow
    write never holds up the files, and a failed one costs only that report (it is only ever shown)."""

    def __init__(self, progress: Progress, write: Callable[[Progress], None], seconds: float) -> None:
        self._progress = progress
        self._write = write
        self._seconds = seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress-reports", daemon=True)

    def __enter__(self) -> Reports:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(self._seconds):
            try:
                self._write(self._progress)
            except Exception as exc:  # a report is only shown: the step goes on
                log.warning("%s: could not write a progress record: %s", self._progress.step, exc)
