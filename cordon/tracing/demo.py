"""The demo outbreak: a few hundred cases over four weeks in 长沙市 (430100) and 株洲市 (430200), in chains and
clusters (a family, a workplace, a market), with reclassifications, investigations (some overdue), contacts at
every status, secondary contacts, and venue check-in logs to trace against.

Cases, the contacts that link them, reclassifications, discharges and milestones go through the services, as
in real use. The bulk of non-linking contacts (thousands) is inserted in batches with one audit event for the
batch, as the registry demo does for people. Seeded: the same seed builds the same outbreak.
"""

from __future__ import annotations

import random
import tempfile
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cordon.cases import services as cases_s
from cordon.cases.models import Case, Exposure
from cordon.core import audit
from cordon.core.policy import active_policy
from cordon.core.scoping import prefix_range
from cordon.people.models import Person
from cordon.tracing import services
from cordon.tracing.models import Contact, ContactEvent, ContactKind, ContactStatus

DAYS = 28
TARGET_CASES = 280
VENUES_PER_CITY = 150
CHECKIN_PEOPLE = 6000
CHECKINS_PER_PERSON_DAY = 3
SETTINGS_WEIGHTS = [("household", 5), ("shared_workplace", 3), ("shared_meal_entertainment", 2), ("visitor", 1),
                    ("same_vehicle", 1), ("caregiver_clinical", 1), ("contaminated_environment", 1)]  # fmt: skip


def _aware(d: date, hour: int, minute: int = 0) -> datetime:
    return timezone.make_aware(datetime.combine(d, time(hour % 24, minute % 60)))


