"""The parent's side of batch_job/htslib_reader.py: long-lived htslib reader processes, one per
file being verified at a time, each fed a .gz through a FIFO of its own.

    with READERS.reader() as reader:
        result = reader.read(chunks)   # {"size", "sha256"} or {"error"}; chunks: the .gz, streamed
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from batch_job.errors import FileFailed


class Reader:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process = subprocess.Popen(
            [sys.executable, "-m", "batch_job.htslib_reader"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def _open_fifo(self, path: Path) -> int:
        """The FIFO's write end, once the reader has opened it (never blocks on a dead reader)."""
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO or not self.alive():  # ENXIO: no reader yet
                    raise FileFailed(f"the htslib reader stopped (exit {self.process.poll()})") from exc
                time.sleep(0.0005)
                continue
            os.set_blocking(fd, True)
            return fd

    def read(self, chunks: Iterable[bytes]) -> dict:
        """Stream `chunks` into htslib; its answer. A stream the reader stopped taking (it found an
        error) is drained no further; an exception from `chunks` is raised after the reader ends."""
        fifo = self.folder / f"{uuid.uuid4().hex}.fifo"
        os.mkfifo(fifo)
        try:
            self.process.stdin.write(f"{fifo}\n")
            self.process.stdin.flush()
            with open(self._open_fifo(fifo), "wb", buffering=0) as sink:
                for chunk in chunks:
                    try:
                        sink.write(chunk)
                    except BrokenPipeError:
                        return self._answer() | {"stopped": True}
        finally:
            fifo.unlink(missing_ok=True)
        return self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise FileFailed(f"the htslib reader stopped (exit {self.process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class Readers:
    """Idle readers, handed to one thread at a time; a reader that stopped is replaced."""

    def __init__(self) -> None:
        self._idle: list[Reader] = []
        self._lock = threading.Lock()
        self._folder: Path | None = None

    @contextlib.contextmanager
    def reader(self) -> Iterator[Reader]:
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="bgzip-htslib-"))
                atexit.register(self.close)
            reader = self._idle.pop() if self._idle else None
        if reader is None or not reader.alive():
            reader = Reader(self._folder)
        ok = False
        try:
            yield reader
            ok = True
        finally:
            if ok and reader.alive():
                with self._lock:
                    self._idle.append(reader)
            else:  # mid-stream when it failed: its protocol state is unknown
                reader.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for reader in idle:
            reader.close()
        if self._folder is not None:
            with contextlib.suppress(OSError):
                self._folder.rmdir()


READERS = Readers()
