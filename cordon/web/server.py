"""Serving: gunicorn in-process, so ``cordon serve`` is the production server and the demo uses it too."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from typing import Any

from gunicorn.app.base import BaseApplication


class _Server(BaseApplication):
    def __init__(self, application: Any, options: dict[str, Any]) -> None:
        self.application = application
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def start_task_worker() -> subprocess.Popen:
    """One background-task worker beside the web server, for a single-node deployment and the demo, so an
    upload in the browser is processed without a second command. Larger sites run ``cordon worker`` on
    their own machines instead."""
    proc = subprocess.Popen([sys.executable, "-m", "cordon.cli", "worker"], env=os.environ.copy())
    atexit.register(proc.terminate)
    return proc


def default_workers() -> int:
    """One worker process per core: Python runs one thread at a time per process, so it takes a process per
    core to use them all, and more processes than cores only adds switching and memory."""
    return max(2, os.cpu_count() or 2)


def run_server(
    host: str, port: int, *, workers: int | None = None, threads: int = 4, quiet: bool = False,
    with_worker: bool = False,
) -> None:
    """The production server settings, shared by ``cordon serve``, the demo and the benchmarks.

    ``gthread``: each worker runs ``threads`` requests at once, so while one waits on PostgreSQL (most of a
    scan batch's time is the database's) another parses or renders on the same core; four is enough to
    keep a core busy and few enough that the connections (one per thread) stay well under PostgreSQL's
    limit. It also keeps connections alive, which the sampling terminals and lab clients rely on: they post
    a batch every few seconds, and ``keepalive`` spares each of them a new TCP handshake per batch.
    """
    from django.core.wsgi import get_wsgi_application

    if with_worker:
        start_task_worker()

    options = {
        "bind": f"{host}:{port}",
        "workers": workers or default_workers(),
        "threads": threads,
        "worker_class": "gthread",
        "keepalive": 5,
        "timeout": 120,
        "accesslog": None if quiet else "-",
        "errorlog": "-",
        "loglevel": "warning",
    }
    _Server(get_wsgi_application(), options).run()
