"""htslib's own `bgzip`, the reader the bioindex server runs (`bgzip -b -s`): verify decompresses
every .gz through it, independent of the code that wrote it, on threads with libdeflate as htslib
does (pysam's read path has neither and ran at a quarter of `bgzip -d`'s speed).

    with BgzipDecompression(chunks, threads=2) as bgzip:   # chunks: the .gz, streamed
        data = bgzip.stdout.read(n)                         # the decompressed bytes
    bgzip.error                                             # "" when htslib read the whole stream

A thread of its own feeds the .gz to bgzip's stdin while the caller reads its stdout, so memory stays
bounded by the pipes, whatever the file size. A bgzip costs about a millisecond to start: verify gives the
small files of a shard one for many (steps/verify.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from typing import BinaryIO

from batch_job.errors import Refused

PIPE_SIZE = 1 << 20  # Linux's default limit for an unprivileged process (/proc/sys/fs/pipe-max-size)
INSTALL = "sudo apt-get install tabix (Debian, Ubuntu), or brew install htslib (macOS)"


def bgzip_executable() -> str:
    path = shutil.which("bgzip")
    if path is None:
        raise Refused(f"verify reads every .gz through htslib's bgzip, which is not on PATH ({INSTALL})")
    return path


class BgzipDecompression:
    """`bgzip -d -c -@threads`, fed `chunks`. Leaving the block ends the process (killed if its output
    was not read to the end); then `error` holds what htslib said when it could not read the stream,
    and an exception raised by `chunks` is raised again."""

    def __init__(self, chunks: Iterable[bytes], threads: int) -> None:
        self._chunks = chunks
        self._threads = threads
        self._feed_error: BaseException | None = None
        self.error = ""

    def __enter__(self) -> BgzipDecompression:
        # bgzip's thread pool costs a third of a millisecond to start: a small file is read without one.
        threads = ["-@", str(self._threads)] if self._threads > 1 else []
        command = [bgzip_executable(), "-d", "-c", *threads]
        self._stderr = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr
            )
        except BaseException:
            self._stderr.close()
            raise
        self.stdout: BinaryIO = self._process.stdout
        resize = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only; elsewhere the pipes keep their size
        for pipe in (self._process.stdin, self._process.stdout) if resize else ():
            with contextlib.suppress(OSError):  # 64 KiB by default: a switch of threads every 64 KiB
                fcntl.fcntl(pipe.fileno(), resize, PIPE_SIZE)
        self._feeder = threading.Thread(target=self._feed, name="bgzip-feed", daemon=True)
        self._feeder.start()
        return self

    def _feed(self) -> None:
        try:
            for chunk in self._chunks:
                self._process.stdin.write(chunk)
        except BrokenPipeError:  # bgzip stopped reading: it found an error, or was killed
            pass
        except BaseException as exc:  # raised again in the caller's thread
            self._feed_error = exc
        finally:
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()

    def __exit__(self, *exc_info) -> None:
        if self.stdout.read(1):  # the caller stopped early: the rest is not wanted
            self._process.kill()
        self.stdout.close()
        self._feeder.join()
        code = self._process.wait()
        self._stderr.seek(0)
        said = self._stderr.read().decode(errors="replace").strip().splitlines()
        self._stderr.close()
        if code != 0 and code != -9:
            self.error = said[-1] if said else f"bgzip exited with status {code}"
        if self._feed_error is not None and exc_info[0] is None:
            raise self._feed_error