class Outbreak:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.rng: random.Random = random.Random(ctx.seed + 17)
        self.today: date = ctx.today
        self.now = timezone.now()
        self.policy = active_policy()
        self.admin = ctx.users.get("admin")
        self.by_county = {"430102": ctx.users.get("investigator"), "430104": ctx.users.get("investigator2")}
        # Everyone who may appear, loaded once and grouped by county: picking a person is then a list pop.
        self.by_county_people: dict[str, list[Person]] = {}
        for city, limit in (("4301", 40000), ("4302", 10000)):
            people = list(Person.objects.filter(document_type="resident_id").filter(
                **prefix_range("region_id", city)).order_by("pk")[:limit])  # fmt: skip
            self.rng.shuffle(people)
            for p in people:
                self.by_county_people.setdefault(p.region_id[:6], []).append(p)
        self.pool = {city: [c for c in self.by_county_people if c.startswith(city)] for city in ("4301", "4302")}
        self.cases: list[Case] = []

    def person(self, city: str = "4301", near: Person | None = None) -> Person | None:
        """A person not used yet; ``near`` prefers someone of the same county (a household or workplace)."""
        counties = [c for c in self.pool.get(city, []) if self.by_county_people.get(c)]
        if not counties:
            return None
        county = near.region_id[:6] if near is not None and self.rng.random() < 0.75 else None
        if not county or not self.by_county_people.get(county):
            county = self.rng.choice(counties)
        return self.by_county_people[county].pop()

    def user_for(self, county: str) -> Any:
        return self.by_county.get(county) or self.admin

    # -- cases --------------------------------------------------------------------------------------------

    def report(self, person: Person, day: date, *, source: Case | None = None, setting: str = "household",
               origin: str = "local", origin_detail: str = "") -> Case | None:  # fmt: skip
        rng = self.rng
        county = person.region_id[:6]
        user = self.user_for(county)
        reported = _aware(day, rng.randint(7, 22), rng.randint(0, 59))
        if reported > self.now:
            reported = self.now - timedelta(minutes=rng.randint(20, 300))
        asym = rng.random() < 0.45
        under_control = source is not None and rng.random() < 0.7
        if source is not None:
            last_exp = min(reported - timedelta(days=rng.randint(1, 3), hours=rng.randint(0, 10)),
                           source.reported_at - timedelta(hours=rng.randint(1, 20)))  # fmt: skip
            lb = source.investigation.lookback_from
            last_exp = max(last_exp, _aware(lb, 12))
            services.add_contact(self.user_for(source.region_id), source, person, setting=setting,
                                 last_exposure_at=last_exp, first_exposure_at=last_exp - timedelta(hours=rng.randint(1, 30)),
                                 emit=False)  # fmt: skip
            found_by = "under_control" if under_control else rng.choice(["screening", "contact_testing"])
        else:
            found_by = rng.choice(["fever_clinic", "screening", "key_groups", "port"] if origin == "local"
                                  else ["port", "screening"])  # fmt: skip
        sampled = reported - timedelta(hours=rng.randint(4, 20))
        onset = None if asym else timezone.localdate(sampled) - timedelta(days=rng.randint(0, 2))
        case = cases_s.report_case(
            user, person, classification="asymptomatic" if asym else "confirmed", region_code=county,
            found_by=found_by, found_under_control=under_control, origin=origin, origin_detail=origin_detail,
            onset_date=onset, sampled_at=sampled, first_positive_at=sampled, reported_at=reported,
            diagnosed_at=reported - timedelta(hours=1), hospital=rng.choice(["长沙市公共卫生救治中心", "湘雅医院",
                                                                              "株洲市中心医院", "方舱医院"]))  # fmt: skip
        self.cases.append(case)
        return case

    def grow(self) -> None:
        """A branching process from seeded clusters: family, workplace, market, and a second city."""
        rng = self.rng
        start = self.today - timedelta(days=DAYS - 1)
        seeds = [  # (day offset, city, setting of spread, origin)
            (0, "4301", "household", "imported_domestic"), (1, "4301", "shared_workplace", "local"),
            (3, "4301", "contaminated_environment", "local"), (5, "4302", "shared_meal_entertainment", "imported_domestic"),
            (8, "4301", "household", "local"), (12, "4301", "shared_workplace", "local"),
            (16, "4302", "household", "local"), (20, "4301", "visitor", "imported_abroad"),
        ]  # fmt: skip
        queue: list[tuple[date, Case, str, int]] = []
        for offset, city, setting, origin in seeds:
            p = self.person(city)
            if p is None:
                continue
            detail = {"imported_domestic": "上海市", "imported_abroad": "新加坡"}.get(origin, "")
            case = self.report(p, start + timedelta(days=offset), origin=origin, origin_detail=detail)
            if case:
                queue.append((start + timedelta(days=offset), case, setting, 0))
        sporadic = 0
        while len(self.cases) < TARGET_CASES:
            if not queue:  # the chains died out: a new introduction somewhere in the last three weeks
                sporadic += 1
                p = self.person(self.rng.choice(["4301", "4301", "4302"]))
                day = self.today - timedelta(days=rng.randint(2, 21))
                case = self.report(p, day) if p is not None and sporadic < 60 else None
                if case is None:
                    break
                queue.append((day, case, rng.choices(*zip(*SETTINGS_WEIGHTS, strict=True))[0], 0))
            queue.sort(key=lambda q: (q[0], q[1].pk))
            day, src, setting, gen = queue.pop(0)
            # Market and workplace clusters spread wider early on; later generations are contained.
            mean = {"contaminated_environment": 2.6, "shared_workplace": 2.1}.get(setting, 1.6) * (0.93 ** gen)
            kids = min(6, int(rng.expovariate(1 / mean) + 0.5))
            for _ in range(kids):
                when = day + timedelta(days=rng.randint(2, 4))
                if when > self.today or len(self.cases) >= TARGET_CASES:
                    continue
                s = setting if rng.random() < 0.6 else rng.choices(*zip(*SETTINGS_WEIGHTS, strict=True))[0]
                p = self.person(src.region_id[:4], near=src.person)
                if p is None:
                    continue
                case = self.report(p, when, source=src, setting=s)
                if case:
                    queue.append((when, case, s, gen + 1))

    def reclassify_and_discharge(self) -> None:
        rng = self.rng
        conversions = 0
        for case in self.cases:
            age = (self.now - case.reported_at).days
            if case.classification == "asymptomatic" and age >= 2 and (rng.random() < 0.18 or conversions < 3):
                conversions += 1
                cases_s.reclassify(self.user_for(case.region_id), case, "confirmed", "出现症状，订正为确诊病例",
                                   at=case.reported_at + timedelta(days=rng.randint(1, min(age, 4))))  # fmt: skip
            if age >= 12 and rng.random() < 0.85:
                t1 = case.reported_at + timedelta(days=age - 3, hours=rng.randint(0, 6))
                for t in (t1, t1 + timedelta(hours=26)):
                    cases_s.record_case_test(self.admin, case, sampled_at=min(t, self.now - timedelta(hours=1)),
                                             positive=rng.random() < 0.5, ct_n=36.5, ct_orf1ab=37.2)  # fmt: skip
                try:
                    cases_s.discharge(self.admin, case, at=min(t1 + timedelta(hours=30), self.now))
                except Exception:  # tests too close together for this case: stays in hospital
                    pass
            elif age >= 5 and rng.random() < 0.004:
                cases_s.set_status(self.admin, case, "died", at=case.reported_at + timedelta(days=4))

    def investigations(self) -> None:
        """Investigators assigned, milestones stamped (most on time, some late), older ones closed; recent ones
        stay open, and some of them are overdue. Written in one batch with one audit event."""
        from cordon.cases.models import Investigation

        rng = self.rng
        invs = []
        for case in self.cases:
            inv = case.investigation
            inv.investigator = self.by_county.get(case.region_id[:6])
            opened = inv.opened_at
            age_h = (self.now - opened).total_seconds() / 3600
            late = rng.random() < 0.12
            if age_h > 3 and not (late and age_h < 48):
                inv.trajectory_published_at = min(self.now, opened + timedelta(hours=rng.uniform(1, 6 if late else 3.8)))
            if age_h > 20 and not (late and age_h < 48):
                inv.contacts_done_at = min(self.now, opened + timedelta(hours=rng.uniform(4, 11 if late else 7.8)))
                inv.preliminary_report_at = min(self.now, opened + timedelta(hours=rng.uniform(10, 30 if late else 23.5)))
            if inv.trajectory_published_at and inv.preliminary_report_at and (age_h > 48 or (age_h > 26 and not late)):
                inv.status = Investigation.Status.CLOSED
                inv.closed_at = min(self.now, max(inv.preliminary_report_at or opened,
                                                  opened + timedelta(hours=rng.uniform(18, 40 if late else 23.8))))  # fmt: skip
            invs.append(inv)
        with transaction.atomic():
            Investigation.objects.bulk_update(invs, ["investigator", "trajectory_published_at", "contacts_done_at",
                                                     "preliminary_report_at", "status", "closed_at"], batch_size=500)  # fmt: skip
            Exposure.objects.filter(case__investigation__trajectory_published_at__isnull=False,
                                    case__in=self.cases).update(published=True)  # fmt: skip
            audit.record("demo", "cases.demo_investigations", object_type="cases.investigation", region_code="430000",
                         changes={"investigations": len(invs)})  # fmt: skip

    # -- contacts -------------------------------------------------------------------------------------------

    def status_for(self, identified: datetime, end: date | None) -> str:
        age_h = (self.now - identified).total_seconds() / 3600
        if end and end < self.today:
            return ContactStatus.RELEASED
        for limit, status in ((1.5, ContactStatus.IDENTIFIED), (3, ContactStatus.NOTIFIED), (5, ContactStatus.LOCATED),
                              (9, ContactStatus.TRANSFER_REQUESTED)):  # fmt: skip
            if age_h < limit:
                return status
        return ContactStatus.QUARANTINED if self.rng.random() > 0.03 else ContactStatus.TRANSFER_REQUESTED

    def more_contacts(self) -> None:
        """Household, workplace and other close contacts of every case, and secondary contacts of some."""
        rng = self.rng
        policy = self.policy
        settings_codes = [s for s, _ in SETTINGS_WEIGHTS]
        weights = [w for _, w in SETTINGS_WEIGHTS]
        rows: list[Contact] = []
        events: list[tuple[int, str, datetime]] = []
        for case in self.cases:
            inv = case.investigation
            n = rng.randint(3, 14)
            for _ in range(n):
                p = self.person(case.region_id[:4], near=case.person)
                if p is None:
                    break
                setting = rng.choices(settings_codes, weights)[0]
                last = case.reported_at - timedelta(hours=rng.randint(2, 60))
                last = max(last, _aware(inv.lookback_from, 9))
                identified = min(self.now - timedelta(minutes=10), case.reported_at + timedelta(hours=rng.uniform(0.5, 6)))
                last_date = timezone.localdate(last)
                end = services.end_date_for(policy, ContactKind.CLOSE, last_date)
                rows.append(self._contact(case, p, ContactKind.CLOSE, setting, last, identified, end, None))
        self._bulk(rows, events)
        # Secondary contacts: people sharing home or meals with some close contacts.
        if policy.contacts.secondary.enabled:
            sec_rows = []
            closes = list(Contact.objects.filter(index_case__in=self.cases, kind=ContactKind.CLOSE,
                                                 setting__in=["household", "shared_workplace"]).select_related("person", "index_case"))  # fmt: skip
            for c in rng.sample(closes, k=min(len(closes), max(1, len(closes) // 5))):
                for _ in range(rng.randint(1, 2)):
                    p = self.person(c.person.region_id[:4], near=c.person)
                    if p is None:
                        break
                    last = c.last_exposure_at + timedelta(hours=rng.randint(1, 12))
                    last = min(last, c.identified_at)
                    identified = min(self.now - timedelta(minutes=5), c.identified_at + timedelta(hours=rng.uniform(1, 8)))
                    end = services.end_date_for(policy, ContactKind.SECONDARY, timezone.localdate(last))
                    sec_rows.append(self._contact(c.index_case, p, ContactKind.SECONDARY,
                                                  rng.choice(list(policy.contacts.secondary.settings)), last, identified,
                                                  end, c))  # fmt: skip
            self._bulk(sec_rows, events)

    def _contact(self, case: Case, p: Person, kind: str, setting: str, last: datetime, identified: datetime,
                 end: date, via: Contact | None) -> Contact:  # fmt: skip
        status = self.status_for(identified, end)
        if self.rng.random() < 0.02 and status in (ContactStatus.IDENTIFIED, ContactStatus.NOTIFIED):
            status = ContactStatus.DISMISSED
        hours = services.transfer_hours(self.policy, kind)
        c = Contact(index_case=case, via=via, person=p, kind=kind, setting=setting, status=status,
                    identified_how="interview", first_exposure_at=last - timedelta(hours=self.rng.randint(1, 48)),
                    last_exposure_at=last, last_exposure_date=timezone.localdate(last), identified_at=identified,
                    transfer_due_at=identified + timedelta(hours=hours), quarantine_end_date=end,
                    region_id=p.region_id, index_region_id=case.region_id, created_by=self.user_for(case.region_id))  # fmt: skip
        steps = [s for s in (ContactStatus.NOTIFIED, ContactStatus.LOCATED, ContactStatus.TRANSFER_REQUESTED,
                             ContactStatus.QUARANTINED, ContactStatus.RELEASED)]  # fmt: skip
        if status in steps:
            offsets = {"notified": 1, "located": 2.5, "transfer_requested": 4, "quarantined": 7}
            for s in steps[: steps.index(status) + 1]:
                if s == ContactStatus.RELEASED:
                    c.released_at = _aware(end + timedelta(days=1), 10)
                else:
                    setattr(c, services.STAMPS[s], identified + timedelta(hours=offsets[s] * self.rng.uniform(0.6, 1.4)))
        return c

    def _bulk(self, rows: list[Contact], events: list[Any]) -> None:
        with transaction.atomic():
            Contact.objects.bulk_create(rows, batch_size=1000)
            evs = []
            for c in rows:
                evs.append(ContactEvent(contact=c, status=ContactStatus.IDENTIFIED, at=c.identified_at, note="interview"))
                for status, field in services.STAMPS.items():
                    value = getattr(c, field)
                    if status != ContactStatus.IDENTIFIED and value is not None:
                        evs.append(ContactEvent(contact=c, status=status, at=value))
                if c.status == ContactStatus.DISMISSED:
                    evs.append(ContactEvent(contact=c, status=c.status, at=c.identified_at + timedelta(minutes=30),
                                            note="not a contact after verification"))  # fmt: skip
            ContactEvent.objects.bulk_create(evs, batch_size=2000)
            audit.record("demo", "tracing.demo_contacts", object_type="tracing.contact", region_code="430000",
                         changes={"contacts": len(rows), "events": len(evs)})  # fmt: skip

    # -- check-ins --------------------------------------------------------------------------------------------

    def checkins(self) -> int:
        """Venue check-ins of the last 14 days: every case and a crowd of residents, with the cases' venues
        shared by some of them, written through the check-in store's importer."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from cordon.tracing.checkins import import_checkins

        rng = self.rng
        start = self.now - timedelta(days=14)
        venues = {"4301": [f"V4301{n:05d}" for n in range(VENUES_PER_CITY)],
                  "4302": [f"V4302{n:05d}" for n in range(VENUES_PER_CITY // 2)]}  # fmt: skip
        crowd = list(Person.objects.filter(document_type="resident_id").filter(
            **prefix_range("region_id", "430")).values_list("document_number", flat=True)[:CHECKIN_PEOPLE])  # fmt: skip
        cases = [c for c in self.cases if c.reported_at > start]
        pid, venue, cin, cout = [], [], [], []
        hot = {c: rng.sample(venues[c.region_id[:4]], 3) for c in cases}
        for c in cases:  # cases' own visits during their infectious window
            t = max(start, c.reported_at - timedelta(days=4))
            while t < c.reported_at:
                v = rng.choice(hot[c])
                stay = timedelta(minutes=rng.randint(20, 120))
                pid.append(c.person.document_number)
                venue.append(v)
                cin.append(t)
                cout.append(t + stay if rng.random() < 0.8 else None)
                t += timedelta(hours=rng.randint(5, 20))
        hot_venues = [v for vs in hot.values() for v in vs]
        all_venues = np.array(venues["4301"] + venues["4302"])
        gen = np.random.default_rng(self.ctx.seed)
        n = len(crowd) * 14 * CHECKINS_PER_PERSON_DAY
        who = np.repeat(np.array(crowd), 14 * CHECKINS_PER_PERSON_DAY)
        where = all_venues[gen.integers(0, len(all_venues), n)]
        if hot_venues:
            pick = gen.random(n) < 0.25
            where[pick] = np.array(hot_venues)[gen.integers(0, len(hot_venues), int(pick.sum()))]
        start_us = int(start.timestamp() * 1e6)
        span_us = int((self.now - start).total_seconds() * 1e6)
        t_in = start_us + gen.integers(0, span_us, n)
        t_out = t_in + gen.integers(5, 90, n) * 60_000_000
        has_out = gen.random(n) < 0.85
        stamp = pa.timestamp("us", tz="UTC")
        crowd_table = pa.table({"person_id": pa.array(who), "venue_code": pa.array(where),
                                "checkin_at": pa.array(t_in, stamp),
                                "checkout_at": pa.array(np.where(has_out, t_out, 0), stamp, mask=~has_out)})  # fmt: skip
        table = pa.concat_tables([pa.table({"person_id": pid, "venue_code": venue,
                                            "checkin_at": pa.array(cin, stamp), "checkout_at": pa.array(cout, stamp)}),
                                  crowd_table])  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="cordon-demo-checkins-") as tmp:
            src = Path(tmp) / "checkins.parquet"
            pq.write_table(table, src)
            import_checkins(src, settings.CORDON_DATA_DIR, tz=settings.TIME_ZONE,
                            default_stay_minutes=self.policy.colocation.default_stay_minutes)  # fmt: skip
        return table.num_rows


def extend_demo(ctx: Any) -> None:
    o = Outbreak(ctx)
    if o.admin is None or not o.pool["4301"]:
        ctx.console.print("tracing demo: no admin user or no people in 长沙市; skipped")
        return
    # One transaction for the whole outbreak: the services' own transactions become savepoints, so the
    # thousands of writes cost one commit instead of thousands.
    import time

    t = time.perf_counter()
    with transaction.atomic():
        o.grow()
        t1 = time.perf_counter()
        o.reclassify_and_discharge()
        t2 = time.perf_counter()
        o.investigations()
        o.more_contacts()
    t3 = time.perf_counter()
    rows = o.checkins()
    t4 = time.perf_counter()
    ctx.console.print(f"  timings: cases {t1 - t:.1f}s, course {t2 - t1:.1f}s, contacts {t3 - t2:.1f}s, check-ins {t4 - t3:.1f}s")
    # Space-time companions for the two most recent cases, as an investigator would ask from the case page.
    for case in sorted(o.cases, key=lambda c: c.reported_at)[-2:]:
        try:
            services.request_colocation(o.user_for(case.region_id), case, run_now=True)
        except Exception as exc:  # the run is recorded as failed with its error; the demo goes on
            ctx.console.print(f"  co-location for {case.number} failed: {exc}")
    clusters = services.rebuild_clusters("430000", user=o.admin)
    waiting = [ContactStatus.LOCATED, ContactStatus.TRANSFER_REQUESTED]
    ctx.shared["contacts_to_place"] = list(Contact.objects.filter(status__in=waiting).order_by("pk")
                                           .values_list("pk", flat=True))  # fmt: skip
    ctx.shared["contacts_quarantined"] = list(Contact.objects.filter(status=ContactStatus.QUARANTINED).order_by("pk")
                                              .values_list("pk", flat=True))  # fmt: skip
    ctx.shared["outbreak_cases"] = [c.pk for c in o.cases]
    ctx.console.print(f"  {len(o.cases)} cases, {Contact.objects.count():,} contacts, {len(clusters)} clusters, "
                      f"{rows:,} check-ins")  # fmt: skip
