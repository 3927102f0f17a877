"""Stopping a step part-way (Ctrl-C, or the SIGTERM with which Batch terminates a job): the signal
handler sets STOP; every file worker raises Interrupted at its next chunk and cleans up what it
started; a stretch that must finish once begun (a shard's deletions and the manifest recording them)
holds the interrupt back until it ends.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

# Set by Ctrl-C (cli.main): every file worker stops at its next chunk, cleaning up what it started.
STOP = threading.Event()


class Interrupted(BaseException):
    """Raised in a file worker once STOP is set; a BaseException, so no step records it as a file's failure."""


_CRITICAL = threading.Event()


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """A stretch that must finish once begun (a shard's deletions and the manifest recording them): an
    interrupt meanwhile only sets STOP, and takes effect right after."""
    _CRITICAL.set()
    try:
        yield
    finally:
        _CRITICAL.clear()
    if STOP.is_set():
        raise KeyboardInterrupt


_WAITING = threading.Event()


@contextlib.contextmanager
def waiting_on_workers() -> Iterator[None]:
    """The main thread waits on file workers: an interrupt meanwhile only sets STOP, and the workers'
    Interrupted (at their next chunk) ends the wait. Raised inside the wait, a KeyboardInterrupt can
    break the lock of the future's Condition ("cannot release un-acquired lock")."""
    _WAITING.set()
    try:
        yield
    finally:
        _WAITING.clear()


def interrupt_now() -> bool:
    """Whether an interrupt may raise at once: not in an uninterrupted stretch, nor while the main
    thread waits on workers."""
    return not _CRITICAL.is_set() and not _WAITING.is_set()


def raise_if_stopped() -> None:
    """Called between chunks (Progress.advance) and before each file: a stop takes effect here."""
    if STOP.is_set():
        raise Interrupted
