"""Clock jobs run by ``cordon worker``: discovered from the modules, each run even when another fails."""

from __future__ import annotations

import threading

import pytest

from cordon.core import periodic


def test_modules_contribute_their_clock_jobs():
    names = [name for name, _fn in periodic.jobs()]
    assert "command.tick" in names and "screening.coverage" in names
    assert len(names) == len(set(names))


@pytest.mark.django_db
def test_run_once_runs_every_job_and_reports_a_failing_one(monkeypatch):
    ran = []

    def broken():
        raise RuntimeError("disk full")

    monkeypatch.setattr(periodic, "jobs", lambda: [("a.broken", broken), ("b.ok", lambda: ran.append(1) or 7)])
    out = periodic.run_once()
    assert out["a.broken"] == {"error": "RuntimeError: disk full"}
    assert out["b.ok"] == 7 and ran == [1]


@pytest.mark.django_db
def test_the_real_jobs_run_on_an_empty_province():
    out = periodic.run_once()
    assert not any(isinstance(v, dict) and "error" in v for v in out.values()), out
    assert isinstance(out["command.tick"], dict)
    assert out["screening.coverage"] == 0


def test_the_clock_thread_runs_at_once_and_again(monkeypatch):
    calls = threading.Semaphore(0)
    monkeypatch.setattr(periodic, "run_once", lambda: calls.release())
    thread = periodic.start(0.01)
    try:
        assert calls.acquire(timeout=5) and calls.acquire(timeout=5)
        assert thread.daemon
    finally:
        thread.stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
