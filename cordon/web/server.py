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


def run_server(
    host: str, port: int, *, workers: int = 2, threads: int = 4, quiet: bool = False, with_worker: bool = False
) -> None:
    from django.core.wsgi import get_wsgi_application

    if with_worker:
        start_task_worker()

    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 120,
        "accesslog": None if quiet else "-",
        "errorlog": "-",
        "loglevel": "warning",
    }
    _Server(get_wsgi_application(), options).run()
