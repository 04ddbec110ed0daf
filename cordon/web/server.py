"""Serving: gunicorn in-process, so ``cordon serve`` is the production server and the demo uses it too."""

from __future__ import annotations

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


def run_server(host: str, port: int, *, workers: int = 2, threads: int = 4, quiet: bool = False) -> None:
    from django.core.wsgi import get_wsgi_application

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
