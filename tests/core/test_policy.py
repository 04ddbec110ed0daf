"""Policy profiles: the three shipped profiles, the schema checks, and the schedule arithmetic.

Runs without Django configured: ``pytest -p no:django tests/core/test_policy.py``.
"""

from __future__ import annotations

import os
import types
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from cordon.core.policy import (
    POLICY_DIR,
    FrozenList,
    Policy,
    PolicyError,
    active_policy,
    active_profile_name,
    colocation_follow_up,
    describe_schema,
    format_policy,
    list_profiles,
    load_policy,
    lookback_start,
    quarantine_schedule,
    risk_level,
    validate_all_profiles,
)

PROFILES = ["ncov-9", "ncov-8", "ncov-2022-11"]
SECTIONS = [
    "meta", "cases", "contacts", "colocation", "quarantine_site", "discharge", "risk_areas",
    "screening", "deadlines", "routine_testing", "bulletin",
]


def d(text: str) -> date:
    return date.fromisoformat(text)


# ------------------------------------------------------------------------------------------------
# The shipped profiles


def test_list_profiles() -> None:
    names = list_profiles()
    assert set(PROFILES) <= set(names)
    assert names == sorted(names)


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_loads_and_validates(name: str) -> None:
    p = load_policy(name)
    assert isinstance(p, Policy)
    assert p.name == name == p.meta.name
    assert p.path == (POLICY_DIR / f"{name}.toml").resolve()
    for section in SECTIONS:
        assert p[section].source.strip(), f"{section} has no source"


def test_validate_all_profiles_passes() -> None:
    validate_all_profiles()


