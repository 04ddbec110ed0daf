"""The administrative tree, province down to grid.

The primary key is the region code itself (GB/T 2260 for the top three levels, plus three digits per
level below). Every row that belongs to a region stores that code, so "everything in my jurisdiction" is a
prefix match on an indexed column, with no join and no recursive query, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Level(models.TextChoices):
    PROVINCE = "province", _("Province")
    CITY = "city", _("City")
    COUNTY = "county", _("County")
    TOWNSHIP = "township", _("Township / street")
    COMMUNITY = "community", _("Community / village")
    GRID = "grid", _("Grid")


LEVEL_ORDER = [Level.PROVINCE, Level.CITY, Level.COUNTY, Level.TOWNSHIP, Level.COMMUNITY, Level.GRID]
# How many leading characters of a code identify a region's subtree at each level.
PREFIX_LENGTH = {
    Level.PROVINCE: 2,
    Level.CITY: 4,
    Level.COUNTY: 6,
    Level.TOWNSHIP: 9,
    Level.COMMUNITY: 12,
    Level.GRID: 15,
}
CODE_LENGTH = {
    Level.PROVINCE: 6,
    Level.CITY: 6,
    Level.COUNTY: 6,
    Level.TOWNSHIP: 9,
    Level.COMMUNITY: 12,
    Level.GRID: 15,
}


def subtree_prefix(code: str, level: str) -> str:
    return code[: PREFIX_LENGTH[Level(level)]]


class Region(models.Model):
    code = models.CharField(_("code"), max_length=15, primary_key=True)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    level = models.CharField(_("level"), max_length=12, choices=Level.choices)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children", verbose_name=_("parent")
    )
    population = models.PositiveIntegerField(_("population"), null=True, blank=True)
    prefix = models.CharField(max_length=15, db_index=True, editable=False)

    class Meta:
        ordering = ["code"]
        verbose_name = _("region")
        verbose_name_plural = _("regions")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def save(self, *args, **kwargs) -> None:
        self.prefix = subtree_prefix(self.code, self.level)
        super().save(*args, **kwargs)

    def contains(self, code: str) -> bool:
        return code.startswith(self.prefix)

    def ancestors(self) -> list[Region]:
        """Root first. Codes embed the path, so the ancestors are one query by their known codes."""
        codes = []
        for level in LEVEL_ORDER[: LEVEL_ORDER.index(Level(self.level))]:
            n = PREFIX_LENGTH[level]
            codes.append(self.code[:n].ljust(6, "0") if n <= 6 else self.code[:n])
        found = {r.code: r for r in Region.objects.filter(code__in=codes)}
        return [found[c] for c in codes if c in found]
