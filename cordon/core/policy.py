"""Policy profiles: every number of a prevention protocol, held as data.

Why: rules changed every few months during the epidemic (8th edition 2021, 9th edition June 2022,
the "20 measures" of November 2022). A deployment must follow a new rule by switching or editing a
policy file, never by waiting for a release. So no quarantine length, test day, look-back window,
pool size or deadline is written in code; code reads it from the active profile.

Profiles live in ``cordon/policies/<name>.toml``. All of them follow the ONE schema declared in
``SCHEMA`` below (the only place it is declared); it is checked on every load, and a profile that
does not match is refused with a :class:`PolicyError` that lists every problem as
``<file>: <dotted.key.path>: <reason>``.

Schema conventions (see ``describe_schema()`` for the full key list with types):

* Every section carries ``source = "..."``, the public document its figures come from. A sub-table
  or list item may carry its own ``source``; otherwise it inherits its parent's
  (:meth:`Policy.source_of`).
* ``standing`` says how binding a figure is: ``"national"`` (the national protocol), ``"local"``
  (a local practice, shipped as an option, not as a national rule), or ``"<place>-YYYY-MM"`` for a
  named local rule (e.g. ``"beijing-2022-05"``). A table may set ``standing`` for all its keys and
  ``[<table>.standings]`` for single keys. Absent everywhere means ``"national"``
  (:meth:`Policy.standing_of`).
* Day counts are whole calendar days; test days are 1-based day numbers inside a period (see
  :func:`quarantine_schedule` for the day-0 convention); clocks are in hours.
* Unknown keys are errors (a typo must not silently fall back to a default); optional keys that are
  absent get the default declared in the schema, so attribute access is uniform across profiles.

Loaded profiles are immutable: tables become read-only :class:`Section` objects (attribute access,
``[]`` access, and dotted :meth:`Section.get`), lists become :class:`FrozenList` (a tuple that also
compares equal to a list with the same items).

This module must work without Django configured (the CLI and the tests load profiles directly).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULT_PROFILE",
    "POLICY_DIR",
    "SCHEDULE_KINDS",
    "FrozenList",
    "Phase",
    "Policy",
    "PolicyError",
    "Schedule",
    "Section",
    "active_policy",
    "active_profile_name",
    "colocation_follow_up",
    "describe_schema",
    "format_policy",
    "list_profiles",
    "load_policy",
    "lookback_start",
    "quarantine_schedule",
    "risk_level",
    "validate_all_profiles",
]

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
DEFAULT_PROFILE = "ncov-9"
SETTING_NAME = "CORDON_POLICY"
SCHEMA_VERSION = 1

#: The hard ceiling on swabs per tube (POLICY.md §4: re-pooling 30:1 or 50:1 is not allowed).
#: It is a safety limit of the platform, not a policy value: no profile may go above it.
MAX_POOL_SIZE_LIMIT = 20

PLACEMENT_KINDS = (
    "centralized_quarantine",  # 集中隔离医学观察
    "home_quarantine",  # 居家隔离医学观察 (9th ed., medium-risk travellers)
    "home_isolation",  # 居家隔离 (secondary contacts 9th ed.; Nov 2022)
    "home_health_monitoring",  # 居家健康监测
    "testing_only",  # no placement, only tests (e.g. 3 days 2 tests)
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CODE_RE = r"^[a-z][a-z0-9_]*$"
_STANDING_RE = r"^(national|local|[a-z]+-\d{4}-\d{2})$"
_META_KEYS = ("source", "standing", "standings")
_MISSING: Any = object()


class PolicyError(ValueError):
    """A profile could not be found, read or validated.

    ``errors`` holds ``(key_path, reason)`` pairs; the message has one line per problem, each
    ``<file>: <key path>: <reason>``, so an administrator can fix a copied profile in one pass.
    """

    def __init__(self, file: str, errors: list[tuple[str, str]] | str, key: str = "") -> None:
        if isinstance(errors, str):
            errors = [(key, errors)]
        self.file = file
        self.errors = list(errors)
        lines = [f"{file}: {k}: {r}" if k else f"{file}: {r}" for k, r in self.errors]
        super().__init__("\n".join(lines))

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.errors]


# --------------------------------------------------------------------------------------------
# Schema: declared once, as objects that both check values and describe themselves.
# --------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """Render a bad value the way it looks in TOML, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        text = json.dumps(value, ensure_ascii=False, default=str)
        return text if len(text) <= 60 else "a list"
    return repr(value)


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


Errors = list[tuple[str, str]]


class Spec:
    """One expected value. ``default`` makes the key optional (filled in when absent)."""

    def __init__(self, doc: str = "", *, default: Any = _MISSING) -> None:
        self.doc = doc
        self.default = default

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def describe(self) -> str:
        raise NotImplementedError

    def check(self, value: Any, path: str, errs: Errors) -> Any:
        raise NotImplementedError

    def _bad(self, value: Any, path: str, errs: Errors) -> Any:
        errs.append((path, f"expected {self.describe()}, got {_show(value)}"))
        return value


class Int(Spec):
    def __init__(self, doc: str = "", *, min: int | None = 0, max: int | None = None, **kw: Any) -> None:
        super().__init__(doc, **kw)
        self.min, self.max = min, max

    def describe(self) -> str:
        if self.max is not None and self.min is not None:
            return f"an integer from {self.min} to {self.max}"
        if self.min == 0:
            return "a non-negative integer"
        if self.min == 1:
            return "a positive integer"
        return "an integer" if self.min is None else f"an integer ≥ {self.min}"

    def check(self, value: Any, path: str, errs: Errors) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            return self._bad(value, path, errs)
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            return self._bad(value, path, errs)
        return value


class Num(Spec):
    """An int or a float (hours may be fractional)."""

    def __init__(self, doc: str = "", *, min: float = 0, max: float | None = None, **kw: Any) -> None:
        super().__init__(doc, **kw)
        self.min, self.max = min, max

    def describe(self) -> str:
        if self.max is not None:
            return f"a number from {self.min:g} to {self.max:g}"
        return "a non-negative number" if self.min == 0 else f"a number ≥ {self.min:g}"

    def check(self, value: Any, path: str, errs: Errors) -> Any:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return self._bad(value, path, errs)
        if value < self.min or (self.max is not None and value > self.max) or value != value:
            return self._bad(value, path, errs)
        return value


class Bool(Spec):
    def describe(self) -> str:
        return "true or false"

    def check(self, value: Any, path: str, errs: Errors) -> Any:
        if not isinstance(value, bool):
            return self._bad(value, path, errs)
        return value