def test_default_profile_is_ninth_edition(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_django(monkeypatch)
    monkeypatch.delenv("CORDON_POLICY", raising=False)
    assert active_profile_name() == "ncov-9"
    assert active_policy() is load_policy("ncov-9")
    assert load_policy() is load_policy("ncov-9")


@pytest.mark.parametrize(
    ("name", "lookback", "central", "central_tests", "home_kind", "home", "home_tests"),
    [
        ("ncov-9", 4, 7, [1, 2, 3, 5, 7], "home_health_monitoring", 3, [3]),
        ("ncov-8", 2, 14, [1, 4, 7, 14], "home_health_monitoring", 7, [3]),
        ("ncov-2022-11", 4, 5, [1, 2, 3, 5], "home_isolation", 3, [1, 3]),
    ],
)
def test_close_contact_numbers(
    name: str, lookback: int, central: int, central_tests: list[int], home_kind: str, home: int,
    home_tests: list[int],
) -> None:
    c = load_policy(name).contacts.close
    assert c.lookback_days == lookback
    assert c.centralized_days == central
    assert c.centralized_test_days == central_tests
    assert c.home_kind == home_kind
    assert c.home_days == home
    assert c.home_test_days == home_tests
    assert c.clock_starts == "last_exposure"


def test_secondary_contacts_per_profile() -> None:
    s9 = load_policy("ncov-9").contacts.secondary
    assert s9.enabled is True
    assert (s9.management, s9.days, s9.test_days) == ("home_isolation", 7, [1, 4, 7])
    assert s9.release_requires_close_contact_negative_tests == 2
    assert s9.upgrade_if_close_contact_positive_within_tests == 2
    assert set(s9.settings) == {"household", "shared_meal_entertainment", "shared_workplace"}
    s8 = load_policy("ncov-8").contacts.secondary
    assert (s8.enabled, s8.management, s8.days) == (True, "centralized_quarantine", 7)
    assert load_policy("ncov-2022-11").contacts.secondary.enabled is False


def test_contact_settings_and_vehicles() -> None:
    p = load_policy("ncov-9")
    codes = [s.code for s in p.contacts.settings]
    assert codes == [
        "household", "caregiver_clinical", "shared_workplace", "shared_meal_entertainment", "visitor",
        "same_vehicle", "contaminated_environment",
    ]
    assert all(s.zh and s.en for s in p.contacts.settings)
    v = p.contacts.vehicle_rules
    assert (v.aircraft.rows_before, v.aircraft.rows_after, v.aircraft.same_row, v.aircraft.include_crew) == (
        3, 3, True, True)
    assert v.train_sealed.scope == "carriage"
    assert v.coach_sealed.scope == "all"
    assert (v.bus_ventilated.rows_before, v.bus_ventilated.rows_after) == (3, 3)
    assert v.ship.scope == "cabin"
    assert v.ship.rows_before == 0  # default filled in


def test_colocation() -> None:
    p = load_policy("ncov-9")
    c = p.colocation
    assert (c.cell_m, c.min_minutes, c.cell_total_hours, c.lookback_days) == (800, 10, 30, 14)
    assert (c.min_overlap_minutes, c.default_stay_minutes, c.window_days) == (10, 30, 14)
    assert p.standing_of("colocation.cell_m") == "local"
    opts = {o.code: o for o in c.follow_up.options}
    assert (opts["chengdu"].tests, opts["chengdu"].within_days, opts["chengdu"].min_hours_apart) == (2, 3, 24)
    assert (opts["changsha"].tests, opts["changsha"].within_days) == (3, 7)
    assert colocation_follow_up(p).code == c.follow_up.selected == "chengdu"
    assert p.source_of("colocation.follow_up.options[1].tests") == "Changsha, local practice, 2021"


def test_quarantine_site_discharge_cases() -> None:
    p = load_policy("ncov-9")
    q = p.quarantine_site
    assert (q.same_floor, q.restart_scope_floors_above, q.restart_scope_floors_below) == (True, 1, 1)
    assert q.environment_positive_restarts == "site"
    assert q.release_requires_environment_negative and q.makeup_missed_tests
    dc = p.discharge
    assert (dc.consecutive_negative_tests, dc.min_hours_apart, dc.ct_threshold) == (2, 24, 35)
    assert dc.genes == ["N", "ORF1ab"]
    assert (dc.home_monitoring_days, dc.home_test_days, dc.relapse_ct_below) == (7, [7], 35)
    assert dc.relapse_rezones_building is False
    assert (p.cases.incubation_days_min, p.cases.incubation_days_max) == (2, 4)
    assert p.cases.arrival_positive_ct_below is None
    assert load_policy("ncov-2022-11").cases.arrival_positive_ct_below == 35


def test_risk_areas_ninth() -> None:
    ra = load_policy("ncov-9").risk_areas
    assert ra.scheme == "levels"
    assert ra.order == ["high", "medium", "low"]
    high = ra.levels.high
    assert high.regime_zh == "足不出户、上门服务"
    assert [(s.days_without_new_case, s.screening_on_day, s.next_level) for s in high.lift] == [
        (7, 7, "medium"), (3, None, "low")]
    assert (high.travellers.placement, high.travellers.days, high.travellers.test_days) == (
        "centralized_quarantine", 7, [1, 2, 3, 5, 7])
    med = ra.levels.medium
    assert [(s.days_without_new_case, s.screening_on_day, s.next_level) for s in med.lift] == [(7, 7, "low")]
    assert (med.travellers.placement, med.travellers.test_days) == ("home_quarantine", [1, 4, 7])
    low = ra.levels.low
    assert low.lift[0].when == "all_higher_lifted" and low.lift[0].next_level == "lifted"
    assert (low.travellers.tests_in_period, low.travellers.days) == (2, 3)
    assert low.leave_city_negative_test_hours == 48


def test_risk_areas_eighth_zone_scheme() -> None:
    ra = load_policy("ncov-8").risk_areas
    assert ra.scheme == "zones"
    assert ra.order == ["sealed", "controlled", "precaution"]
    for code in ("sealed", "controlled"):
        step = ra.levels[code].lift[0]
        assert step.days_without_new_case == 14
        assert step.last_close_contact_days == 14 and step.last_close_contact_negative
        assert step.all_residents_negative_within_days == 2
        assert step.next_level == "lifted"
    assert ra.levels.controlled.escalate_on_case_to == "sealed"
    assert ra.levels.sealed.escalate_on_case_to is None
    assert ra.levels.precaution.lift[0].when == "all_higher_lifted"


def test_risk_areas_november_2022() -> None:
    ra = load_policy("ncov-2022-11").risk_areas
    assert ra.order == ["high", "low"] and "medium" not in ra.levels
    assert ra.drawn_by == "building"
    step = ra.levels.high.lift[0]
    assert (step.days_without_new_case, step.next_level) == (5, "low")
    t = ra.levels.high.travellers
    assert (t.placement, t.days, t.test_days) == ("home_isolation", 7, [1, 3, 5, 7])


@pytest.mark.parametrize(
    ("name", "defaults"),
    [
        ("ncov-9", {"quarantine_site": 1, "high": 1, "medium": 10, "low": 20}),
        ("ncov-8", {"quarantine_site": 1, "sealed": 1, "controlled": 10, "precaution": 20}),
        ("ncov-2022-11", {"quarantine_site": 1, "high": 1, "low": 20}),
    ],
)
def test_screening_pools(name: str, defaults: dict[str, int]) -> None:
    p = load_policy(name)
    sc = p.screening
    assert sc.allowed_pool_sizes == [1, 5, 10, 20]
    assert sc.max_pool_size == 20
    assert {k: v for k, v in sc.default_pool_size.items() if k not in ("source", "standing")} == defaults
    assert p.standing_of("screening.default_pool_size.low" if "low" in defaults else
                         "screening.default_pool_size.precaution") == "local"
    assert sc.household_tube_allowed is True


def test_screening_numbers() -> None:
    p = load_policy("ncov-9")
    sc = p.screening
    assert (sc.people_per_site_min, sc.people_per_site_max, sc.people_per_sampler) == (2000, 3000, 360)
    assert sc.min_rounds_unknown_source == 3
    assert sc.single_to_10_after_negative_rounds == 3
    assert p.standing_of("screening.single_to_10_after_negative_rounds") == "local"
    assert p.standing_of("screening.people_per_sampler") == "national"
    assert [(r.when, r.interval_days) for r in sc.round_frequency] == [
        ("quarantine_site", 1), ("case_in_last_rounds", 1), ("case_in_last_days", 2), ("otherwise", 5)]
    assert sc.round_frequency[1].rounds == 3 and sc.round_frequency[2].days == 14
    t = sc.targets
    assert (t.city_designated_area_hours, t.sealed_first_round_hours, t.controlled_first_round_hours) == (
        24, 24, 48)
    assert (sc.turnaround_hours.pooled, sc.turnaround_hours.single) == (24, 6)
    assert p.standing_of("screening.turnaround_hours.single") == "local"
    assert sc.positive_pool.hold_and_resample_hours == 4
    assert p.standing_of("screening.positive_pool.hold_and_resample_hours") == "local"
    assert p.standing_of("screening.positive_pool.retest_pool_size") == "national"
    assert "tube_barcode" in sc.registration.fields


@pytest.mark.parametrize("name", PROFILES)
def test_deadlines(name: str) -> None:
    p = load_policy(name)
    dl = p.deadlines
    expected = {
        "direct_report_hours": (2, "national"),
        "cdc_verification_hours": (2, "national"),
        "village_report_hours": (2, "national"),
        "trajectory_hours": (4, "local"),
        "close_contact_transfer_hours": (8, "local"),
        "secondary_contact_transfer_hours": (12, "local"),
        "preliminary_report_hours": (24, "local"),
        "contacts_identified_hours": (24, "beijing-2022-05"),
        "investigation_complete_hours": (24, "beijing-2022-05"),
        "regional_screening_hours": (24, "national"),
    }
    for key, (hours, standing) in expected.items():
        assert dl[key] == hours, key
        assert p.standing_of(f"deadlines.{key}") == standing, key
    assert dl.reminder_before_hours > 0
    assert p.standing_of("deadlines.reminder_before_hours") == "local"


def test_routine_testing_and_bulletin() -> None:
    p = load_policy("ncov-9")
    rt = p.routine_testing
    by_freq = {g.code: g.frequency for g in rt.groups}
    assert by_freq["fever_clinic_staff"] == "daily"
    assert by_freq["couriers_delivery"] == "twice_weekly"
    assert rt.tests_per_week.twice_weekly == 2
    assert rt.key_institutions.daily_share == 0.2 and rt.key_institutions.rolling
    assert "psychiatric_hospital" in rt.key_institutions.kinds
    assert p.bulletin.format == "hunan-2022"
    assert p.bulletin.base_date == "2022-01-01"


# ------------------------------------------------------------------------------------------------
# Access: immutable, dotted get, as_dict


def test_policy_is_immutable() -> None:
    p = load_policy("ncov-9")
    with pytest.raises(AttributeError):
        p.contacts.close.centralized_days = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.deadlines = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.contacts.close._data["centralized_days"] = 3  # type: ignore[index]
    days = p.contacts.close.centralized_test_days
    assert isinstance(days, FrozenList) and isinstance(days, tuple)
    assert days == [1, 2, 3, 5, 7] and days == (1, 2, 3, 5, 7)
    with pytest.raises(AttributeError):
        days.append(9)  # type: ignore[attr-defined]


def test_get_and_as_dict() -> None:
    p = load_policy("ncov-9")
    assert p.get("contacts.close.centralized_days") == 7
    assert p.get("deadlines.trajectory_hours") == 4
    assert p.get("contacts.settings[0].code") == p.get("contacts.settings.0.code") == "household"
    assert p.contacts.get("close.lookback_days") == 4
    with pytest.raises(KeyError, match=r"contacts\.close\.centralized_dayz"):
        p.get("contacts.close.centralized_dayz")
    assert p.get("contacts.close.nope", None) is None
    with pytest.raises(AttributeError, match=r"contacts\.close\.nope"):
        _ = p.contacts.close.nope
    data = p.as_dict()
    assert data["contacts"]["close"]["centralized_test_days"] == [1, 2, 3, 5, 7]
    data["contacts"]["close"]["centralized_days"] = 99  # a copy: the policy is untouched
    assert p.contacts.close.centralized_days == 7
    assert load_policy("ncov-9").as_dict() == p.as_dict()


# ------------------------------------------------------------------------------------------------
# Loading from a path, caching, the active profile


def _copy(tmp_path: Path, text: str | None = None, name: str = "ncov-9.toml") -> Path:
    target = tmp_path / name
    target.write_text(text if text is not None else (POLICY_DIR / "ncov-9.toml").read_text("utf-8"), "utf-8")
    return target


def _edit(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    text = (POLICY_DIR / "ncov-9.toml").read_text("utf-8")
    assert text.count(old) == count, f"fixture text not found exactly {count}x: {old!r}"
    return _copy(tmp_path, text.replace(old, new))


def test_load_from_explicit_path(tmp_path: Path) -> None:
    path = _edit(tmp_path, "trajectory_hours = 4 ", "trajectory_hours = 6 ")
    p = load_policy(path)
    assert p.deadlines.trajectory_hours == 6
    assert p.path == path.resolve()
    assert load_policy(str(path)).deadlines.trajectory_hours == 6
    assert load_policy("ncov-9").deadlines.trajectory_hours == 4


def test_cache_per_path_and_mtime(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    first = load_policy(path)
    assert load_policy(path) is first
    text = path.read_text("utf-8").replace("trajectory_hours = 4 ", "trajectory_hours = 5 ")
    path.write_text(text, "utf-8")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    second = load_policy(path)
    assert second is not first
    assert second.deadlines.trajectory_hours == 5


def _no_django(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the loader see Django settings as not configured."""
    import django.conf

    monkeypatch.setattr(django.conf, "settings", types.SimpleNamespace(configured=False))
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)


def test_active_policy_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_django(monkeypatch)
    monkeypatch.setenv("CORDON_POLICY", "ncov-8")
    assert active_policy().name == "ncov-8"
    path = _edit(tmp_path, 'name = "ncov-9"', 'name = "province-x"')
    monkeypatch.setenv("CORDON_POLICY", str(path))
    assert active_policy().name == "province-x"


def test_active_policy_from_django_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import django.conf

    fake = types.SimpleNamespace(configured=True, CORDON_POLICY="ncov-2022-11")
    monkeypatch.setattr(django.conf, "settings", fake)
    monkeypatch.setenv("CORDON_POLICY", "ncov-8")  # the setting wins over the environment
    assert active_profile_name() == "ncov-2022-11"
    assert active_policy().contacts.secondary.enabled is False


def test_unknown_profile_name_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"ncov-99\.toml: unknown policy profile.*ncov-9"):
        load_policy("ncov-99")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.toml")


def test_validate_all_profiles_reports_bad_active(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_django(monkeypatch)
    path = _edit(tmp_path, "centralized_days = 7 ", "centralized_days = -1 ")
    monkeypatch.setenv("CORDON_POLICY", str(path))
    with pytest.raises(PolicyError, match=r"contacts\.close\.centralized_days"):
        validate_all_profiles()


# ------------------------------------------------------------------------------------------------
# Corrupted copies are refused with the key path


def _error(path: Path) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    return info.value


def test_wrong_type(tmp_path: Path) -> None:
    err = _error(_edit(tmp_path, "centralized_days = 7 ", 'centralized_days = "seven" '))
    assert (
        'ncov-9.toml: contacts.close.centralized_days: expected a non-negative integer, got "seven"'
        in str(err)
    )
    assert isinstance(err, ValueError)
    assert err.file == "ncov-9.toml"


def test_bool_is_not_an_integer(tmp_path: Path) -> None:
    err = _error(_edit(tmp_path, "trajectory_hours = 4 ", "trajectory_hours = true "))
    assert "deadlines.trajectory_hours: expected a non-negative number, got true" in str(err)


def test_unknown_key(tmp_path: Path) -> None:
    err = _error(_edit(tmp_path, "home_days = 3\n", "home_days = 3\nhome_dayz = 3\n"))
    assert "ncov-9.toml: contacts.close.home_dayz: unknown key" in str(err)


def test_unknown_section(tmp_path: Path) -> None:
    text = (POLICY_DIR / "ncov-9.toml").read_text("utf-8") + "\n[vaccination]\nsource = \"x\"\n"
    err = _error(_copy(tmp_path, text))
    assert "vaccination: unknown key" in str(err)


def test_missing_key(tmp_path: Path) -> None:
    err = _error(_edit(tmp_path, "trajectory_hours = 4 ", "# removed "))
    assert "ncov-9.toml: deadlines.trajectory_hours: missing required key" in str(err)


def test_missing_source(tmp_path: Path) -> None:
    err = _error(_edit(tmp_path, 'source = "湖南省卫生健康委员会 daily epidemic bulletin format, 2022"', ""))
    assert "bulletin.source: missing required key" in str(err)


def test_test_day_beyond_period(tmp_path: Path) -> None:
    old = "centralized_test_days = [1, 2, 3, 5, 7]"
    err = _error(_edit(tmp_path, old, old.replace("7]", "8]")))
    assert "contacts.close.centralized_test_days[4]: test day 8 is beyond the 7-day period" in str(err)


def test_test_days_must_increase(tmp_path: Path) -> None:
    err = _error(_edit(tmp_path, "home_test_days = [3]", "home_test_days = [3, 1]"))
    expected = "contacts.close.home_test_days: expected an increasing list of positive integers, got [3, 1]"
    assert expected in str(err)


def test_test_days_positive(tmp_path: Path) -> None:
    err = _error(_edit(tmp_path, "test_days = [1, 4, 7]", "test_days = [0, 4, 7]", count=2))
    assert "contacts.secondary.test_days[0]: expected a positive integer, got 0" in str(err)


def test_pool_size_30_refused(tmp_path: Path) -> None:
    old = "allowed_pool_sizes = [1, 5, 10, 20]"
    err = _error(_edit(tmp_path, old, old.replace("20]", "20, 30]")))
    assert "screening.allowed_pool_sizes[4]: expected an integer from 1 to 20, got 30" in str(err)
    err = _error(_edit(tmp_path, "max_pool_size = 20 ", "max_pool_size = 30 "))
    assert "screening.max_pool_size: expected an integer from 1 to 20, got 30" in str(err)
    err = _error(_edit(tmp_path, "low = 20", "low = 30"))
    assert "screening.default_pool_size.low: expected an integer from 1 to 20, got 30" in str(err)


def test_pool_sizes_consistent_with_max(tmp_path: Path) -> None:
    err = _error(_edit(tmp_path, "max_pool_size = 20 ", "max_pool_size = 10 "))
    assert "screening.allowed_pool_sizes[3]: pool size 20 is above screening.max_pool_size (10)" in str(err)
    err = _error(_edit(tmp_path, "medium = 10", "medium = 8"))
    assert "screening.default_pool_size.medium: 8 is not in screening.allowed_pool_sizes" in str(err)


def test_all_errors_reported_at_once(tmp_path: Path) -> None:
    text = (POLICY_DIR / "ncov-9.toml").read_text("utf-8")
    text = text.replace("centralized_days = 7 ", 'centralized_days = "seven" ')
    text = text.replace("trajectory_hours = 4 ", "# removed ")
    text = text.replace("max_pool_size = 20 ", "max_pool_size = 30 ")
    err = _error(_copy(tmp_path, text))
    wanted = {"contacts.close.centralized_days", "deadlines.trajectory_hours", "screening.max_pool_size"}
    assert wanted <= set(err.keys)
    assert len(str(err).splitlines()) == len(err.errors) >= 3
    assert all(line.startswith("ncov-9.toml: ") for line in str(err).splitlines())


@pytest.mark.parametrize(
    ("old", "new", "count", "key"),
    [
        ('selected = "chengdu"', 'selected = "wuhan"', 1, "colocation.follow_up.selected"),
        ('next_level = "medium"', 'next_level = "moderate"', 1, "risk_areas.levels.high.lift[0].next_level"),
        ('order = ["high", "medium", "low"]', 'order = ["high", "low"]', 1, "risk_areas.levels.medium"),
        ('home_kind = "home_health_monitoring"', 'home_kind = "hotel"', 1, "contacts.close.home_kind"),
        ('trajectory_hours = "local"', 'trajectory_hours = "sometimes"', 1,
         "deadlines.standings.trajectory_hours"),
        ('reminder_before_hours = "local"', 'reminder_before_hourz = "local"', 1,
         "deadlines.standings.reminder_before_hourz"),
        ('frequency = "daily"', 'frequency = "hourly"', 3, "routine_testing.groups[0].frequency"),
        ('effective_date = "2022-06-27"', 'effective_date = "2022-13-01"', 1, "meta.effective_date"),
        ("lab_repooling_allowed = false", "lab_repooling_allowed = true", 1,
         "screening.lab_repooling_allowed"),
        ('daily_share = 0.2', 'daily_share = 1.5', 1, "routine_testing.key_institutions.daily_share"),
        ('when = "otherwise"', 'when = "case_in_last_days"', 1, "screening.round_frequency[3].days"),
        ('settings = ["household", "shared_meal_entertainment", "shared_workplace"]',
         'settings = ["household", "karaoke"]', 1, "contacts.secondary.settings[1]"),
        ("incubation_days_min = 2", "incubation_days_min = 5", 1, "cases.incubation_days_min"),
        ("schema_version = 1", "schema_version = 2", 1, "meta.schema_version"),
    ],
)
def test_cross_key_rules(tmp_path: Path, old: str, new: str, count: int, key: str) -> None:
    err = _error(_edit(tmp_path, old, new, count))
    assert key in err.keys, str(err)


def test_invalid_toml(tmp_path: Path) -> None:
    err = _error(_copy(tmp_path, "[meta\nname = 1\n"))
    assert str(err).startswith("ncov-9.toml: not valid TOML")


# ------------------------------------------------------------------------------------------------
# Schedule arithmetic: day 0 = clock-start event (last exposure, departure, discharge)


def test_close_contact_schedule_ninth() -> None:
    s = quarantine_schedule(load_policy("ncov-9"), "close_contact", d("2022-06-01"))
    assert s.clock_start == d("2022-06-01")
    c, h = s.centralized, s.home
    assert c is not None and h is not None
    assert (c.first_day, c.last_day, c.days) == (d("2022-06-02"), d("2022-06-08"), 7)
    assert c.test_dates == tuple(d(x) for x in ("2022-06-02", "2022-06-03", "2022-06-04", "2022-06-06",
                                                "2022-06-08"))
    assert (h.kind, h.first_day, h.last_day) == ("home_health_monitoring", d("2022-06-09"), d("2022-06-11"))
    assert h.test_dates == (d("2022-06-11"),)
    assert s.end_date == d("2022-06-11") and s.centralized_end == d("2022-06-08")
    assert len(s.test_dates) == 6
    assert s.tests_in_period is None


def test_close_contact_schedule_eighth() -> None:
    s = quarantine_schedule(load_policy("ncov-8"), "close_contact", d("2021-06-01"))
    c, h = s.centralized, s.home
    assert c is not None and h is not None
    assert (c.first_day, c.last_day) == (d("2021-06-02"), d("2021-06-15"))
    assert c.test_dates == (d("2021-06-02"), d("2021-06-05"), d("2021-06-08"), d("2021-06-15"))
    assert (h.first_day, h.last_day, h.days) == (d("2021-06-16"), d("2021-06-22"), 7)
    assert s.end_date == d("2021-06-22")


def test_close_contact_schedule_november_2022() -> None:
    s = quarantine_schedule(load_policy("ncov-2022-11"), "close_contact", d("2022-11-30"))
    c, h = s.centralized, s.home
    assert c is not None and h is not None
    assert c.test_dates == (d("2022-12-01"), d("2022-12-02"), d("2022-12-03"), d("2022-12-05"))
    assert (h.kind, h.first_day, h.last_day) == ("home_isolation", d("2022-12-06"), d("2022-12-08"))
    assert h.test_dates == (d("2022-12-06"), d("2022-12-08"))
    assert s.end_date == d("2022-12-08")


def test_secondary_contact_schedules() -> None:
    s = quarantine_schedule(load_policy("ncov-9"), "secondary_contact", d("2022-06-01"))
    assert [ph.kind for ph in s.phases] == ["home_isolation"]
    assert s.centralized is None
    assert s.test_dates == (d("2022-06-02"), d("2022-06-05"), d("2022-06-08"))
    assert s.end_date == d("2022-06-08")
    s8 = quarantine_schedule(load_policy("ncov-8"), "secondary_contact", d("2021-06-01"))
    assert s8.centralized is not None and s8.end_date == d("2021-06-08")
    with pytest.raises(PolicyError, match=r"contacts\.secondary\.enabled"):
        quarantine_schedule(load_policy("ncov-2022-11"), "secondary_contact", d("2022-12-01"))


def test_traveller_schedules() -> None:
    p9 = load_policy("ncov-9")
    high = quarantine_schedule(p9, "traveller_high", d("2022-07-01"))
    assert high.phases[0].kind == "centralized_quarantine"
    assert [x.day for x in high.test_dates] == [2, 3, 4, 6, 8]
    med = quarantine_schedule(p9, "traveller_medium", d("2022-07-01"))
    assert med.phases[0].kind == "home_quarantine" and [x.day for x in med.test_dates] == [2, 5, 8]
    low = quarantine_schedule(p9, "traveller_low", d("2022-07-01"))
    assert low.tests_in_period == 2 and low.test_dates == ()
    assert (low.phases[0].first_day, low.end_date) == (d("2022-07-02"), d("2022-07-04"))

    p11 = load_policy("ncov-2022-11")
    h11 = quarantine_schedule(p11, "traveller_high", d("2022-11-20"))
    assert h11.phases[0].kind == "home_isolation"
    assert [x.day for x in h11.test_dates] == [21, 23, 25, 27]
    with pytest.raises(PolicyError, match=r"risk_areas\.levels\.medium"):
        quarantine_schedule(p11, "traveller_medium", d("2022-11-20"))

    p8 = load_policy("ncov-8")  # zone scheme: the tier "high" finds the sealed zone
    by_tier = quarantine_schedule(p8, "traveller_high", d("2021-07-01"))
    by_code = quarantine_schedule(p8, "traveller_sealed", d("2021-07-01"))
    assert by_tier.phases == by_code.phases
    assert by_tier.phases[0].test_days == (1, 2, 3, 5, 7)
    assert risk_level(p8, "medium")[0] == "controlled"


def test_discharge_monitoring_schedule() -> None:
    for name in PROFILES:
        s = quarantine_schedule(load_policy(name), "home_monitoring_after_discharge", d("2022-08-10"))
        assert s.phases[0].kind == "home_health_monitoring"
        assert s.test_dates == (d("2022-08-17"),)
        assert s.end_date == d("2022-08-17")


def test_schedule_rejects_datetime_and_unknown_kind() -> None:
    p = load_policy("ncov-9")
    with pytest.raises(TypeError):
        quarantine_schedule(p, "close_contact", datetime(2022, 6, 1, 12))
    with pytest.raises(ValueError, match="unknown schedule kind"):
        quarantine_schedule(p, "pet_contact", d("2022-06-01"))


@pytest.mark.parametrize(("name", "days"), [("ncov-9", 4), ("ncov-8", 2), ("ncov-2022-11", 4)])
def test_lookback_start(name: str, days: int) -> None:
    onset = d("2022-06-10")
    assert lookback_start(load_policy(name), onset) == onset - timedelta(days=days)


def test_schedule_follows_an_edited_copy(tmp_path: Path) -> None:
    path = _edit(tmp_path, "centralized_days = 7 ", "centralized_days = 10 ")
    s = quarantine_schedule(load_policy(path), "close_contact", d("2022-06-01"))
    assert s.centralized_end == d("2022-06-11") and s.end_date == d("2022-06-14")


# ------------------------------------------------------------------------------------------------
# Display and schema reference


@pytest.mark.parametrize("name", PROFILES)
def test_format_policy(name: str) -> None:
    p = load_policy(name)
    console = Console(record=True, width=400)
    console.print(format_policy(p))
    out = console.export_text()
    assert "contacts.close.centralized_test_days" in out
    assert str(list(p.contacts.close.centralized_test_days)) in out
    assert "deadlines.contacts_identified_hours" in out and "beijing-2022-05" in out
    assert p.contacts.close.source in out


def test_describe_schema() -> None:
    rows = {path: (kind, doc) for path, kind, doc in describe_schema()}
    assert rows["contacts.close.centralized_days"][0] == "a non-negative integer"
    assert "screening.max_pool_size" in rows
    assert "risk_areas.levels.<code>.lift[].next_level" in rows
