"""Coverage figures of running rounds folded in past their watermark, so boards read stored counts."""

from __future__ import annotations

from typing import Any


def _coverage() -> Any:
    from cordon.screening.coverage import refresh_all

    return refresh_all()


JOBS = [("screening.coverage", _coverage)]