class Str(Spec):
    def __init__(
        self, doc: str = "", *, choices: tuple[str, ...] | None = None, pattern: str | None = None, **kw: Any
    ) -> None:
        super().__init__(doc, **kw)
        self.choices = choices
        self.pattern = re.compile(pattern) if pattern else None

    def describe(self) -> str:
        if self.choices:
            return "one of " + ", ".join(_show(c) for c in self.choices)
        if self.pattern:
            return f"a string matching {self.pattern.pattern}"
        return "a non-empty string"

    def check(self, value: Any, path: str, errs: Errors) -> Any:
        if not isinstance(value, str) or not value.strip():
            return self._bad(value, path, errs)
        if self.choices and value not in self.choices:
            return self._bad(value, path, errs)
        if self.pattern and not self.pattern.match(value):
            return self._bad(value, path, errs)
        return value


class DateStr(Spec):
    """A calendar date written "YYYY-MM-DD" (a bare TOML date is accepted and normalised)."""

    def describe(self) -> str:
        return 'a date "YYYY-MM-DD"'

    def check(self, value: Any, path: str, errs: Errors) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, str):
            try:
                return date.fromisoformat(value).isoformat()
            except ValueError:
                pass
        return self._bad(value, path, errs)


class IntList(Spec):
    """A list of integers, by default positive, strictly increasing (so no duplicates)."""

    def __init__(
        self, doc: str = "", *, min: int = 1, max: int | None = None, min_len: int = 0, **kw: Any
    ) -> None:
        super().__init__(doc, **kw)
        self.item = Int(min=min, max=max)
        self.min_len = min_len

    def describe(self) -> str:
        what = "positive integers" if self.item.min == 1 and self.item.max is None else (
            self.item.describe().replace("an integer", "integers")
        )
        return f"{'a non-empty' if self.min_len else 'an'} increasing list of {what}"

    def check(self, value: Any, path: str, errs: Errors) -> Any:
        if not isinstance(value, list) or len(value) < self.min_len:
            return self._bad(value, path, errs)
        n = len(errs)
        out = [self.item.check(v, _join(path, i), errs) for i, v in enumerate(value)]
        if len(errs) == n and any(a >= b for a, b in itertools.pairwise(out)):
            errs.append((path, f"expected {self.describe()}, got {_show(value)}"))
        return out


class StrList(Spec):
    def __init__(
        self, doc: str = "", *, choices: tuple[str, ...] | None = None, pattern: str | None = None,
        min_len: int = 0, **kw: Any,
    ) -> None:
        super().__init__(doc, **kw)
        self.item = Str(choices=choices, pattern=pattern)
        self.min_len = min_len

    def describe(self) -> str:
        return f"a list of distinct strings, each {self.item.describe()}"

    def check(self, value: Any, path: str, errs: Errors) -> Any:
        if not isinstance(value, list) or len(value) < self.min_len:
            return self._bad(value, path, errs)
        out = [self.item.check(v, _join(path, i), errs) for i, v in enumerate(value)]
        if len(set(map(str, out))) != len(out):
            errs.append((path, f"duplicate entries in {_show(value)}"))
        return out


_SOURCE = Str("the public document the figures come from")
_STANDING = Str('"national", "local" or "<place>-YYYY-MM" (e.g. "beijing-2022-05")', pattern=_STANDING_RE)


class _Container(Spec):
    """Shared handling of the meta keys ``source``, ``standing`` and ``standings``."""

    def __init__(self, doc: str = "", *, source: bool = False, **kw: Any) -> None:
        super().__init__(doc, **kw)
        self.source_required = source

    def _meta(self, value: dict, path: str, errs: Errors, data_keys: set[str]) -> dict:
        out: dict[str, Any] = {}
        if "source" in value:
            out["source"] = _SOURCE.check(value["source"], _join(path, "source"), errs)
        elif self.source_required:
            reason = "missing required key (the document this section comes from)"
            errs.append((_join(path, "source"), reason))
        if "standing" in value:
            out["standing"] = _STANDING.check(value["standing"], _join(path, "standing"), errs)
        if "standings" in value:
            sp = _join(path, "standings")
            st = value["standings"]
            if not isinstance(st, dict):
                errs.append((sp, f"expected a table of key = standing, got {_show(st)}"))
            else:
                out["standings"] = {}
                for k, v in st.items():
                    if k not in data_keys:
                        errs.append((_join(sp, k), f"unknown key: no {_join(path, k)} to give a standing to"))
                    out["standings"][k] = _STANDING.check(v, _join(sp, k), errs)
        return out


class Table(_Container):
    """A TOML table with a fixed set of keys."""

    def __init__(self, fields: dict[str, Spec], doc: str = "", **kw: Any) -> None:
        super().__init__(doc, **kw)
        clash = set(fields) & (set(_META_KEYS) | _RESERVED)
        assert not clash, f"schema keys clash with reserved names: {clash}"
        self.fields = fields

    def describe(self) -> str:
        return "a table"

    def check(self, value: Any, path: str, errs: Errors) -> Any:
        if not isinstance(value, dict):
            return self._bad(value, path, errs)
        out = self._meta(value, path, errs, set(self.fields))
        for key, spec in self.fields.items():
            kp = _join(path, key)
            if key in value:
                out[key] = spec.check(value[key], kp, errs)
            elif spec.required:
                errs.append((kp, f"missing required key ({spec.describe()})"))
            else:
                out[key] = _fill_default(spec)
        for key in value:
            if key not in self.fields and key not in _META_KEYS:
                known = ", ".join(self.fields)
                errs.append((_join(path, key), f"unknown key (known keys here: {known})"))
        return out


class MapOf(_Container):
    """A table whose keys are codes chosen by the profile (e.g. risk-area levels)."""

    def __init__(self, value: Spec, doc: str = "", *, min_len: int = 1, **kw: Any) -> None:
        super().__init__(doc, **kw)
        self.value = value
        self.key = Str(pattern=_CODE_RE)
        self.min_len = min_len

    def describe(self) -> str:
        return f"a table of code = {self.value.describe()}"

    def check(self, value: Any, path: str, errs: Errors) -> Any:
        if not isinstance(value, dict):
            return self._bad(value, path, errs)
        keys = {k for k in value if k not in _META_KEYS}
        out = self._meta(value, path, errs, keys)
        if len(keys) < self.min_len:
            errs.append((path, f"expected at least {self.min_len} entries"))
        for key in value:
            if key in _META_KEYS:
                continue
            kp = _join(path, key)
            if not self.key.pattern.match(key) or key in _RESERVED:  # type: ignore[union-attr]
                errs.append((kp, "key must be a lower-case code (a-z, 0-9, _)"))
            out[key] = self.value.check(value[key], kp, errs)
        return out


