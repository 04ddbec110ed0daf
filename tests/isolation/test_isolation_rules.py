"""The policy rules of transfer and isolation, under each shipped profile."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from cordon.core.models import AuditEvent
from cordon.core.policy import active_policy, quarantine_schedule
from cordon.isolation import queries, services
from cordon.isolation.models import Placement, PlacementStatus, PlacementTest, Restart
from cordon.isolation.models import TestKind as Kind
from cordon.isolation.models import TestStatus as Status
from cordon.people.validation import FieldError
from tests.isolation.conftest import local_dt

PROFILES = ["ncov-8", "ncov-9", "ncov-2022-11"]


def place_in(user, site, contact, floor: int, n: int = 1):
    room = site.rooms.get(number=f"{floor}{n:02d}")
    with transaction.atomic():
        return services._create_placement(user, active_policy(), services.Candidate.from_contact(contact),
                                          at=timezone.now(), room=room)


@pytest.mark.parametrize("profile", PROFILES)
def test_close_contact_schedule_follows_the_profile(settings, profile, iso_user, make_site, make_contact):
    settings.CORDON_POLICY = profile
    policy = active_policy()
    site = make_site()
    c = make_contact(days_ago=1)
    res = services.assign_beds(iso_user, site, [services.Candidate.from_contact(c)])
    (p,) = res.placements
    sched = quarantine_schedule(policy, "close_contact", c.last_exposure_date)
    assert p.kind == "centralized_quarantine" and p.room is not None
    assert p.end_date == sched.centralized_end
    assert (p.end_date - p.start_date).days + 1 == policy.contacts.close.centralized_days
    scheduled = [t.due_date for t in p.tests.filter(kind=Kind.SCHEDULED)]
    assert scheduled == list(sched.centralized.test_dates)
    c.refresh_from_db()
    assert c.status == "quarantined"


@pytest.mark.parametrize("profile", PROFILES)
def test_release_on_the_last_day_then_home_phase(settings, profile, iso_user, make_site, make_contact):
    settings.CORDON_POLICY = profile
    policy = active_policy()
    site = make_site()
    days = policy.contacts.close.centralized_days
    c = make_contact(days_ago=days)  # today is the last centralized day
    p = services.assign_beds(iso_user, site, [services.Candidate.from_contact(c)]).placements[0]
    today = timezone.localdate()
    assert p.end_date == today
    assert p.tests.filter(status=Status.BEFORE_ARRIVAL).count() == len(policy.contacts.close.centralized_test_days) - 1
    assert services.release_blockers(p) == [f"test of {today} has no result",
                                            f"no environment sample of room {p.room.number} since entry"]
    services.record_test(iso_user, p, positive=False)
    services.record_environment_sample(iso_user, site, room=p.room, result="negative")
    home = services.release(iso_user, p)
    p.refresh_from_db()
    assert p.status == PlacementStatus.ENDED and home.previous_id == p.pk
    assert home.site is None and home.kind == policy.contacts.close.home_kind
    assert home.start_date == today + timedelta(days=1)
    assert (home.end_date - home.start_date).days + 1 == policy.contacts.close.home_days
    assert [t.day for t in home.tests.all()] == list(policy.contacts.close.home_test_days)
    assert AuditEvent.objects.filter(action="isolation.release", object_id=str(p.pk)).exists()


@pytest.mark.parametrize("profile,expect", [("ncov-8", "centralized_quarantine"), ("ncov-9", "home_isolation"),
                                            ("ncov-2022-11", None)])
def test_secondary_contacts_per_profile(settings, profile, expect, iso_user, make_site, make_contact):
    settings.CORDON_POLICY = profile
    site = make_site()
    close = make_contact(days_ago=1)
    sec = make_contact(days_ago=1, kind="secondary", via=close)
    res = services.assign_beds(iso_user, site, [services.Candidate.from_contact(sec)])
    if expect is None:
        assert res.errors and "not determined" in res.errors[0][1]
        return
    placed = res.placements + res.at_home
    assert [p.kind for p in placed] == [expect]
    assert [t.day for t in placed[0].tests.all()] == list(active_policy().contacts.secondary.test_days)


@pytest.mark.parametrize("profile,level,expect", [("ncov-9", "high", "centralized_quarantine"),
                                                  ("ncov-9", "medium", "home_quarantine"),
                                                  ("ncov-2022-11", "high", "home_isolation"),
                                                  ("ncov-8", "sealed", "centralized_quarantine")])
def test_inbound_travellers(settings, profile, level, expect, iso_user, make_site, person_factory):
    settings.CORDON_POLICY = profile
    site = make_site()
    cand = services.Candidate.traveller(person_factory(), level, timezone.localdate() - timedelta(days=1))
    res = services.assign_beds(iso_user, site, [cand])
    (p,) = res.placements + res.at_home
    assert p.kind == expect and p.subject == f"traveller_{level}"
    low = services.Candidate.traveller(person_factory(), "low" if profile != "ncov-8" else "precaution", timezone.localdate())
    assert "testing only" in services.assign_beds(iso_user, site, [low]).errors[0][1]


def test_missed_days_are_made_up(iso_user, make_site, make_contact):
    site = make_site()
    p = services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=1))]).placements[0]
    end = p.end_date
    t1, t2 = list(p.tests.filter(status=Status.PENDING))[:2]
    services.mark_missed(iso_user, t1)
    services.mark_missed(iso_user, t2)
    p.refresh_from_db()
    assert p.end_date == end + timedelta(days=2) and p.missed_days == 2
    makeups = list(p.tests.filter(kind=Kind.MAKEUP).order_by("due_date"))
    assert [m.due_date for m in makeups] == [end + timedelta(days=1), end + timedelta(days=2)]
    # A sweep marks every past due day as missed and extends again.
    PlacementTest.objects.filter(pk=makeups[0].pk).update(due_date=timezone.localdate() - timedelta(days=1))
    assert services.sweep_missed() == 1
    p.refresh_from_db()
    assert p.end_date == end + timedelta(days=3)


def test_missed_day_without_the_rule_only_records(settings, iso_user, make_site, make_contact, tmp_path):
    src = (active_policy().path).read_text(encoding="utf-8").replace("makeup_missed_tests = true", "makeup_missed_tests = false")
    f = tmp_path / "nomakeup.toml"
    f.write_text(src, encoding="utf-8")
    settings.CORDON_POLICY = str(f)
    site = make_site()
    p = services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=1))]).placements[0]
    end = p.end_date
    services.mark_missed(iso_user, p.tests.filter(status=Status.PENDING).first())
    p.refresh_from_db()
    assert p.end_date == end and not p.tests.filter(kind=Kind.MAKEUP).exists()


def test_positive_restarts_floor_and_neighbours_and_becomes_a_case(iso_user, make_site, make_contact):
    site = make_site(floors=6, rooms=2)
    people = {f: place_in(iso_user, site, make_contact(days_ago=3), f) for f in range(1, 7)}
    extra = place_in(iso_user, site, make_contact(days_ago=3), 3, 2)
    before = {f: p.end_date for f, p in people.items()}
    services.record_test(iso_user, people[3], positive=True)
    people[3].refresh_from_db()
    assert people[3].status == PlacementStatus.TO_HOSPITAL and people[3].case is not None
    assert people[3].case.found_under_control and people[3].case.found_by == "under_control"
    r = Restart.objects.get()
    assert r.floors == [2, 3, 4] and r.people_affected == 3 and r.cause == "person_positive"
    today = timezone.localdate()
    days = active_policy().contacts.close.centralized_days
    for f, p in people.items():
        p.refresh_from_db()
        if f in (2, 4):
            assert p.restarts == 1 and p.clock_start == today and p.end_date == today + timedelta(days=days)
        elif f != 3:
            assert p.restarts == 0 and p.end_date == before[f]
    extra.refresh_from_db()
    assert extra.restarts == 1
    assert set(r.placements.values_list("pk", flat=True)) == {people[2].pk, people[4].pk, extra.pk}
    ev = AuditEvent.objects.get(action="isolation.restart")
    assert ev.changes["people_affected"] == 3 and "密接" not in str(ev.changes)


def test_positive_environment_restarts_the_whole_site(iso_user, make_site, make_contact):
    site = make_site(floors=5, rooms=1)
    ps = [place_in(iso_user, site, make_contact(days_ago=2), f) for f in range(1, 6)]
    services.record_environment_sample(iso_user, site, room=ps[0].room, result="positive")
    r = Restart.objects.get()
    assert r.scope == "site" and r.people_affected == 5 and r.cause == "environment_positive"
    assert all(Placement.objects.get(pk=p.pk).restarts == 1 for p in ps)


def test_release_conditions(iso_user, make_site, make_contact):
    site = make_site()
    p = services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=1))]).placements[0]
    with pytest.raises(FieldError, match="early release"):
        services.release(iso_user, p)
    services.record_test(iso_user, p, positive=False)
    with pytest.raises(services.ReleaseBlocked, match="environment"):
        services.release(iso_user, p, reason="wrongly identified")
    services.record_environment_sample(iso_user, site, room=p.room, result="negative")
    done = services.release(iso_user, p, reason="wrongly identified")
    assert done.status == PlacementStatus.RELEASED and done.release_reason == "wrongly identified"
    assert not done.tests.filter(status=Status.PENDING).exists()
    ev = AuditEvent.objects.filter(action="isolation.release").last()
    assert ev.changes == {"timing": "early", "reason": "wrongly identified", "end_date": str(p.end_date),
                          "next_phase": False}


def test_release_list_and_due_events(iso_user, make_site, make_contact):
    from cordon.core import events

    site = make_site()
    days = active_policy().contacts.close.centralized_days
    due = services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=days))]).placements[0]
    services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=1))])
    rows = queries.release_list(iso_user)
    assert [r["placement"].pk for r in rows] == [due.pk] and rows[0]["blockers"]
    seen = []

    def handler(placement):
        seen.append(placement.pk)

    events.subscribe("placement.due_for_release", handler)
    try:
        assert services.emit_due_for_release() >= 1 and seen == [due.pk]
    finally:
        events.unsubscribe("placement.due_for_release", handler)


@pytest.mark.parametrize("profile", PROFILES)
def test_transfer_deadlines_and_trips(settings, profile, iso_user, make_site, make_contact):
    settings.CORDON_POLICY = profile
    policy = active_policy()
    site = make_site()
    close = [make_contact(days_ago=1, identified_hours_ago=10) for _ in range(3)]
    fam = [make_contact(days_ago=1, address="芙蓉区同一地址1号") for _ in range(2)]
    other = make_contact(days_ago=1, region="430104001001001")
    created, skipped = services.request_transfers(iso_user, [*close, *fam, other])
    assert len(created) == 6 and not skipped
    t0 = created[0]
    assert t0.due_at == close[0].identified_at + timedelta(hours=policy.deadlines.close_contact_transfer_hours)
    summary = queries.bed_summary(iso_user)
    assert summary["transfers_overdue"] == (3 if policy.deadlines.close_contact_transfer_hours < 10 else 0)
    trips = services.plan_trips(iso_user, site, created, seats=4)
    sizes = sorted(t.transfers.count() for t in trips)
    assert sizes == [1, 2, 3]  # 430102: 3 singles, then the household of 2 in a second car (not split); 430104: 1
    fam_trips = {t.trip_id for t in services.Transfer.objects.filter(contact__in=fam)}
    assert len(fam_trips) == 1, "a household rides together"
    trip = max(trips, key=lambda t: t.transfers.count())
    for st in ("dispatched", "picked_up"):
        services.advance_trip(iso_user, trip, st, vehicle="湘A12345")
    with pytest.raises(FieldError):
        services.advance_trip(iso_user, trip, "dispatched")
    res = services.advance_trip(iso_user, trip, "arrived")
    assert len(res.placements) == 3
    assert all(t.status == "arrived" and t.placement_id for t in trip.transfers.all())
    s = make_contact(days_ago=1)
    s.status = "quarantined"
    s.save()
    assert services.request_transfers(iso_user, [s])[1][0][1] == "status is quarantined"
    marked = make_contact(days_ago=1, status="transfer_requested")  # requested in tracing, no request here yet
    assert len(services.request_transfers(iso_user, [marked])[0]) == 1
    assert services.request_transfers(iso_user, [marked])[1][0][1] == "already placed or requested"


def test_secondary_transfer_deadline(settings, iso_user, make_contact):
    settings.CORDON_POLICY = "ncov-8"  # secondary contacts are centralized here, so they are transferred
    close = make_contact(days_ago=1)
    sec = make_contact(days_ago=1, kind="secondary", via=close)
    (t,), _ = services.request_transfers(iso_user, [sec])
    assert t.due_at == sec.identified_at + timedelta(hours=active_policy().deadlines.secondary_contact_transfer_hours)


def test_households_together_and_cohort_cost(iso_user, make_site, make_contact):
    site = make_site(floors=6, rooms=4, beds=[3, 1, 1, 1])
    fam = [make_contact(days_ago=1, address="同一户1号") for _ in range(3)]
    singles = [make_contact(days_ago=1) for _ in range(7)]
    res = services.assign_beds(iso_user, site, [services.Candidate.from_contact(c) for c in fam + singles])
    assert len(res.placements) == 10 and not res.unplaced
    assert len({p.room_id for p in res.placements if p.contact_id in {c.pk for c in fam}}) == 1
    assert res.cost <= res.baseline_cost and res.cost < res.baseline_cost
    rooms = {}
    for p in Placement.objects.filter(site=site, status="active"):
        rooms[p.room_id] = rooms.get(p.room_id, 0) + 1
    assert all(n <= site.rooms.get(pk=r).beds for r, n in rooms.items())


def test_plan_invariants_random():
    rng = random.Random(7)
    for _ in range(300):
        floors, per = rng.randint(1, 8), rng.randint(1, 6)
        slots = []
        for f in range(1, floors + 1):
            for n in range(per):
                beds = rng.choice([1, 1, 2, 3])
                occ = rng.choice([0, 0, 0, beds])
                slots.append(services.Slot(f * 100 + n, f, f"{f}{n:02d}", beds, occ,
                                           {timezone.localdate() - timedelta(days=rng.randint(0, 3))} if occ else set()))
        units = [rng.choice([1, 1, 1, 2, 3, 4]) for _ in range(rng.randint(1, 25))]
        share = rng.random() < 0.8
        plan = services.plan_beds(slots, units, timezone.localdate(), share=share)
        base = services.plan_beds(slots, units, timezone.localdate(), share=share, strategy="first_fit")
        left, left_base = sum(units[i] for i in plan.unplaced), sum(units[i] for i in base.unplaced)
        assert left <= left_base, "never leaves more people without a bed than first-fit"
        if left == left_base:
            assert plan.cost <= base.cost
        beds = {s.room_id: s.beds for s in slots}
        used = {s.room_id: s.occupants for s in slots}
        taken = set()
        for i, rooms in plan.rooms.items():
            assert len(rooms) == units[i]
            assert len({r // 100 for r in rooms}) == 1, "a household stays on one floor"
            if share and any(beds[r] >= units[i] for r in beds):
                pass
            for r in rooms:
                assert used[r] == 0 or r in taken, "only empty rooms are given out"
                taken.add(r)
            for r in set(rooms):
                assert rooms.count(r) <= beds[r], "never over capacity"
        assert not (set(plan.rooms) & set(plan.unplaced))


def test_over_capacity_is_refused_not_overfilled(iso_user, make_site, make_contact):
    site = make_site(floors=1, rooms=2)
    res = services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=1)) for _ in range(3)])
    assert len(res.placements) == 2 and len(res.unplaced) == 1
    site.refresh_from_db()
    assert site.status == "full"
    services.record_test(iso_user, res.placements[0], positive=True)  # to hospital: a bed is free again
    site.refresh_from_db()
    assert site.status == "open"


def test_scoping(iso_user, make_user, make_site, make_contact):
    site = make_site()
    p = services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=1))]).placements[0]
    outsider = make_user("zz", role="isolation", region="430200")
    assert not queries.sites_for(outsider).exists() and not queries.placements_for(outsider).exists()
    with pytest.raises(FieldError, match="outside"):
        services.record_test(outsider, p, positive=False)
    county = make_user("yl", role="isolation", region="430104")
    assert not queries.placements_for(county).exists()
    grid = make_user("gw", role="grid_worker", region="430102001001")
    assert list(queries.placements_for(grid)) == [p]  # the person's grid worker sees their placement
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.record_test(grid, p, positive=False)


def test_bed_summary_shape(iso_user, make_site, make_contact):
    site = make_site(floors=2, rooms=2)
    days = active_policy().contacts.close.centralized_days
    services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=days))])
    s = queries.bed_summary(iso_user)
    assert set(s) == {"beds_total", "beds_occupied", "beds_free", "placed_centralized", "placed_home",
                      "releases_today", "transfers_overdue", "projected_free"}
    assert (s["beds_total"], s["beds_occupied"], s["beds_free"], s["releases_today"]) == (4, 1, 3, 1)
    assert [d["free"] for d in s["projected_free"]] == [3, 4, 4, 4, 4, 4, 4]
    assert s["projected_free"][0]["date"] == timezone.localdate().isoformat()
    assert local_dt(timezone.localdate())  # helper used by other tests


def test_second_cohort_keeps_away_from_the_first(iso_user, make_site, make_contact):
    """A later batch (another entry day) goes to floors out of the first cohort's restart scope."""
    site = make_site(floors=6, rooms=2)
    first = services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=3)) for _ in range(2)],
                                 at=timezone.now() - timedelta(days=1)).placements
    assert {p.floor for p in first} == {1}
    second = services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=1)) for _ in range(3)])
    assert {p.floor for p in second.placements} == {3, 5} or {p.floor for p in second.placements} == {3, 4}
    assert all(p.floor >= 3 for p in second.placements), "never next to the first cohort's floor"
    assert second.cost <= second.baseline_cost


