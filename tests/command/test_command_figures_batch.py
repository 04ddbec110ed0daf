"""The batched figure update of the case handlers: same counts as one ``bump`` per figure."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import IntegrityError
from django.db.models.query import QuerySet

from cordon.command import handlers, services
from cordon.command.models import DailyFigure

pytestmark = pytest.mark.django_db
DAY = date(2022, 5, 10)


def values() -> dict[str, int]:
    return dict(DailyFigure.objects.filter(date=DAY, region_code="430102").values_list("metric", "value"))


def test_creates_the_missing_and_adds_to_the_existing():
    handlers._bump_all(DAY, "430102001001", ["a", "b"])
    assert values() == {"a": 1, "b": 1}
    handlers._bump_all(DAY, "430102", ["a", "b", "c"])
    handlers._bump_all(DAY, "430102", ["c"], -1)
    handlers._bump_all(DAY, "430102", [])
    assert values() == {"a": 2, "b": 2, "c": 0}
    assert not DailyFigure.objects.exclude(region_code="430102").exists()


def test_matches_one_bump_per_figure():
    for metrics in (["x", "y"], ["y", "z"], ["x", "y", "z"]):
        handlers._bump_all(DAY, "430102", metrics)
        for m in metrics:
            services.bump(DAY, "430104", m)
    mine = dict(DailyFigure.objects.filter(region_code="430102").values_list("metric", "value"))
    theirs = dict(DailyFigure.objects.filter(region_code="430104").values_list("metric", "value"))
    assert mine == theirs == {"x": 2, "y": 3, "z": 2}


def test_a_figure_created_meanwhile_falls_back_to_bump(monkeypatch):
    real = QuerySet.values_list

    def read_then_race(self, *args, **kwargs):
        # Our read sees no figure; another writer creates "b" right after it.
        monkeypatch.setattr(QuerySet, "values_list", real)
        DailyFigure.objects.create(date=DAY, region_code="430102", metric="b", value=5)
        return real(self.none(), *args, **kwargs)

    monkeypatch.setattr(QuerySet, "values_list", read_then_race)
    handlers._bump_all(DAY, "430102", ["a", "b"])
    assert values() == {"a": 1, "b": 6}


def test_the_unique_figure_still_holds():
    handlers._bump_all(DAY, "430102", ["a"])
    with pytest.raises(IntegrityError):
        DailyFigure.objects.create(date=DAY, region_code="430102", metric="a", value=1)