class ListOf(Spec):
    """A list of tables (TOML ``[[array.of.tables]]``), optionally unique by one key."""

    def __init__(
        self, item: Spec, doc: str = "", *, min_len: int = 0, unique_by: str | None = "code", **kw: Any
    ) -> None:
        super().__init__(doc, **kw)
        self.item = item
        self.min_len = min_len
        self.unique_by = unique_by

    def describe(self) -> str:
        return f"a list of {self.item.describe()}s" + (f" (at least {self.min_len})" if self.min_len else "")

    def check(self, value: Any, path: str, errs: Errors) -> Any:
        if not isinstance(value, list) or len(value) < self.min_len:
            return self._bad(value, path, errs)
        out = [self.item.check(v, _join(path, i), errs) for i, v in enumerate(value)]
        if self.unique_by:
            seen: set[Any] = set()
            for i, item in enumerate(out):
                code = item.get(self.unique_by) if isinstance(item, dict) else None
                if code in seen:
                    errs.append((_join(_join(path, i), self.unique_by), f"duplicate {_show(code)}"))
                seen.add(code)
        return out


def _fill_default(spec: Spec) -> Any:
    d = spec.default
    return list(d) if isinstance(d, list | tuple) else d


# Attribute names of Section/Policy that no data key may take (they would be shadowed).
# (Policy's own ``name``, ``path``, ``source_of`` and ``standing_of`` only matter at the top level,
# whose keys are the fixed section names.)
_RESERVED = frozenset({"get", "keys", "items", "values", "as_dict"})


_LABELS = {"zh": Str("label in Simplified Chinese"), "en": Str("label in English")}

_TRAVELLERS = Table(
    {
        "placement": Str("how travellers from this level are managed", choices=PLACEMENT_KINDS),
        "clock_starts": Str("event that is day 0", choices=("departure", "arrival")),
        "days": Int("length of the management period"),
        "test_days": IntList("fixed test days within the period (day 1 = day after departure)"),
        "tests_in_period": Int(
            "number of tests to take anywhere within the period (e.g. 2 tests in 3 days)", min=1, default=None
        ),
    },
    "travellers who left an area of this level",
)

_LIFT_STEP = Table(
    {
        "when": Str(
            "condition kind: no new case for N days, or every higher-level area (in scope) lifted",
            choices=("no_new_case", "all_higher_lifted"),
        ),
        "days_without_new_case": Int(
            "consecutive days with no new infection (counted from the previous step)", default=None
        ),
        "screening_on_day": Int("a negative full screening on this day is required", min=1, default=None),
        "last_close_contact_days": Int(
            "the last close contact must be this many days past last exposure", default=None
        ),
        "last_close_contact_negative": Bool(
            "the last close contact must have tested negative", default=False
        ),
        "all_residents_negative_within_days": Int(
            "every resident tested negative once within this many days before lifting", min=1, default=None
        ),
        "scope": Str("where the condition is checked", choices=("area", "county"), default="area"),
        "next_level": Str('level the area moves to, or "lifted"', pattern=_CODE_RE),
    },
    "one step of lifting",
)

_LEVEL = Table(
    {
        **_LABELS,
        "tier": Str("comparable tier across schemes", choices=("high", "medium", "low")),
        "drawn_as": Str("how the area is drawn (English)"),
        "drawn_as_zh": Str("how the area is drawn (Chinese)"),
        "regime_zh": Str("regime in force (Chinese slogan)"),
        "regime_en": Str("regime in force (English)"),
        "leave_city_negative_test_hours": Int(
            "a negative test within this many hours is needed to leave the city", min=1, default=None
        ),
        "escalate_on_case_to": Str("a new case in the area turns it into this level", default=None),
        "lift": ListOf(_LIFT_STEP, "steps to lower or lift the level, in order", min_len=1, unique_by=None),
        "travellers": _TRAVELLERS,
    },
    "one risk level (or zone)",
)

_VEHICLE = Table(
    {
        **_LABELS,
        "scope": Str("who is a close contact", choices=("rows", "carriage", "all", "cabin")),
        "rows_before": Int("rows in front of the case", default=0),
        "rows_after": Int("rows behind the case", default=0),
        "same_row": Bool("the case's own row", default=False),
        "include_crew": Bool("crew serving those seats", default=False),
    },
    "close-contact rule for one kind of vehicle",
)

_FOLLOW_UP = Table(
    {
        **_LABELS,
        "code": Str("option code", pattern=_CODE_RE),
        "tests": Int("number of tests", min=1),
        "within_days": Int("within this many days", min=1),
        "min_hours_apart": Num("minimum hours between two tests"),
    },
    "a follow-up option for space-time companions",
)

_ROUND_RULE = Table(
    {
        "when": Str(
            "condition (first matching rule wins)",
            choices=("quarantine_site", "case_in_last_rounds", "case_in_last_days", "otherwise"),
        ),
        "rounds": Int("for case_in_last_rounds: look at this many last rounds", min=1, default=None),
        "days": Int("for case_in_last_days: look at this many last days", min=1, default=None),
        "interval_days": Int("days between rounds (1 = daily)", min=1),
    },
    "a screening-round frequency rule",
)

_HOURS = Num