def test_cli_assign_and_release_list(iso_user, make_site, make_contact, tmp_path, capsys):
    import typer
    from typer.testing import CliRunner

    from cordon.isolation import commands

    site = make_site(code="CLI-1")
    cs = [make_contact(days_ago=1) for _ in range(3)]
    f = tmp_path / "ids.csv"
    f.write_text("contact_id\n" + "\n".join(str(c.pk) for c in cs[:2]) + "\n", encoding="utf-8")
    app = typer.Typer()
    commands.register(app)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    r = runner.invoke(app, ["isolation", "assign", "--site", "CLI-1", "--contacts", str(f), "--as", "iso", "--json"])
    assert r.exit_code == 0, r.output
    assert '"placed": 2' in r.output and Placement.objects.filter(site=site).count() == 2
    r = runner.invoke(app, ["isolation", "assign", "--site", "CLI-1", "--due", "--as", "iso"])
    assert r.exit_code == 0 and Placement.objects.count() == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("1\nabc\n", encoding="utf-8")
    r = runner.invoke(app, ["isolation", "assign", "--site", "CLI-1", "--contacts", str(bad), "--as", "iso"])
    assert r.exit_code == 2 and "line 2" in r.output
    r = runner.invoke(app, ["isolation", "release-list", "--as", "iso", "--date", "2020-13-01"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["isolation", "release-list", "--as", "iso"])
    assert r.exit_code == 0, r.output


def test_daily_task(iso_user, make_site, make_contact):
    from cordon.isolation.tasks import daily_isolation

    site = make_site()
    p = services.assign_beds(iso_user, site, [services.Candidate.from_contact(make_contact(days_ago=1))]).placements[0]
    PlacementTest.objects.filter(placement=p, due_date=timezone.localdate()).update(due_date=timezone.localdate() - timedelta(days=1))
    out = daily_isolation.func()
    assert out["missed"] == 1
    p.refresh_from_db()
    assert p.missed_days == 1


def test_common_area_sample_restarts_site_under_room_scope(settings, tmp_path, iso_user, make_site, make_contact):
    src = active_policy().path.read_text(encoding="utf-8").replace('environment_positive_restarts = "site"',
                                                                   'environment_positive_restarts = "room"')
    f = tmp_path / "room.toml"
    f.write_text(src, encoding="utf-8")
    settings.CORDON_POLICY = str(f)
    site = make_site(floors=3, rooms=1)
    ps = [place_in(iso_user, site, make_contact(days_ago=2), fl) for fl in (1, 2, 3)]
    services.record_environment_sample(iso_user, site, room=ps[0].room, result="positive")
    assert Restart.objects.get().people_affected == 1, "room scope: that room only"
    services.record_environment_sample(iso_user, site, result="positive")
    assert Restart.objects.order_by("pk").last().people_affected == 3, "a common-area sample: the whole site"


def later_days(policy, placement) -> int:
    """Days of the policy's phases after the placement's (the home phase after centralized quarantine)."""
    phases = quarantine_schedule(policy, placement.subject, placement.clock_start).phases
    return sum(ph.days for ph in phases[placement.phase + 1:])


def test_made_up_days_move_the_contacts_end_date(iso_user, make_site, make_contact):
    site = make_site()
    contact = make_contact(days_ago=1)
    policy = active_policy()
    planned = quarantine_schedule(policy, "close_contact", contact.last_exposure_date).end_date
    p = services.assign_beds(iso_user, site, [services.Candidate.from_contact(contact)]).placements[0]
    t1, t2 = list(p.tests.filter(status=Status.PENDING))[:2]
    services.mark_missed(iso_user, t1)
    contact.refresh_from_db()
    p.refresh_from_db()
    assert contact.quarantine_end_date == planned + timedelta(days=1)
    assert contact.quarantine_end_date == p.end_date + timedelta(days=later_days(policy, p))
    ev = AuditEvent.objects.get(action="isolation.contact_end_moved")
    assert ev.object_id == str(contact.pk) and ev.changes["cause"] == "makeup"
    assert ev.changes["to"] == str(planned + timedelta(days=1)) and ev.changes["placement"] == p.pk
    services.mark_missed(iso_user, t2)
    contact.refresh_from_db()
    assert contact.quarantine_end_date == planned + timedelta(days=2)
    assert AuditEvent.objects.filter(action="isolation.contact_end_moved").count() == 2


def test_missed_day_without_makeup_leaves_the_contacts_end(settings, iso_user, make_site, make_contact, tmp_path):
    src = active_policy().path.read_text(encoding="utf-8").replace("makeup_missed_tests = true", "makeup_missed_tests = false")
    f = tmp_path / "nomakeup.toml"
    f.write_text(src, encoding="utf-8")
    settings.CORDON_POLICY = str(f)
    contact = make_contact(days_ago=1)
    contact.quarantine_end_date = timezone.localdate() + timedelta(days=9)
    contact.save(update_fields=["quarantine_end_date"])
    p = services.assign_beds(iso_user, make_site(), [services.Candidate.from_contact(contact)]).placements[0]
    services.mark_missed(iso_user, p.tests.filter(status=Status.PENDING).first())
    contact.refresh_from_db()
    assert contact.quarantine_end_date == timezone.localdate() + timedelta(days=9)
    assert not AuditEvent.objects.filter(action="isolation.contact_end_moved").exists()


def test_restart_moves_the_contacts_end_date(iso_user, make_site, make_contact):
    site = make_site(floors=3, rooms=2)
    policy = active_policy()
    source = place_in(iso_user, site, make_contact(days_ago=3), 2)
    neighbour_contact = make_contact(days_ago=3)
    neighbour = place_in(iso_user, site, neighbour_contact, 2, 2)
    planned = quarantine_schedule(policy, "close_contact", neighbour_contact.last_exposure_date).end_date
    services.record_test(iso_user, source, positive=True)
    neighbour.refresh_from_db()
    neighbour_contact.refresh_from_db()
    today = timezone.localdate()
    assert neighbour.restarts == 1
    expected = quarantine_schedule(policy, "close_contact", today).end_date
    assert neighbour_contact.quarantine_end_date == expected
    assert expected == planned + timedelta(days=3)  # the clock starts again 3 days after the last exposure
    ev = AuditEvent.objects.get(action="isolation.contact_end_moved", object_id=str(neighbour_contact.pk))
    assert ev.changes["cause"] == "restart" and ev.changes["to"] == str(expected)


def test_traveller_restart_touches_no_contact(iso_user, make_site, person_factory, make_contact):
    site = make_site(floors=2, rooms=2)
    source = place_in(iso_user, site, make_contact(days_ago=2), 1)
    traveller = services.Candidate.traveller(person_factory(), "high", timezone.localdate() - timedelta(days=1))
    room = site.rooms.get(number="102")
    with transaction.atomic():
        services._create_placement(iso_user, active_policy(), traveller, at=timezone.now(), room=room)
    services.record_test(iso_user, source, positive=True)
    assert Restart.objects.get().people_affected == 1
    assert not AuditEvent.objects.filter(action="isolation.contact_end_moved").exists()
