"""The background reader that importers use to parse the next chunk while the database writes the last."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from cordon.core.readahead import read_ahead


def test_items_arrive_in_order_and_are_produced_in_another_thread():
    threads = set()

    def produce():
        for i in range(50):
            threads.add(threading.current_thread().name)
            yield i

    with read_ahead(produce(), name="reader-under-test") as items:
        got = list(items)
    assert got == list(range(50))
    assert threads == {"reader-under-test"}


def test_a_producer_error_is_raised_after_the_items_before_it():
    def produce():
        yield "a"
        yield "b"
        raise ValueError("line 3: not a file")

    got = []
    with pytest.raises(ValueError, match="line 3"), read_ahead(produce()) as items:
        for item in items:
            got.append(item)
    assert got == ["a", "b"]


def test_an_exception_object_is_an_ordinary_item():
    err = KeyError("kept as data")
    with read_ahead(iter([err, 1])) as items:
        assert list(items) == [err, 1]


def _blocked_offering(thread_name: str) -> bool:
    """Whether the named thread is waiting to put an item into a full queue."""
    for t in threading.enumerate():
        if t.name == thread_name:
            frame = sys._current_frames().get(t.ident)
            names = set()
            while frame is not None:
                names.add(frame.f_code.co_name)
                frame = frame.f_back
            return {"offer", "put", "wait"} <= names
    return False


def test_the_producer_stays_at_most_depth_items_ahead():
    produced = []

    def produce():
        for i in range(100):
            produced.append(i)
            yield i

    with read_ahead(produce(), depth=2, name="bounded-reader") as items:
        first = next(items)
        # Wait for the condition, not a time: the reader has produced the item after the two in the queue and is
        # blocked offering it (an unbounded reader would run on to the end).
        deadline = time.monotonic() + 10
        while not (len(produced) >= 4 and _blocked_offering("bounded-reader")) and time.monotonic() < deadline:
            threading.Event().wait(0.01)
        assert _blocked_offering("bounded-reader")
        assert first == 0
        assert len(produced) == 1 + 2 + 1
        rest = list(items)
    assert rest == list(range(1, 100))


def test_leaving_early_stops_and_closes_the_producer():
    closed = threading.Event()
    produced = []

    def produce():
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    with pytest.raises(RuntimeError, match="write failed"), read_ahead(produce(), depth=1) as items:
        for item in items:
            if item == 3:
                raise RuntimeError("write failed")
    assert closed.wait(5)
    assert len(produced) < 10


def test_threads_switch_faster_while_a_reader_runs_and_as_before_afterwards():
    import sys

    before = sys.getswitchinterval()
    with read_ahead(iter(range(3))) as outer:
        during = sys.getswitchinterval()
        with read_ahead(iter(range(3))) as inner:
            assert list(inner) == [0, 1, 2]
        assert sys.getswitchinterval() == during  # another reader still runs
        assert list(outer) == [0, 1, 2]
    assert during < before
    assert sys.getswitchinterval() == before
