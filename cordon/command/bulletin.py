"""The daily bulletin (定期信息发布) in Hunan's 2022 format (POLICY.md §7), computed from the case records.

How a case is counted: each case has a timeline of classifications — the one it was reported with, then
each reclassification. A case counts as a new confirmed case on the day it *enters* "confirmed" (reported
confirmed, or converted), and as a new asymptomatic infection on the day it enters "asymptomatic". A
conversion (asymptomatic → confirmed) is therefore a new confirmed case, noted as such, and never a new
case on top. "Imported" is 境外输入 (origin abroad); a case from another province is local to the
bulletin, as in the national and provincial bulletins.

Breakdown by area: a province's bulletin lists cities, a city's lists counties (a county's has none).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.utils import timezone

from cordon.core.policy import active_policy
from cordon.core.scoping import prefix_range
from cordon.regions.models import Level, Region

IMPORTED = "imported_abroad"


@dataclass
class _Case:
    id: int
    region: str
    imported: bool
    under_control: bool
    severity: str
    status: str
    discharged_at: datetime | None
    died_at: datetime | None
    steps: list[tuple[datetime, str]] = field(default_factory=list)  # (at, classification), in order

    def state_at(self, t: datetime) -> str | None:
        state = None
        for at, cls in self.steps:
            if at < t:
                state = cls
        return state

    def entries(self, cls: str, start: datetime, end: datetime) -> list[tuple[datetime, str | None]]:
        """Times in [start, end) when the case entered ``cls``, with the class it came from."""
        out, prev = [], None
        for at, c in self.steps:
            if c == cls and prev != cls and start <= at < end:
                out.append((at, prev))
            prev = c
        return out


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = timezone.make_aware(datetime.combine(day, time(0, 0)))
    return start, start + timedelta(days=1)


def load_cases(prefix: str | None, end: datetime) -> list[_Case]:
    """Every case of the area (all when ``prefix`` is None) reported before ``end``, with its timeline."""
    from cordon.cases.models import Case, Reclassification

    area = prefix_range("region_id", prefix) if prefix else {}
    rows = Case.objects.filter(reported_at__lt=end, **area).values_list(
        "id", "region_id", "origin", "found_under_control", "severity", "status", "discharged_at", "died_at",
        "classification", "reported_at",
    )  # fmt: skip
    cases: dict[int, _Case] = {}
    current: dict[int, tuple[str, datetime]] = {}
    for cid, region, origin, uc, sev, status, dis, died, cls, rep in rows.iterator(chunk_size=5000):
        cases[cid] = _Case(cid, region, origin == IMPORTED, uc, sev, status, dis, died)
        current[cid] = (cls, rep)
    reclass: dict[int, list[tuple[str, str, datetime]]] = {}
    rarea = prefix_range("case__region_id", prefix) if prefix else {}
    rq = Reclassification.objects.filter(at__lt=end, case__reported_at__lt=end, **rarea).order_by("at", "pk")
    for cid, frm, to, at in rq.values_list("case_id", "from_classification", "to_classification", "at").iterator(
        chunk_size=5000
    ):
        reclass.setdefault(cid, []).append((frm, to, at))
    for cid, c in cases.items():
        cls, rep = current[cid]
        changes = reclass.get(cid, [])
        if not changes:
            c.steps = [(rep, cls)]
            continue
        first_from, first_to, first_at = changes[0]
        if first_from:
            c.steps = [(rep, first_from)]
        else:  # the report itself was recorded as a reclassification from nothing
            c.steps = [(min(rep, first_at), first_to)]
            changes = changes[1:]
        c.steps += [(at, to) for _frm, to, at in changes]
    return list(cases.values())


def _area_key(region: Region) -> tuple[int, int] | None:
    """(length of the area code prefix, code length) for the breakdown, or None for a county."""
    if region.level == Level.PROVINCE:
        return (4, 6)
    if region.level == Level.CITY:
        return (6, 6)
    return None


def compute(region: Region, day: date) -> dict[str, Any]:
    policy = active_policy()
    base = date.fromisoformat(str(policy.get("bulletin.base_date")))
    start, end = _bounds(day)
    base_start, _ = _bounds(base)
    cases = load_cases(region.prefix, end)
    key = _area_key(region)

    def area(code: str) -> str:
        return code[: key[0]].ljust(key[1], "0") if key else region.code

    def by_area(counter: Counter) -> list[dict[str, Any]]:
        return [{"code": code, "name": names.get(code, code), "n": n} for code, n in sorted(counter.items()) if n]

    new_conf: list[tuple[_Case, str | None]] = []
    new_asym: list[_Case] = []
    conversions_all = 0
    for c in cases:
        for _at, prev in c.entries("confirmed", start, end):
            new_conf.append((c, prev))
            conversions_all += prev == "asymptomatic"
        if c.entries("asymptomatic", start, end):
            new_asym.append(c)

    conf_local = [(c, p) for c, p in new_conf if not c.imported]
    asym_local = [c for c in new_asym if not c.imported]
    local_conf_by = Counter(area(c.region) for c, _p in conf_local)
    conv_by = Counter(area(c.region) for c, p in conf_local if p == "asymptomatic")
    asym_by = Counter(area(c.region) for c in asym_local)

    released_today = observing = observing_imported = 0
    cum_local = cum_imported = in_hosp = in_hosp_imported = discharged = discharged_imported = severe = deaths = 0
    for c in cases:
        state_end = c.state_at(end)
        if c.discharged_at and start <= c.discharged_at < end and c.state_at(c.discharged_at) == "asymptomatic":
            released_today += 1
        gone = (c.discharged_at is not None and c.discharged_at < end) or (c.died_at is not None and c.died_at < end)
        if state_end == "asymptomatic" and not gone and c.status != "closed":
            observing += 1
            observing_imported += c.imported
        if c.entries("confirmed", base_start, end):
            if c.imported:
                cum_imported += 1
            else:
                cum_local += 1
        if state_end == "confirmed" and not gone and c.status != "closed":
            in_hosp += 1
            in_hosp_imported += c.imported
            severe += c.severity in ("severe", "critical")
        if c.discharged_at and base_start <= c.discharged_at < end and c.state_at(c.discharged_at) == "confirmed":
            discharged += 1
            discharged_imported += c.imported
        if c.died_at and base_start <= c.died_at < end and c.state_at(c.died_at) == "confirmed":
            deaths += 1

    codes = set(local_conf_by) | set(conv_by) | set(asym_by)
    names = dict(Region.objects.filter(code__in=codes).values_list("code", "name")) if codes else {}
    return {
        "region_code": region.code,
        "region_name": region.name,
        "region_name_en": region.name_en or region.name,
        "date": day.isoformat(),
        "base_date": base.isoformat(),
        "confirmed": {
            "new": len(new_conf),
            "imported": len(new_conf) - len(conf_local),
            "local": len(conf_local),
            "local_by_area": by_area(local_conf_by),
            "local_under_control": sum(c.under_control for c, _p in conf_local),
            "converted": sum(conv_by.values()),
            "converted_by_area": by_area(conv_by),
        },
        "asymptomatic": {
            "new": len(new_asym),
            "imported": len(new_asym) - len(asym_local),
            "local": len(asym_local),
            "local_by_area": by_area(asym_by),
            "local_under_control": sum(c.under_control for c in asym_local),
            "converted_today": conversions_all,
            "released_today": released_today,
            "under_observation": observing,
            "under_observation_imported": observing_imported,
        },
        "cumulative": {
            "confirmed_local": cum_local,
            "confirmed_imported": cum_imported,
            "confirmed": cum_local + cum_imported,
            "in_hospital": in_hosp,
            "in_hospital_imported": in_hosp_imported,
            "discharged": discharged,
            "discharged_imported": discharged_imported,
            "severe": severe,
            "deaths": deaths,
        },
    }


def _zh_list(items: list[dict[str, Any]]) -> str:
    return "、".join(f"{a['name']}{a['n']}例" for a in items)


def _en_list(items: list[dict[str, Any]]) -> str:
    return ", ".join(f"{a['name']} {a['n']}" for a in items)


def _zh_date(iso: str) -> str:
    d = date.fromisoformat(iso)
    return f"{d.year}年{d.month}月{d.day}日"


def render_zh(f: dict[str, Any]) -> str:
    c, a, t = f["confirmed"], f["asymptomatic"], f["cumulative"]
    d = date.fromisoformat(f["date"])
    p1 = f"{_zh_date(f['date'])}0—24时，{f['region_name']}新增确诊病例{c['new']}例，其中境外输入{c['imported']}例，本土{c['local']}例"
    if c["local_by_area"] and len(c["local_by_area"]) > 0:
        p1 += f"（{_zh_list(c['local_by_area'])}）"
    if c["local"]:
        p1 += f"，{c['local_under_control']}例在管控人员中发现"
        p1 += f"；本土病例中{c['converted']}例为无症状感染者转为确诊病例"
        if c["converted_by_area"]:
            p1 += f"（{_zh_list(c['converted_by_area'])}）"
    p1 += "。"
    p2 = f"新增无症状感染者{a['new']}例，其中境外输入{a['imported']}例，本土{a['local']}例"
    if a["local_by_area"]:
        p2 += f"（{_zh_list(a['local_by_area'])}）"
    if a["local"]:
        p2 += f"，{a['local_under_control']}例在管控人员中发现"
    p2 += (f"。当日无症状感染者转为确诊病例{a['converted_today']}例，解除医学观察{a['released_today']}例，"
           f"尚在医学观察无症状感染者{a['under_observation']}例（其中境外输入{a['under_observation_imported']}例）。")  # fmt: skip
    p3 = (f"{_zh_date(f['base_date'])}以来，截至{d.month}月{d.day}日24时，{f['region_name']}累计报告确诊病例{t['confirmed']}例"
          f"（其中境外输入{t['confirmed_imported']}例），现有在院确诊病例{t['in_hospital']}例（其中境外输入{t['in_hospital_imported']}例），"
          f"累计出院{t['discharged']}例（其中境外输入{t['discharged_imported']}例），现有重症病例{t['severe']}例，"
          f"累计死亡{t['deaths']}例。")  # fmt: skip
    return "\n\n".join([p1, p2, p3])


def render_en(f: dict[str, Any]) -> str:
    c, a, t = f["confirmed"], f["asymptomatic"], f["cumulative"]
    name = f["region_name_en"]
    p1 = (f"From 0:00 to 24:00 on {f['date']}, {name} reported {c['new']} new confirmed cases: "
          f"{c['imported']} imported from abroad and {c['local']} local")  # fmt: skip
    if c["local_by_area"]:
        p1 += f" ({_en_list(c['local_by_area'])})"
    if c["local"]:
        p1 += f", {c['local_under_control']} of them found among people already under control"
        p1 += f"; {c['converted']} of the local cases were asymptomatic infections converted to confirmed"
        if c["converted_by_area"]:
            p1 += f" ({_en_list(c['converted_by_area'])})"
    p1 += "."
    p2 = f"New asymptomatic infections: {a['new']}, {a['imported']} imported and {a['local']} local"
    if a["local_by_area"]:
        p2 += f" ({_en_list(a['local_by_area'])})"
    if a["local"]:
        p2 += f", {a['local_under_control']} found among people under control"
    p2 += (f". Converted to confirmed today: {a['converted_today']}; released from medical observation today: "
           f"{a['released_today']}; still under medical observation: {a['under_observation']} "
           f"({a['under_observation_imported']} imported).")  # fmt: skip
    p3 = (f"Since {f['base_date']}, as of 24:00 on {f['date']}, {name} has reported {t['confirmed']} confirmed cases "
          f"({t['confirmed_imported']} imported); {t['in_hospital']} are in hospital ({t['in_hospital_imported']} imported), "
          f"{t['discharged']} have been discharged ({t['discharged_imported']} imported), {t['severe']} are severe now, "
          f"and {t['deaths']} have died.")  # fmt: skip
    return "\n\n".join([p1, p2, p3])
