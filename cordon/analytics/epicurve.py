"""Epidemic curve: daily case counts over a contiguous range, by date kind and by groups.

The curve is the first thing headquarters look at, and two habits of reading it go wrong unless
the data says otherwise: missing days read as gaps rather than as zero cases (so every day of
the range is present, zero-filled), and the last few days by onset look like a decline that is
only reporting delay (so those days carry an ``incomplete`` flag; how many days is a policy or
settings value the caller passes, not a constant here).

Dates must be calendar dates in the deployment's zone (DESIGN §4.4). A ``datetime`` is refused
rather than truncated: a report time stored in UTC falls on the previous calendar day for
eight hours of every Beijing morning, and only the caller knows the zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

DateKind = Literal["onset", "report"]
DATE_KINDS: tuple[str, ...] = ("onset", "report")


@dataclass(frozen=True)
class EpiCurve:
    """Daily counts per group over ``dates``, plus the rows that could not be placed on it.

    ``counts`` is groups x days; ``groups`` holds one tuple of values per row, in the order of
    ``group_by``. ``undated`` counts records without a date of this kind (an asymptomatic case
    has no onset) and ``outside_range`` those dated outside the range, so a dashboard can say how
    many cases the curve leaves out instead of silently dropping them.
    """

    date_kind: str
    dates: np.ndarray
    group_by: tuple[str, ...]
    groups: list[tuple[Hashable, ...]]
    counts: np.ndarray
    incomplete: np.ndarray
    undated: int
    outside_range: int

    @property
    def total(self) -> np.ndarray:
        """Daily counts over all groups (what Rt and forecasts are fitted to)."""
        return self.counts.sum(axis=0)

    @property
    def n_days(self) -> int:
        return int(self.dates.shape[0])

    def iso_dates(self) -> list[str]:
        return [str(d) for d in self.dates.astype("datetime64[D]")]

    def select(self, **keys: Hashable) -> np.ndarray:
        """Daily counts summed over the groups matching ``keys`` (e.g. ``region="430102"``)."""
        unknown = set(keys) - set(self.group_by)
        if unknown:
            raise KeyError(f"not grouped by {sorted(unknown)}; groups are {self.group_by}")
        pos = {f: i for i, f in enumerate(self.group_by)}
        rows = [i for i, g in enumerate(self.groups) if all(g[pos[f]] == v for f, v in keys.items())]
        return self.counts[rows].sum(axis=0)

    def collapse(self, *fields: str) -> EpiCurve:
        """The same curve grouped by a subset of the fields (none: a single total series)."""
        for f in fields:
            if f not in self.group_by:
                raise KeyError(f"not grouped by {f!r}; groups are {self.group_by}")
        idx = [self.group_by.index(f) for f in fields]
        merged: dict[tuple[Hashable, ...], np.ndarray] = {}
        for g, row in zip(self.groups, self.counts, strict=True):
            key = tuple(g[i] for i in idx)
            merged[key] = merged[key] + row if key in merged else row.copy()
        keys = sorted(merged, key=_group_sort_key)
        counts = (
            np.vstack([merged[k] for k in keys]) if keys else np.zeros((0, self.n_days), dtype=np.int64)
        )
        return EpiCurve(
            date_kind=self.date_kind,
            dates=self.dates,
            group_by=tuple(fields),
            groups=keys,
            counts=counts,
            incomplete=self.incomplete,
            undated=self.undated,
            outside_range=self.outside_range,
        )

    def to_dict(self) -> dict[str, Any]:
        """Wide form for charts: one series per group, all on the shared date axis."""
        return {
            "date_kind": self.date_kind,
            "dates": self.iso_dates(),
            "incomplete": [bool(x) for x in self.incomplete],
            "group_by": list(self.group_by),
            "series": [
                {
                    "group": dict(zip(self.group_by, g, strict=True)),
                    "counts": [int(c) for c in row],
                    "total": int(row.sum()),
                }
                for g, row in zip(self.groups, self.counts, strict=True)
            ],
            "total": [int(c) for c in self.total],
            "undated": self.undated,
            "outside_range": self.outside_range,
        }

    def to_records(self) -> list[dict[str, Any]]:
        """Long form, one dict per group and day, for tables and exports."""
        iso = self.iso_dates()
        out: list[dict[str, Any]] = []
        for g, row in zip(self.groups, self.counts, strict=True):
            labels = dict(zip(self.group_by, g, strict=True))
            for day, count, inc in zip(iso, row, self.incomplete, strict=True):
                out.append({"date": day, **labels, "count": int(count), "incomplete": bool(inc)})
        return out


def _to_day(value: Any, where: str) -> np.datetime64:
    if value is None:
        return np.datetime64("NaT", "D")
    if isinstance(value, dt.datetime):
        raise TypeError(
            f"{where}: got a datetime ({value!r}); pass the calendar date in the deployment's zone"
        )
    if isinstance(value, dt.date):
        return np.datetime64(value, "D")
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return np.datetime64("NaT", "D")
        if np.datetime_data(value.dtype)[0] != "D":
            raise TypeError(f"{where}: got {value.dtype}; pass day-resolution dates (datetime64[D])")
        return value
    raise TypeError(f"{where}: expected a date, got {type(value).__name__} {value!r}")


def _as_day_array(dates: Iterable[Any] | np.ndarray) -> np.ndarray:
    if isinstance(dates, np.ndarray) and dates.dtype.kind == "M":
        if np.datetime_data(dates.dtype)[0] != "D":
            raise TypeError(f"dates have dtype {dates.dtype}; pass day-resolution dates (datetime64[D])")
        return dates
    return np.array([_to_day(d, f"date #{i + 1}") for i, d in enumerate(dates)], dtype="datetime64[D]")


def _group_sort_key(key: tuple[Hashable, ...]) -> tuple:
    # None last; values of different types never compared with each other.
    return tuple((v is None, type(v).__name__, v if v is not None else 0) for v in key)


def build_epicurve(
    dates: Iterable[Any] | np.ndarray,
    groups: Mapping[str, Sequence[Hashable] | np.ndarray] | None = None,
    *,
    date_kind: DateKind = "onset",
    start: dt.date | None = None,
    end: dt.date | None = None,
    as_of: dt.date | None = None,
    incomplete_days: int = 0,
) -> EpiCurve:
    """Count cases per day and group from parallel arrays (one date and one key per case).

    ``start`` defaults to the first date, ``end`` to ``as_of`` or else to the last date.
    ``as_of`` is the day the data was extracted: the ``incomplete_days`` days ending on it are
    flagged, because cases with those onsets are still being reported.
    """
    if date_kind not in DATE_KINDS:
        raise ValueError(f"date_kind must be one of {DATE_KINDS}, got {date_kind!r}")
    if incomplete_days < 0:
        raise ValueError(f"incomplete_days must be >= 0, got {incomplete_days}")
    days = _as_day_array(dates)
    groups = dict(groups or {})
    group_by = tuple(groups)
    for name, values in groups.items():
        if len(values) != days.shape[0]:
            raise ValueError(f"group {name!r} has {len(values)} values for {days.shape[0]} dates")

    dated = ~np.isnat(days)
    lo = _to_day(start, "start") if start is not None else None
    hi = _to_day(end, "end") if end is not None else None
    ref = _to_day(as_of, "as_of") if as_of is not None else None
    if lo is None and dated.any():
        lo = days[dated].min()
    if hi is None:
        hi = ref if ref is not None else (days[dated].max() if dated.any() else None)
    if lo is None or hi is None:  # nothing dated and no range given: an empty curve
        lo = hi = None
    elif hi < lo:
        raise ValueError(f"the range ends ({hi}) before it starts ({lo})")

    if lo is None:
        axis = np.array([], dtype="datetime64[D]")
    else:
        axis = np.arange(lo, hi + np.timedelta64(1, "D"), dtype="datetime64[D]")
    n_days = axis.shape[0]
    in_range = dated.copy()
    if n_days:
        in_range &= (days >= lo) & (days <= hi)
    else:
        in_range[:] = False

    # Factorise each group field, then combine the codes into one group index per case.
    codes = np.zeros(days.shape[0], dtype=np.int64)
    levels: list[list[Hashable]] = []
    for values in groups.values():
        seen: dict[Hashable, int] = {}
        field_codes = np.fromiter(
            (seen.setdefault(v, len(seen)) for v in values), dtype=np.int64, count=days.shape[0]
        )
        levels.append(list(seen))
        codes = codes * max(len(seen), 1) + field_codes
    sizes = [max(len(lv), 1) for lv in levels]

    day_index = (days[in_range] - lo).astype(np.int64) if n_days else np.array([], dtype=np.int64)
    used, group_index = np.unique(codes[in_range], return_inverse=True)
    flat = np.bincount(group_index * n_days + day_index, minlength=used.size * n_days)
    counts = flat.reshape(used.size, n_days).astype(np.int64)
    keys = [
        tuple(levels[f][int(i)] for f, i in enumerate(np.unravel_index(int(c), sizes))) if levels else ()
        for c in used
    ]
    order = sorted(range(len(keys)), key=lambda i: _group_sort_key(keys[i]))

    incomplete = np.zeros(n_days, dtype=bool)
    if n_days and incomplete_days:
        last_complete = (ref if ref is not None else hi) - np.timedelta64(incomplete_days, "D")
        incomplete = axis > last_complete

    return EpiCurve(
        date_kind=date_kind,
        dates=axis,
        group_by=group_by,
        groups=[keys[i] for i in order],
        counts=counts[order] if order else np.zeros((0, n_days), dtype=np.int64),
        incomplete=incomplete,
        undated=int((~dated).sum()),
        outside_range=int((dated & ~in_range).sum()),
    )


def epicurve_from_records(
    records: Iterable[Mapping[str, Any]],
    *,
    date_kind: DateKind = "onset",
    group_by: Sequence[str] = (),
    date_field: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    as_of: dt.date | None = None,
    incomplete_days: int = 0,
) -> EpiCurve:
    """Build the curve from dict-like case records, e.g. a queryset's ``.values(...)``.

    The date is read from ``date_field``, by default ``"<date_kind>_date"`` (``onset_date`` or
    ``report_date``), so one query carrying both dates serves both curves. Records are consumed
    once, as a stream.
    """
    if date_kind not in DATE_KINDS:
        raise ValueError(f"date_kind must be one of {DATE_KINDS}, got {date_kind!r}")
    field = date_field or f"{date_kind}_date"
    dates: list[np.datetime64] = []
    keys: dict[str, list[Hashable]] = {g: [] for g in group_by}
    for n, rec in enumerate(records, start=1):
        try:
            dates.append(_to_day(rec[field], f"record {n}, field {field!r}"))
            for g in group_by:
                keys[g].append(rec[g])
        except KeyError as exc:
            raise KeyError(f"record {n} has no field {exc.args[0]!r}") from None
    return build_epicurve(
        np.array(dates, dtype="datetime64[D]"),
        keys,
        date_kind=date_kind,
        start=start,
        end=end,
        as_of=as_of,
        incomplete_days=incomplete_days,
    )
