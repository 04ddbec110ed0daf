"""Reading a file one step ahead of the writes that consume it.

A bulk import alternates two kinds of work: parsing and validating lines (pure Python, holding the GIL)
and waiting on the database (the driver releases the GIL). Run one after the other they add up; with the
reading in a background thread the next chunk is parsed while the database works on the current one.

The thread only runs the producer it is given (no database, no error report): every query, report line
and audit event still happens on the caller's thread and connection, in order, inside whatever transaction
the caller holds. Items arrive in the order produced; an exception in the producer is raised in the
caller's thread after the items produced before it, as a plain loop would; at most ``depth`` items wait, so
memory does not grow with the file. Leaving the ``with`` block early (an error in the writes) stops the
producer at its next item.

While a reader runs, the interpreter hands the GIL over every half millisecond instead of every five. The
writer makes many short round trips to the database, and after each one it waits for the GIL while the
reader parses: at the default interval those waits added a fifth to a lab file's import.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_END = object()
_SWITCH_INTERVAL = 0.0005  # seconds
_switching = threading.Lock()
_readers = 0
_saved_interval = 0.0


class _Failed:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


@contextmanager
def read_ahead(producer: Iterable[T], *, depth: int = 2, name: str = "cordon-import-reader") -> Iterator[Iterator[T]]:
    """``with read_ahead(chunks(...)) as items: for item in items: write(item)``."""
    pending: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                pending.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        items = iter(producer)
        try:
            for item in items:
                if not offer(item):
                    return
                del item  # the consumer's now: not kept alive while the next one is produced
            offer(_END)
        except BaseException as exc:  # handed to the caller's thread, raised there in order
            offer(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def consume() -> Iterator[T]:
        while True:
            try:
                item = pending.get(timeout=0.5)
            except queue.Empty:
                if not thread.is_alive() and pending.empty():
                    raise RuntimeError("the import reader stopped without a result") from None
                continue
            if item is _END:
                return
            if type(item) is _Failed:
                raise item.exc
            yield item

    thread = threading.Thread(target=run, name=name, daemon=True)
    _fast_switching(True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        thread.join(timeout=10)
        _fast_switching(False)


def _fast_switching(on: bool) -> None:
    """The short switch interval, for as long as any reader of the process runs."""
    global _readers, _saved_interval
    with _switching:
        if on:
            if _readers == 0:
                _saved_interval = sys.getswitchinterval()
                sys.setswitchinterval(min(_saved_interval, _SWITCH_INTERVAL))
            _readers += 1
        else:
            _readers -= 1
            if _readers == 0:
                sys.setswitchinterval(_saved_interval)