SCHEMA = Table(
    {
        "meta": Table(
            {
                "schema_version": Int("version of this schema the file is written for", min=1),
                "name": Str("profile code", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
                "title_zh": Str("document title in Chinese"),
                "title_en": Str("document title in English"),
                "edition": Str("edition of the protocol"),
                "effective_date": DateStr("date the protocol took effect"),
                "disease": Str("disease the protocol is for"),
                "based_on": Str("profile whose values are kept where this one gives none", default=None),
            },
            source=True,
        ),
        "cases": Table(
            {
                "incubation_days_min": Int("usual incubation, lower bound (for look-back windows)"),
                "incubation_days_max": Int("usual incubation, upper bound"),
                "arrival_positive_ct_below": Num(
                    "arrivals: a Ct value below this is positive (Nov 2022 only)", default=None
                ),
                "serial_interval_mean_days": Num("serial interval, mean (for R estimates)", default=None),
                "serial_interval_sd_days": Num("serial interval, standard deviation", default=None),
            },
            source=True,
        ),
        "contacts": Table(
            {
                "close": Table(
                    {
                        "lookback_days": Int(
                            "days before symptom onset (or first positive sample if asymptomatic) "
                            "from which contacts count"
                        ),
                        "clock_starts": Str("event that is day 0 of quarantine", choices=("last_exposure",)),
                        "centralized_days": Int("days of centralized quarantine"),
                        "centralized_test_days": IntList("test days of the centralized phase"),
                        "home_kind": Str(
                            "what follows centralized quarantine",
                            choices=("home_health_monitoring", "home_isolation"),
                        ),
                        "home_days": Int("days of the home phase"),
                        "home_test_days": IntList("test days of the home phase (day 1 = its first day)"),
                    },
                    source=True,
                ),
                "secondary": Table(
                    {
                        "enabled": Bool("secondary contacts are determined at all"),
                        "settings": StrList(
                            "contact settings (codes of contacts.settings) that make a secondary contact",
                            pattern=_CODE_RE,
                        ),
                        "window_from": Str(
                            "start of the window, relative to the close contact",
                            choices=("close_contact_first_exposure",),
                        ),
                        "window_to": Str(
                            "end of the window, relative to the close contact",
                            choices=("close_contact_isolated",),
                        ),
                        "clock_starts": Str("event that is day 0", choices=("last_exposure",)),
                        "management": Str("placement kind", choices=PLACEMENT_KINDS),
                        "days": Int("days of management"),
                        "test_days": IntList("test days"),
                        "release_requires_own_tests_negative": Bool("own tests must all be negative"),
                        "release_requires_close_contact_negative_tests": Int(
                            "the close contact's first N tests must be negative before release"
                        ),
                        "upgrade_if_own_test_positive": Bool("a positive own test makes a close contact"),
                        "upgrade_if_close_contact_positive_within_tests": Int(
                            "a positive in the close contact's first N tests upgrades to close contact"
                        ),
                    },
                    source=True,
                ),
                "settings": ListOf(
                    Table({"code": Str("setting code", pattern=_CODE_RE), **_LABELS}),
                    "contact settings an investigator records",
                    min_len=1,
                ),
                "vehicle_rules": MapOf(_VEHICLE, "close-contact rules per vehicle kind"),
            },
            source=True,
        ),
        "colocation": Table(
            {
                "cell_m": Int("side of the square grid cell, metres", min=1),
                "min_minutes": Num("minimum minutes in the same cell as a case's phone"),
                "cell_total_hours": Num("either phone in the cell more than this many hours in total"),
                "lookback_days": Int("window for cell_total_hours"),
                "min_overlap_minutes": Num("venue co-location: minimum overlap of two stays"),
                "default_stay_minutes": Num(
                    "venue co-location: stay assumed for a check-in without check-out"
                ),
                "window_days": Int("venue co-location: days before the index's onset/positive looked at"),
                "follow_up": Table(
                    {
                        "selected": Str("code of the option in force", pattern=_CODE_RE),
                        "options": ListOf(_FOLLOW_UP, "named follow-up options", min_len=1),
                    }
                ),
            },
            source=True,
        ),
        "quarantine_site": Table(
            {
                "same_floor": Bool("a positive restarts the clock for the same floor"),
                "restart_scope_floors_above": Int("... and this many floors above"),
                "restart_scope_floors_below": Int("... and this many floors below"),
                "environment_positive_restarts": Str(
                    "a positive environment sample restarts", choices=("site", "floor", "room", "none")
                ),
                "release_requires_own_test_negative": Bool("release needs the person negative"),
                "release_requires_environment_negative": Bool(
                    "release needs the room's environment negative"
                ),
                "makeup_missed_tests": Bool("missed test days are made up (缺几天补几天)"),
                "households_share_room": Bool(
                    "a household is placed together in one room (else single occupancy)", default=True
                ),
                "transfer_vehicle_seats": Int("seats per transfer vehicle (people per trip)", min=1, default=6),
                "capacity_warning_free_share": Num(
                    "warn when a region's projected free beds fall below this share of its beds", max=1,
                    default=0.1,
                ),
            },
            source=True,
        ),
        "discharge": Table(
            {
                "consecutive_negative_tests": Int("consecutive negative tests to discharge", min=1),
                "min_hours_apart": Num("minimum hours between them"),
                "ct_threshold": Num("negative means Ct ≥ this for every gene"),
                "genes": StrList("target genes read", min_len=1),
                "home_monitoring_days": Int("home health monitoring after discharge"),
                "home_test_days": IntList("test days of that monitoring"),
                "relapse_ct_below": Num("a Ct below this on a monitoring test is a relapse (复阳)"),
                "relapse_destination": StrList(
                    "where a relapse is sent", choices=("designated_hospital", "field_hospital"), min_len=1
                ),
                "relapse_rezones_building": Bool("a relapse re-zones the person's building"),
            },
            source=True,
        ),
        "risk_areas": Table(
            {
                "scheme": Str('"levels" (high/medium/low) or "zones" (sealed/controlled/precaution)',
                              choices=("levels", "zones")),
                "drawn_by": Str("smallest unit an area is drawn by",
                                choices=("compound_or_village", "building")),
                "order": StrList("level codes, highest first", pattern=_CODE_RE, min_len=2),
                "levels": MapOf(_LEVEL, "one entry per level code in order", min_len=2),
            },
            source=True,
        ),
        "screening": Table(
            {
                "allowed_pool_sizes": IntList(
                    "swabs per tube the platform accepts", max=MAX_POOL_SIZE_LIMIT, min_len=1
                ),
                "max_pool_size": Int("largest pool (never above 20)", min=1, max=MAX_POOL_SIZE_LIMIT),
                "lab_repooling_allowed": Bool("re-pooling tubes in the lab (30:1, 50:1)"),
                "default_pool_size": MapOf(
                    Int(min=1, max=MAX_POOL_SIZE_LIMIT),
                    "default swabs per tube by area kind (quarantine_site and every risk level)",
                ),
                "household_tube_allowed": Bool("one tube per household allowed where the default is 1"),
                "household_tube_area_kinds": StrList("area kinds where it is allowed", pattern=_CODE_RE),
                "single_to_10_after_negative_rounds": Int(
                    "single-tube groups may move to 10:1 after this many negative rounds", min=1
                ),
                "people_per_site_min": Int("planning: people per sampling point, lower", min=1),
                "people_per_site_max": Int("planning: people per sampling point, upper", min=1),
                "people_per_sampler": Int("planning: samplers = population ÷ this", min=1),
                "min_rounds_unknown_source": Int("rounds at least when the source is unknown", min=1),
                "round_frequency": ListOf(_ROUND_RULE, "first matching rule wins", min_len=1, unique_by=None),
                "targets": Table(
                    {
                        "city_designated_area_hours": _HOURS("a city finishes its designated area"),
                        "sealed_first_round_hours": _HOURS("first round in a sealed zone / high area"),
                        "controlled_first_round_hours": _HOURS("first round in a controlled zone / medium"),
                    }
                ),
                "turnaround_hours": Table(
                    {
                        "pooled": _HOURS("pooled tubes resulted within"),
                        "single": _HOURS("single tubes within"),
                    }
                ),
                "positive_pool": Table(
                    {
                        "lab_reports_immediately": Bool("the lab reports a positive pool at once"),
                        "notify": StrList("who the testing group alerts", pattern=_CODE_RE, min_len=1),
                        "hold_in_place": Bool("every member is held in place"),
                        "retest_pool_size": Int("members are re-sampled with this pool size", min=1, max=1),
                        "hold_and_resample_hours": _HOURS("members re-sampled within"),
                        "negative_retest_lifts_hold": Bool("a negative retest lifts the hold"),
                        "positive_retest_opens_case": Bool("a positive retest opens a case"),
                    }
                ),
                "registration": Table(
                    {
                        "fields": StrList("recorded per sample", pattern=_CODE_RE, min_len=1),
                        "scan_barcode": Bool("the tube barcode is scanned"),
                        "check_identity": Bool("identity is checked"),
                        "minor_under_guardian": Bool("a minor is registered under a guardian's document"),
                    }
                ),
            },
            source=True,
        ),
        "deadlines": Table(
            {
                "direct_report_hours": _HOURS("clinic files the online direct report after diagnosis"),
                "cdc_verification_hours": _HOURS("CDC verifies the report"),
                "village_report_hours": _HOURS("village clinic reports a suspected patient to the township"),
                "trajectory_hours": _HOURS("case trajectory published internally"),
                "close_contact_transfer_hours": _HOURS("close contacts transferred to quarantine"),
                "secondary_contact_transfer_hours": _HOURS("secondary contacts transferred"),
                "preliminary_report_hours": _HOURS("preliminary investigation report"),
                "contacts_identified_hours": _HOURS("contacts determined and located"),
                "investigation_complete_hours": _HOURS(
                    "investigation, contact determination, locating, transfer and quarantine all done"
                ),
                "regional_screening_hours": _HOURS("regional screening of the designated area"),
                "reminder_before_hours": _HOURS("a reminder is raised this long before any deadline"),
            },
            source=True,
        ),
        "routine_testing": Table(
            {
                "tests_per_week": MapOf(Num(min=0), "frequency code = tests per week"),
                "groups": ListOf(
                    Table(
                        {
                            "code": Str("group code", pattern=_CODE_RE),
                            **_LABELS,
                            "frequency": Str("a code of routine_testing.tests_per_week", pattern=_CODE_RE),
                        }
                    ),
                    "key groups and their frequency",
                    min_len=1,
                ),
                "key_institutions": Table(
                    {
                        "kinds": StrList("institution kinds", pattern=_CODE_RE, min_len=1),
                        "during": Str("when the rule applies", choices=("local_outbreak", "always")),
                        "daily_share": Num("share of people sampled each day", max=1),
                        "rolling": Bool("the share rotates so that everyone is covered"),
                    }
                ),
            },
            source=True,
        ),
        "bulletin": Table(
            {
                "format": Str("bulletin layout", choices=("hunan-2022",)),
                "period": Str("reporting period", choices=("0-24h",)),
                "base_date": DateStr("cumulative figures count from this date (a deployment setting)"),
            },
            source=True,
        ),
    }
)


# --------------------------------------------------------------------------------------------
# Cross-key rules (run once every key has the right type).
# --------------------------------------------------------------------------------------------


_SCHEME_LEVELS = {"levels": {"high", "medium", "low"}, "zones": {"sealed", "controlled", "precaution"}}


def _cross_checks(d: dict, err: Callable[[str, str], None]) -> None:
    if d["meta"]["schema_version"] != SCHEMA_VERSION:
        err("meta.schema_version", f"this Cordon reads schema version {SCHEMA_VERSION}")

    c = d["cases"]
    if c["incubation_days_min"] > c["incubation_days_max"]:
        err("cases.incubation_days_min", "greater than cases.incubation_days_max")

    def within(path: str, days: list[int], period: int, period_key: str) -> None:
        for i, day in enumerate(days):
            if day > period:
                err(f"{path}[{i}]", f"test day {day} is beyond the {period}-day period ({period_key})")

    close = d["contacts"]["close"]
    within("contacts.close.centralized_test_days", close["centralized_test_days"],
           close["centralized_days"], "contacts.close.centralized_days")
    within("contacts.close.home_test_days", close["home_test_days"], close["home_days"],
           "contacts.close.home_days")

    codes = [s["code"] for s in d["contacts"]["settings"]]
    sec = d["contacts"]["secondary"]
    within("contacts.secondary.test_days", sec["test_days"], sec["days"], "contacts.secondary.days")
    for i, s in enumerate(sec["settings"]):
        if s not in codes:
            err(f"contacts.secondary.settings[{i}]", f"{_show(s)} is not a code in contacts.settings")

    for code, v in d["contacts"]["vehicle_rules"].items():
        p = f"contacts.vehicle_rules.{code}"
        has_rows = v["rows_before"] or v["rows_after"] or v["same_row"]
        if v["scope"] == "rows" and not has_rows:
            err(f"{p}.scope", '"rows" needs rows_before, rows_after or same_row')
        if v["scope"] != "rows" and (v["rows_before"] or v["rows_after"]):
            err(f"{p}.rows_before", f'row counts only apply with scope = "rows", not {_show(v["scope"])}')

    fu = d["colocation"]["follow_up"]
    if fu["selected"] not in [o["code"] for o in fu["options"]]:
        err("colocation.follow_up.selected", f"{_show(fu['selected'])} is not the code of an option")

    dis = d["discharge"]
    within("discharge.home_test_days", dis["home_test_days"], dis["home_monitoring_days"],
           "discharge.home_monitoring_days")

    ra = d["risk_areas"]
    order, levels = ra["order"], ra["levels"]
    expected = _SCHEME_LEVELS[ra["scheme"]]
    for i, code in enumerate(order):
        if code not in expected:
            err(f"risk_areas.order[{i}]", f"{_show(code)} is not a level of scheme {_show(ra['scheme'])}")
        if code not in levels:
            err(f"risk_areas.levels.{code}", "missing: every code in risk_areas.order needs a table")
    for code in levels:
        if code not in order:
            err(f"risk_areas.levels.{code}", "not listed in risk_areas.order")
    for code, lv in levels.items():
        p = f"risk_areas.levels.{code}"
        rank = order.index(code) if code in order else -1
        target = lv["escalate_on_case_to"]
        if target is not None and (target not in order or order.index(target) >= rank):
            err(f"{p}.escalate_on_case_to", f"{_show(target)} is not a higher level in risk_areas.order")
        prev = rank
        for i, step in enumerate(lv["lift"]):
            sp = f"{p}.lift[{i}]"
            nxt = step["next_level"]
            if nxt != "lifted" and (nxt not in order or order.index(nxt) <= prev):
                reason = f'{_show(nxt)} is neither a lower level in risk_areas.order nor "lifted"'
                err(f"{sp}.next_level", reason)
            elif nxt != "lifted":
                prev = order.index(nxt)
            if step["when"] == "no_new_case" and step["days_without_new_case"] is None:
                err(f"{sp}.days_without_new_case", 'missing: required when when = "no_new_case"')
            days = step["days_without_new_case"]
            if step["screening_on_day"] is not None and days is not None and step["screening_on_day"] > days:
                err(f"{sp}.screening_on_day", f"day {step['screening_on_day']} is beyond the {days} days")
        # A level's steps may end at a lower level (high → medium → low): that level's own steps
        # then take over, so "lifted" is not required at the end of every list.
        tr = lv["travellers"]
        within(f"{p}.travellers.test_days", tr["test_days"], tr["days"], f"{p}.travellers.days")
        if not tr["test_days"] and tr["tests_in_period"] is None and tr["placement"] == "testing_only":
            err(f"{p}.travellers.tests_in_period", "missing: testing_only needs test_days or tests_in_period")
    tiers = [lv["tier"] for lv in levels.values()]
    if len(set(tiers)) != len(tiers):
        err("risk_areas.levels", "two levels share the same tier")

    sc = d["screening"]
    for i, size in enumerate(sc["allowed_pool_sizes"]):
        if size > sc["max_pool_size"]:
            err(f"screening.allowed_pool_sizes[{i}]", f"pool size {size} is above screening.max_pool_size "
                f"({sc['max_pool_size']})")
    kinds = set(sc["default_pool_size"]) - set(_META_KEYS)
    for need in ["quarantine_site", *order]:
        if need not in kinds:
            err(f"screening.default_pool_size.{need}",
                "missing: quarantine_site and every risk level need one")
    for kind in sorted(kinds):
        size = sc["default_pool_size"][kind]
        if size not in sc["allowed_pool_sizes"]:
            err(f"screening.default_pool_size.{kind}", f"{size} is not in screening.allowed_pool_sizes")
    for i, kind in enumerate(sc["household_tube_area_kinds"]):
        if kind not in kinds:
            err(f"screening.household_tube_area_kinds[{i}]", f"{_show(kind)} has no default_pool_size")
    if sc["people_per_site_min"] > sc["people_per_site_max"]:
        err("screening.people_per_site_min", "greater than screening.people_per_site_max")
    if sc["lab_repooling_allowed"]:
        err("screening.lab_repooling_allowed", "re-pooling tubes in the lab is not allowed (POLICY.md §4)")
    rules = sc["round_frequency"]
    for i, rule in enumerate(rules):
        need = {"case_in_last_rounds": "rounds", "case_in_last_days": "days"}.get(rule["when"])
        if need and rule[need] is None:
            err(f"screening.round_frequency[{i}].{need}",
                f"missing: required when when = {_show(rule['when'])}")
        if rule["when"] == "otherwise" and i != len(rules) - 1:
            err(f"screening.round_frequency[{i}].when", '"otherwise" must be the last rule')
    if rules and rules[-1]["when"] != "otherwise":
        err(f"screening.round_frequency[{len(rules) - 1}].when", 'the last rule must be "otherwise"')

    rt = d["routine_testing"]
    freqs = set(rt["tests_per_week"]) - set(_META_KEYS)
    for i, g in enumerate(rt["groups"]):
        if g["frequency"] not in freqs:
            err(f"routine_testing.groups[{i}].frequency",
                f"{_show(g['frequency'])} is not a code of routine_testing.tests_per_week")


def validate(raw: dict, file: str = "<policy>") -> dict:
    """Check a parsed profile against ``SCHEMA``; return it normalised (defaults filled).

    Raises PolicyError listing every problem. Cross-key rules run only once the types are right,
    so that one wrong type does not produce a cascade of follow-on messages.
    """
    errs: Errors = []
    data = SCHEMA.check(raw, "", errs)
    if not errs:
        _cross_checks(data, lambda k, r: errs.append((k, r)))
    if errs:
        raise PolicyError(file, errs)
    return data


def describe_schema() -> list[tuple[str, str, str]]:
    """``(key path, expected value, meaning)`` for every key of the schema: the schema reference."""
    rows: list[tuple[str, str, str]] = []

    def walk(spec: Spec, path: str) -> None:
        opt = "" if spec.required else " (optional)"
        if isinstance(spec, Table):
            if path:
                rows.append((path, "table" + opt, spec.doc))
            if spec.source_required:
                rows.append((_join(path, "source"), "string", "the document the figures come from"))
            for k, s in spec.fields.items():
                walk(s, _join(path, k))
        elif isinstance(spec, MapOf):
            rows.append((path, "table of codes" + opt, spec.doc))
            walk(spec.value, _join(path, "<code>"))
        elif isinstance(spec, ListOf):
            rows.append((path, "list of tables" + opt, spec.doc))
            walk(spec.item, path + "[]")
        else:
            rows.append((path, spec.describe() + opt, spec.doc))

    walk(SCHEMA, "")
    return rows


# --------------------------------------------------------------------------------------------
# Immutable access.
# --------------------------------------------------------------------------------------------


class FrozenList(tuple):
    """An immutable list of policy values; compares equal to a list or tuple with the same items."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list):
            other = tuple(other)
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__


def _freeze(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        return Section({k: _freeze(v, _join(path, k)) for k, v in value.items()}, path)
    if isinstance(value, list):
        return FrozenList(_freeze(v, _join(path, i)) for i, v in enumerate(value))
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, Section):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _split_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if token.startswith("["):
            parts.append(int(token[1:-1]))
        else:
            parts.append(int(token) if token.isdigit() else token)
    return parts


class Section:
    """A read-only table of a policy: ``s.key``, ``s["key"]``, ``s.get("a.b[0].c")``."""

    __slots__ = ("_data", "_path")

    def __init__(self, data: dict[str, Any], path: str = "") -> None:
        object.__setattr__(self, "_data", MappingProxyType(data))
        object.__setattr__(self, "_path", path)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"policy has no key {_join(self._path, name)!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("policy values are read-only: edit the profile file instead")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("policy values are read-only: edit the profile file instead")

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> Any:
        return self._data.keys()

    def values(self) -> Any:
        return self._data.values()

    def items(self) -> Any:
        return self._data.items()

    def get(self, path: str, default: Any = _MISSING) -> Any:
        """Value at a dotted path below this table (``"a.b[0].c"`` or ``"a.b.0.c"``).

        Unlike ``dict.get``, a missing key raises KeyError unless a default is given: a typo in a
        policy path must fail loudly rather than quietly turn into ``None``.
        """
        node: Any = self
        for part in _split_path(path):
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                if default is not _MISSING:
                    return default
                raise KeyError(f"policy has no key {_join(self._path, path)!r}") from None
        return node

    def as_dict(self) -> dict[str, Any]:
        """A plain, mutable deep copy (dicts and lists)."""
        return _thaw(self)

    def __repr__(self) -> str:
        return f"Section({self._path or '<root>'}: {', '.join(self._data)})"


class Policy(Section):
    """A validated, immutable profile. ``name`` is ``meta.name``; ``path`` the file it came from."""

    __slots__ = ("name", "path")

    def __init__(self, data: dict[str, Any], path: Path) -> None:
        frozen = _freeze(data, "")
        super().__init__(dict(frozen.items()))
        object.__setattr__(self, "name", data["meta"]["name"])
        object.__setattr__(self, "path", path)

    def _chain(self, path: str) -> list[tuple[Any, str | int | None]]:
        """The nodes from the root down to the value at ``path`` (each with the key leading to it)."""
        nodes: list[tuple[Any, str | int | None]] = [(self, None)]
        node: Any = self
        for part in _split_path(path):
            node = node[part]
            nodes.append((node, part))
        return nodes

    def source_of(self, path: str) -> str:
        """The document a value comes from: the nearest ``source`` at or above ``path``."""
        for node, _ in reversed(self._chain(path)):
            if isinstance(node, Section) and "source" in node:
                return node["source"]
        return ""

    def standing_of(self, path: str) -> str:
        """"national", "local" or "<place>-YYYY-MM" for the value at ``path``.

        Looked up as: the parent table's ``standings[key]``, then the nearest ``standing`` at or
        above the value, else "national" (the profiles transcribe national protocols).
        """
        chain = self._chain(path)
        if len(chain) >= 2:
            parent, key = chain[-2][0], chain[-1][1]
            if isinstance(parent, Section) and "standings" in parent and key in parent["standings"]:
                return parent["standings"][key]
        for node, _ in reversed(chain):
            if isinstance(node, Section) and "standing" in node:
                return node["standing"]
        return "national"

    def __repr__(self) -> str:
        return f"<Policy {self.name} from {self.path}>"


# --------------------------------------------------------------------------------------------
# Loading.
# --------------------------------------------------------------------------------------------

_cache: dict[Path, tuple[int, int, Policy]] = {}
_lock = threading.Lock()


def list_profiles() -> list[str]:
    """Names of the profiles shipped in ``cordon/policies`` (sorted)."""
    return sorted(p.stem for p in POLICY_DIR.glob("*.toml"))


def _resolve(name_or_path: str | Path) -> Path:
    if isinstance(name_or_path, Path):
        return name_or_path.expanduser().resolve()
    text = str(name_or_path).strip()
    if text.endswith(".toml") or "/" in text or os.sep in text:
        return Path(text).expanduser().resolve()
    if not _NAME_RE.match(text):
        raise PolicyError(f"{text}.toml", f"not a profile name or a path: {_show(text)}")
    path = POLICY_DIR / f"{text}.toml"
    if not path.is_file():
        raise PolicyError(
            f"{text}.toml", f"unknown policy profile {_show(text)}; available: {', '.join(list_profiles())}"
        )
    return path.resolve()


def load_policy(name_or_path: str | Path | None = None) -> Policy:
    """Load and validate a profile.

    ``name_or_path`` is a profile name (``"ncov-9"`` → ``cordon/policies/ncov-9.toml``), a path to
    a ``.toml`` file (an administrator's edited copy), or None for the active profile. The result
    is cached per (file, modification time), so an edited file is picked up on the next call.
    """
    if name_or_path is None:
        name_or_path = active_profile_name()
    path = _resolve(name_or_path)
    try:
        st = path.stat()
    except OSError as e:
        raise PolicyError(path.name, f"cannot read policy file {path}: {e.strerror or e}") from None
    with _lock:
        hit = _cache.get(path)
        if hit and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
            return hit[2]
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(path.name, f"not valid TOML: {e}") from None
    except OSError as e:
        raise PolicyError(path.name, f"cannot read policy file {path}: {e.strerror or e}") from None
    policy = Policy(validate(raw, path.name), path)
    with _lock:
        _cache[path] = (st.st_mtime_ns, st.st_size, policy)
    return policy


def active_profile_name() -> str:
    """The deployment's profile: Django setting ``CORDON_POLICY`` if settings are configured,
    else the environment variable ``CORDON_POLICY``, else ``"ncov-9"``. May be a name or a path."""
    try:
        from django.conf import settings
    except ImportError:
        settings = None
    if settings is not None:
        configured = settings.configured
        if not configured and os.environ.get("DJANGO_SETTINGS_MODULE"):
            try:
                value = getattr(settings, SETTING_NAME, None)
            except Exception:  # settings module broken or not importable: fall back to the env
                value = None
            else:
                if value:
                    return str(value)
        if configured:
            value = getattr(settings, SETTING_NAME, None)
            if value:
                return str(value)
    return os.environ.get(SETTING_NAME) or DEFAULT_PROFILE


def active_policy() -> Policy:
    """The deployment's profile (see :func:`active_profile_name`)."""
    return load_policy(active_profile_name())


def validate_all_profiles() -> None:
    """Start-up check: every shipped profile and the active one load; raise one PolicyError if not."""
    errors: list[tuple[str, str]] = []
    targets: list[str | Path] = list(list_profiles())
    active = active_profile_name()
    if active not in targets:
        targets.append(active)
    for target in targets:
        try:
            load_policy(target)
        except PolicyError as e:
            errors.extend((f"{e.file}: {k}" if k else e.file, r) for k, r in e.errors)
    if errors:
        raise PolicyError("policy profiles", errors)


# --------------------------------------------------------------------------------------------
# Pure policy arithmetic.
# --------------------------------------------------------------------------------------------

SCHEDULE_KINDS = (
    "close_contact",
    "secondary_contact",
    "traveller_high",
    "traveller_medium",
    "traveller_low",
    "home_monitoring_after_discharge",
)


@dataclass(frozen=True)
class Phase:
    """One stretch of management: days ``first_day``..``last_day`` inclusive."""

    kind: str
    first_day: date
    last_day: date
    test_days: tuple[int, ...]
    test_dates: tuple[date, ...]

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1


@dataclass(frozen=True)
class Schedule:
    """What a policy prescribes for one person, as calendar dates.

    ``clock_start`` is day 0 (last exposure, departure, discharge); day 1 is the next day.
    ``end_date`` is the last day under management (inclusive): release follows it, once the last
    test is negative. ``tests_in_period`` is set when the rule is "N tests anywhere within the
    period" rather than fixed days (e.g. low-risk travellers, 2 tests in 3 days).
    """

    kind: str
    policy_name: str
    clock_start: date
    phases: tuple[Phase, ...]
    tests_in_period: int | None = None

    @property
    def end_date(self) -> date:
        return self.phases[-1].last_day if self.phases else self.clock_start

    @property
    def test_dates(self) -> tuple[date, ...]:
        return tuple(d for ph in self.phases for d in ph.test_dates)

    @property
    def centralized(self) -> Phase | None:
        return next((ph for ph in self.phases if ph.kind == "centralized_quarantine"), None)

    @property
    def home(self) -> Phase | None:
        return next((ph for ph in self.phases if ph.kind != "centralized_quarantine"), None)

    @property
    def centralized_end(self) -> date | None:
        ph = self.centralized
        return ph.last_day if ph else None


def _phases(start: date, parts: list[tuple[str, int, tuple[int, ...]]]) -> tuple[Phase, ...]:
    out: list[Phase] = []
    offset = 0  # days already used by earlier phases
    for kind, days, test_days in parts:
        if days <= 0:
            continue
        first = start + timedelta(days=offset + 1)
        last = start + timedelta(days=offset + days)
        dates = tuple(start + timedelta(days=offset + d) for d in test_days)
        out.append(Phase(kind, first, last, tuple(test_days), dates))
        offset += days
    return tuple(out)


def risk_level(policy: Policy, code_or_tier: str) -> tuple[str, Section]:
    """The level ``(code, table)`` for a level code ("sealed") or a tier ("high").

    Lets code written against high/medium/low work under the zone scheme too.
    """
    levels = policy.risk_areas.levels
    if code_or_tier in levels:
        return code_or_tier, levels[code_or_tier]
    for code, lv in levels.items():
        if lv.tier == code_or_tier:
            return code, lv
    raise PolicyError(
        policy.path.name,
        f"no risk level or tier {_show(code_or_tier)} in this profile (levels: {', '.join(levels)})",
        key=f"risk_areas.levels.{code_or_tier}",
    )


def quarantine_schedule(policy: Policy, kind: str, start_date: date) -> Schedule:
    """Dates of management and tests for one person under ``policy``.

    Day counting (9th-edition plan: "7 days counted from the last exposure"): ``start_date`` is
    the clock-start event — last exposure for contacts, the day they left the area for
    travellers, discharge for post-discharge monitoring — and is day 0. Day 1 is the next
    calendar day. So under ncov-9 a close contact last exposed on 2022-06-01 is in centralized
    quarantine 2022-06-02..2022-06-08 (tests on 06-02, 06-03, 06-04, 06-06, 06-08), then in home
    health monitoring 2022-06-09..2022-06-11 (test on day 3 of that phase, 06-11). Home-phase test
    days count from the home phase's own day 1.

    ``kind``: close_contact, secondary_contact, traveller_<level code or tier> (traveller_high,
    traveller_medium, traveller_low; traveller_sealed etc. under the zone scheme),
    home_monitoring_after_discharge. Raises PolicyError when the profile has no such rule (e.g.
    secondary contacts under ncov-2022-11, medium-risk travellers when there is no medium level).
    """
    if isinstance(start_date, datetime) or not isinstance(start_date, date):
        raise TypeError("start_date must be a calendar date (in the deployment's zone), not a datetime")
    file = policy.path.name
    if kind == "close_contact":
        c = policy.contacts.close
        parts = [
            ("centralized_quarantine", c.centralized_days, tuple(c.centralized_test_days)),
            (c.home_kind, c.home_days, tuple(c.home_test_days)),
        ]
        return Schedule(kind, policy.name, start_date, _phases(start_date, parts))
    if kind == "secondary_contact":
        s = policy.contacts.secondary
        if not s.enabled:
            raise PolicyError(file, "secondary contacts are not determined under this profile",
                              key="contacts.secondary.enabled")
        parts = [(s.management, s.days, tuple(s.test_days))]
        return Schedule(kind, policy.name, start_date, _phases(start_date, parts))
    if kind == "home_monitoring_after_discharge":
        d = policy.discharge
        parts = [("home_health_monitoring", d.home_monitoring_days, tuple(d.home_test_days))]
        return Schedule(kind, policy.name, start_date, _phases(start_date, parts))
    if kind.startswith("traveller_"):
        _, lv = risk_level(policy, kind.removeprefix("traveller_"))
        t = lv.travellers
        parts = [(t.placement, t.days, tuple(t.test_days))]
        return Schedule(kind, policy.name, start_date, _phases(start_date, parts), t.tests_in_period)
    raise ValueError(f"unknown schedule kind {kind!r}; expected one of {', '.join(SCHEDULE_KINDS)}")


def lookback_start(policy: Policy, onset_or_first_positive: date) -> date:
    """First day whose contacts count: symptom onset (or, if asymptomatic, the first positive
    sample) minus ``contacts.close.lookback_days`` (2 days in the 8th edition, 4 in the 9th)."""
    return onset_or_first_positive - timedelta(days=policy.contacts.close.lookback_days)


def colocation_follow_up(policy: Policy) -> Section:
    """The follow-up option selected for space-time companions (colocation.follow_up.selected)."""
    fu = policy.colocation.follow_up
    return next(o for o in fu.options if o.code == fu.selected)


# --------------------------------------------------------------------------------------------
# Display.
# --------------------------------------------------------------------------------------------


def _rows(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, Section):
        for k, v in node.items():
            if k in _META_KEYS:
                continue
            yield from _rows(v, _join(path, k))
    elif isinstance(node, tuple) and any(isinstance(v, Section) for v in node):
        for i, v in enumerate(node):
            yield from _rows(v, _join(path, i))
    else:
        yield path, node


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def format_policy(policy: Policy) -> Any:
    """A rich Table of every key of ``policy`` with its value, standing and source.

    The source is printed where it changes from the row above, to keep the table readable.
    """
    from rich.table import Table as RichTable
    from rich.text import Text

    meta = policy.meta
    table = RichTable(
        title=f"{meta.title_zh} — {meta.title_en}",
        caption=(
            f"profile {policy.name} · edition {meta.edition} · effective {meta.effective_date}"
            f" · {policy.path}"
        ),
        show_lines=False,
    )
    table.add_column("key", style="cyan", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("standing")
    table.add_column("source", overflow="fold", style="dim")
    last_source = None
    for path, value in _rows(policy, ""):
        source = policy.source_of(path)
        standing = policy.standing_of(path)
        table.add_row(  # Text(): values such as "[1, 2]" must not be read as rich markup
            Text(path),
            Text(_fmt(value)),
            Text(standing, style="yellow" if standing != "national" else ""),
            Text(source if source != last_source else ""),
        )
        last_source = source
    return table
