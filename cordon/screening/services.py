"""Writes of the screening module: campaigns, sites, labs, tubes, results and the positive-pool cascade.

Every number (pool sizes, the 20-swab ceiling, target hours, the hold-and-resample clock) comes from the
active policy. Each write runs in one transaction with its audit event; domain events (``pools.positive``,
``retest.resulted``) are emitted inside the same transaction so the command module's tasks commit with it.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from cordon.core import audit, events
from cordon.core.policy import active_policy
from cordon.core.scoping import in_jurisdiction, require
from cordon.people.validation import FieldError
from cordon.regions.models import Region
from cordon.screening.models import (
    Campaign,
    CampaignArea,
    Hold,
    Lab,
    Registration,
    Result,
    Retest,
    Site,
    Tube,
    TubeResult,
)

# Area kinds that are "sealed or high": single tube, first round inside sealed_first_round_hours.
_SEALED_KINDS = {"quarantine_site", "high", "sealed"}
_CONTROLLED_KINDS = {"medium", "controlled"}


def area_kinds(policy: Any = None) -> list[str]:
    policy = policy or active_policy()
    return [k for k in dict(policy.screening.default_pool_size) if k not in ("source", "standing")]


def check_pool_size(area_kind: str, pool_size: int | None, *, household: bool = False,
                    policy: Any = None) -> int:  # fmt: skip
    """The pool size a campaign area may use. Refused: above the policy's ceiling (never above 20), a size
    the policy has not validated, or larger than the default for where people are (a pool of 20 in a
    medium-risk area would dilute the swabs of people most likely to be positive)."""
    policy = policy or active_policy()
    s = policy.screening
    kinds = area_kinds(policy)
    if area_kind not in kinds:
        raise FieldError("area_kind", area_kind, f"unknown area kind (expected one of {', '.join(kinds)})")
    default = int(s.default_pool_size[area_kind])
    size = default if pool_size is None else int(pool_size)
    if size > int(s.max_pool_size):
        raise FieldError("pool_size", str(size), f"pools above {s.max_pool_size} swabs are not allowed")
    if size not in list(s.allowed_pool_sizes):
        raise FieldError("pool_size", str(size), f"pool size must be one of {list(s.allowed_pool_sizes)}")
    if household:
        if not s.household_tube_allowed or area_kind not in list(s.household_tube_area_kinds):
            raise FieldError("household_tubes", area_kind, "one tube per household is not allowed in this area")
    if size > default:
        raise FieldError("pool_size", str(size), f"{area_kind} areas pool at most {default} swabs per tube")
    return size


def target_hours(kinds: list[str], policy: Any = None) -> int:
    t = (policy or active_policy()).screening.targets
    hours = [int(t.city_designated_area_hours)]
    for k in kinds:
        if k in _SEALED_KINDS:
            hours.append(int(t.sealed_first_round_hours))
        elif k in _CONTROLLED_KINDS:
            hours.append(int(t.controlled_first_round_hours))
    return min(hours)


def _owner_region(codes: list[str]) -> Region:
    chains = []
    for code in codes:
        r = Region.objects.get(code=code)
        chains.append([a.code for a in r.ancestors()] + [r.code])
    common = chains[0]
    for chain in chains[1:]:
        common = [a for a, b in zip(common, chain, strict=False) if a == b]
    return Region.objects.get(code=common[-1])


def area_for(campaign: Campaign | None, region_code: str) -> CampaignArea | None:
    """The campaign area a place (grid code) falls in: the narrowest covering region."""
    if campaign is None:
        return None
    best = None
    for a in campaign.areas.select_related("region"):
        if region_code.startswith(a.region.prefix) and (best is None or len(a.region.prefix) > len(best.region.prefix)):
            best = a
    return best


def create_campaign(user: Any, *, name: str, areas: list[dict[str, Any]], starts_at: datetime | None = None,
                    previous: Campaign | None = None, start: bool = False) -> Campaign:  # fmt: skip
    """``areas``: [{region_code, area_kind, pool_size (optional: the policy default), household_tubes}]."""
    require(user, "write_screening")
    if not areas:
        raise FieldError("areas", "", "a campaign covers at least one region")
    policy = active_policy()
    clean = []
    for a in areas:
        code = str(a.get("region_code") or "")
        if not Region.objects.filter(code=code).exists():
            raise FieldError("region_code", code, "unknown region code")
        if not in_jurisdiction(user, code):
            raise FieldError("region_code", code, "outside your jurisdiction")
        kind = str(a.get("area_kind") or "")
        household = bool(a.get("household_tubes"))
        size = check_pool_size(kind, a.get("pool_size"), household=household, policy=policy)
        clean.append((code, kind, size, household))
    hours = target_hours([c[1] for c in clean], policy)
    starts_at = starts_at or timezone.now()
    with transaction.atomic():
        owner = _owner_region([c[0] for c in clean])
        round_number = (previous.round_number + 1) if previous else 1
        c = Campaign.objects.create(name=name.strip()[:100] or "screening", round_number=round_number,
                                    previous=previous, region=owner, starts_at=starts_at,
                                    deadline=starts_at + timedelta(hours=hours), target_hours=hours,
                                    created_by=user if getattr(user, "pk", None) else None,
                                    status=Campaign.Status.RUNNING if start else Campaign.Status.PLANNED)  # fmt: skip
        CampaignArea.objects.bulk_create([CampaignArea(campaign=c, region_id=code, area_kind=kind, pool_size=size,
                                                       household_tubes=hh) for code, kind, size, hh in clean])  # fmt: skip
        audit.record(user, "screening.campaign_create", c, region_code=owner.code,
                     changes={"areas": [[a[0], a[1], a[2]] for a in clean], "target_hours": hours,
                              "round": round_number, "status": c.status})  # fmt: skip
    return c


def set_campaign_status(user: Any, campaign: Campaign, status: str) -> Campaign:
    require(user, "write_screening")
    if not in_jurisdiction(user, campaign.region_id):
        raise FieldError("campaign", str(campaign.pk), "outside your jurisdiction")
    order = [Campaign.Status.PLANNED, Campaign.Status.RUNNING, Campaign.Status.FINISHED]
    if status not in order or order.index(status) < order.index(campaign.status):
        raise FieldError("status", status, f"cannot go from {campaign.status} to {status}")
    if status == campaign.status:
        return campaign
    with transaction.atomic():
        old = campaign.status
        campaign.status = status
        if status == Campaign.Status.RUNNING and campaign.starts_at > timezone.now():
            campaign.starts_at = timezone.now()
            campaign.deadline = campaign.starts_at + timedelta(hours=campaign.target_hours)
        if status == Campaign.Status.FINISHED:
            campaign.finished_at = timezone.now()
        campaign.save()
        audit.record(user, "screening.campaign_status", campaign, region_code=campaign.region_id,
                     changes={"from": old, "to": status})  # fmt: skip
    return campaign


def plan(population: int, policy: Any = None) -> dict[str, int]:
    """Sites and samplers for a population, from the policy's planning ratios."""
    s = (policy or active_policy()).screening
    return {
        "population": population,
        "sites_min": math.ceil(population / int(s.people_per_site_max)) if population else 0,
        "sites_max": math.ceil(population / int(s.people_per_site_min)) if population else 0,
        "samplers": math.ceil(population / int(s.people_per_sampler)) if population else 0,
    }


def create_site(user: Any, *, code: str, name: str, region_code: str, hours: str = "", staff: int = 0) -> Site:
    require(user, "write_screening")
    code = code.strip()
    if not code:
        raise FieldError("code", "", "required")
    if not Region.objects.filter(code=region_code).exists():
        raise FieldError("region_code", region_code, "unknown region code")
    if not in_jurisdiction(user, region_code):
        raise FieldError("region_code", region_code, "outside your jurisdiction")
    if Site.objects.filter(code=code).exists():
        raise FieldError("code", code, "a site with this code exists")
    with transaction.atomic():
        site = Site.objects.create(code=code, name=name.strip()[:100] or code, region_id=region_code,
                                   hours=hours[:50], staff=max(0, int(staff)))  # fmt: skip
        audit.record(user, "screening.site_create", site, region_code=region_code, changes={"code": code})
    return site


def create_lab(user: Any, *, code: str, name: str, region_code: str, daily_capacity: int = 0) -> Lab:
    require(user, "write_screening")
    if not in_jurisdiction(user, region_code) or not Region.objects.filter(code=region_code).exists():
        raise FieldError("region_code", region_code, "unknown region or outside your jurisdiction")
    if Lab.objects.filter(code=code).exists():
        raise FieldError("code", code, "a lab with this code exists")
    with transaction.atomic():
        lab = Lab.objects.create(code=code, name=name or code, region_id=region_code,
                                 daily_capacity=max(0, int(daily_capacity)))  # fmt: skip
        audit.record(user, "screening.lab_create", lab, region_code=region_code, changes={"code": code})
    return lab


def seal_tube(user: Any, tube: Tube) -> Tube:
    """The collector closes a tube before it is full (end of shift, last resident)."""
    require(user, "scan")
    if not in_jurisdiction(user, tube.region_id):
        raise FieldError("tube", tube.barcode, "outside your jurisdiction")
    if tube.sealed_at is None:
        with transaction.atomic():
            tube.sealed_at = timezone.now()
            tube.save(update_fields=["sealed_at"])
            audit.record(user, "screening.tube_seal", tube, region_code=tube.region_id,
                         changes={"members": tube.members})  # fmt: skip
    return tube


def receive_tubes(user: Any, lab: Lab, barcodes: list[str], at: datetime | None = None) -> dict[str, str]:
    """The lab scans tubes in at its door; each barcode gets received | already_received | unknown."""
    require(user, "lab_results")
    at = at or timezone.now()
    barcodes = [b.strip() for b in barcodes if b and b.strip()][:5000]
    found = {t.barcode: t for t in Tube.objects.filter(barcode__in=barcodes)}
    out: dict[str, str] = {}
    fresh = []
    for b in barcodes:
        t = found.get(b)
        if t is None:
            out[b] = "unknown"
        elif t.received_at is not None:
            out[b] = "already_received"
        else:
            out[b] = "received"
            fresh.append(t.pk)
    with transaction.atomic():
        Tube.objects.filter(pk__in=fresh).update(received_at=at, lab=lab, sealed_at=F("sealed_at"))
        Tube.objects.filter(pk__in=fresh, sealed_at__isnull=True).update(sealed_at=at)
        audit.record(user, "screening.tubes_received", lab, region_code=lab.region_id,
                     changes={"received": len(fresh), "unknown": sum(1 for v in out.values() if v == "unknown")})  # fmt: skip
    return out


# ----------------------------------------------------------------------------------------------------------
# Results and the positive-pool cascade
# ----------------------------------------------------------------------------------------------------------


def record_result(user: Any, tube: Tube, result: str, *, ct_orf1ab: float | None = None, ct_n: float | None = None,
                  tested_at: datetime | None = None, lab: Lab | None = None,
                  import_run: int | None = None) -> str:  # fmt: skip
    """Apply one lab result to a tube. Returns "accepted" (first result), "updated" (a correction kept as a
    new version) or "unchanged". Must run inside the caller's transaction (the importer's batch)."""
    now = timezone.now()
    current = tube.result
    if current == result and tube.ct_orf1ab == ct_orf1ab and tube.ct_n == ct_n:
        return "unchanged"
    version = tube.results.count() + 1
    TubeResult.objects.create(tube=tube, version=version, result=result, ct_orf1ab=ct_orf1ab, ct_n=ct_n,
                              tested_at=tested_at, lab=lab or tube.lab, by=user if getattr(user, "pk", None) else None,
                              at=now, import_run=import_run, is_correction=bool(current))  # fmt: skip
    _apply_result(tube, result, ct_orf1ab, ct_n, tested_at or now, lab)
    tube.save(update_fields=["result", "ct_orf1ab", "ct_n", "resulted_at", "lab", "received_at", "sealed_at"])
    audit.record(user or "lab", "screening.result", tube, region_code=tube.region_id,
                 changes={"result": result, "version": version, "correction": bool(current), "previous": current,
                          "ct_orf1ab": ct_orf1ab, "ct_n": ct_n})  # fmt: skip
    if current == result:
        return "updated"  # only the Ct values moved: nothing to cascade
    if current == Result.POSITIVE:
        _withdraw_positive(user, tube)
    if tube.is_retest:
        _resolve_retest_tube(user, tube, result)
    elif result == Result.POSITIVE:
        if tube.capacity > 1:
            positive_pool(user, tube)
        else:
            _single_positive(user, tube)
    elif result == Result.INVALID:
        _resample(user, tube)
    return "updated" if current else "accepted"


def _apply_result(tube: Tube, result: str, ct1: float | None, ct2: float | None, at: datetime,
                  lab: Lab | None) -> None:  # fmt: skip
    """A result's fields on the tube; a tube resulted is also received and sealed by then."""
    tube.result, tube.ct_orf1ab, tube.ct_n, tube.resulted_at = result, ct1, ct2, at
    if lab is not None and tube.lab_id is None:
        tube.lab = lab
    if tube.received_at is None:
        tube.received_at = at
    if tube.sealed_at is None:
        tube.sealed_at = at


def record_first_results(user: Any, rows: list[tuple[int, str, float | None, float | None, datetime | None]], *,
                         lab: Lab | None = None, import_run: int | None = None) -> None:  # fmt: skip
    """``record_result`` for many tubes that have no result yet, each a positive pool or an invalid tube
    (rows: tube id, result, Ct ORF1ab, Ct N, tested at): the same result versions, tube fields and audit
    events, with the cascade set-based (``positive_pools``, ``_resample_many``) instead of a round of
    queries per tube. Runs inside the caller's transaction; other tubes go through ``record_result``."""
    if not rows:
        return
    now = timezone.now()
    by = user.pk if getattr(user, "pk", None) else None
    ids = [r[0] for r in rows]
    tubes: dict[int, Tube] = {}
    versions: dict[int, int] = {}
    for chunk in _chunks(ids):
        tubes.update((t.pk, t) for t in Tube.objects.select_for_update().filter(pk__in=chunk))
        versions.update(TubeResult.objects.filter(tube_id__in=chunk).values("tube_id").annotate(n=Count("id"))
                        .values_list("tube_id", "n"))  # fmt: skip
    fresh: list[TubeResult] = []
    for tube_id, result, ct1, ct2, tested in rows:
        tube = tubes[tube_id]
        pool = result == Result.POSITIVE and tube.capacity > 1
        if tube.result or tube.is_retest or not (pool or result == Result.INVALID):
            raise ValueError(f"tube {tube.barcode}: not a first result of a pool or an invalid tube")
        fresh.append(TubeResult(tube=tube, version=versions.get(tube_id, 0) + 1, result=result, ct_orf1ab=ct1,
                                ct_n=ct2, tested_at=tested, lab=lab or tube.lab, by_id=by, at=now,
                                import_run=import_run, is_correction=False))  # fmt: skip
        _apply_result(tube, result, ct1, ct2, tested or now, lab)
    TubeResult.objects.bulk_create(fresh, batch_size=_CHUNK)
    Tube.objects.bulk_update(list(tubes.values()), ["result", "ct_orf1ab", "ct_n", "resulted_at", "lab", "received_at",
                                                    "sealed_at"], batch_size=_CHUNK)  # fmt: skip
    for v in fresh:
        _audit_tube(user, "screening.result", tubes[v.tube_id],
                    {"result": v.result, "version": v.version, "correction": False, "previous": "",
                     "ct_orf1ab": v.ct_orf1ab, "ct_n": v.ct_n})  # fmt: skip
    pools = [tubes[r[0]] for r in rows if r[1] == Result.POSITIVE]
    if pools:
        positive_pools(user, pools)
    invalid = [tubes[r[0]] for r in rows if r[1] == Result.INVALID]
    if invalid:
        _resample_many(user, invalid)


def positive_pool(user: Any, tube: Tube) -> list[Retest]:
    """Every member held in place and re-sampled by single tube within the policy's clock."""
    return positive_pools(user, [tube])[tube.pk]


def positive_pools(user: Any, tubes: list[Tube]) -> dict[int, list[Retest]]:
    """``positive_pool`` for many tubes at once (a lab file's positives): one INSERT…SELECT of holds and one
    of retests from the pools' registrations, whatever the number of pools, then per pool its audit event, and
    ``pools.positive`` once for them all (the command centre issues their tasks together). Members already held
    or already ordered a retest for the same tube are skipped, so a repeated call adds nothing. Returns each
    tube's pending retests."""
    pp = active_policy().screening.positive_pool
    now = timezone.now()
    due = now + timedelta(hours=float(pp.hold_and_resample_hours))
    ids = [t.pk for t in tubes]
    members = _member_counts(ids)
    if pp.hold_in_place:
        _from_members(Hold, ids, {"status": Hold.Status.ACTIVE, "placed_at": now}, ("tube_id", "person_id"))
    _from_members(Retest, ids, {"reason": Retest.Reason.POSITIVE_POOL, "status": Retest.Status.PENDING,
                                "ordered_at": now, "due_at": due},
                  ("source_tube_id", "person_id"), {"reason": Retest.Reason.POSITIVE_POOL})  # fmt: skip
    pending: dict[int, list[Retest]] = {pk: [] for pk in ids}
    for chunk in _chunks(ids):
        for r in Retest.objects.filter(source_tube_id__in=chunk, reason=Retest.Reason.POSITIVE_POOL,
                                       status=Retest.Status.PENDING).order_by("pk"):  # fmt: skip
            pending[r.source_tube_id].append(r)
    for tube in tubes:
        _audit_tube(user, "screening.pool_positive", tube,
                    {"members": members.get(tube.pk, 0), "retests": len(pending[tube.pk]),
                     "due": due.isoformat()})  # fmt: skip
    if tubes:
        events.emit("pools.positive", pools=[(tube, pending[tube.pk]) for tube in tubes], user=user)
    return pending


# Rows per statement of the set-based cascade: under SQLite's limit of bound parameters.
_CHUNK = 500


def _chunks(ids: list[int]) -> list[list[int]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def _member_counts(tube_ids: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for chunk in _chunks(tube_ids):
        counts.update(Registration.objects.filter(tube_id__in=chunk).values("tube_id").annotate(n=Count("id"))
                      .values_list("tube_id", "n"))  # fmt: skip
    return counts


def _from_members(model: Any, tube_ids: list[int], values: dict[str, Any], key: tuple[str, str],
                  match: dict[str, Any] | None = None) -> None:  # fmt: skip
    """One row of ``model`` (Hold or Retest) per member of each tube, in one INSERT…SELECT from the
    registrations: person, tube, the tube's campaign and the member's region as ``positive_pool`` always took
    them, plus the constant ``values``. A member whose row exists (same tube and person on ``key``, and
    ``match``) is skipped, which is what makes the cascade idempotent."""
    ops = connection.ops
    table, reg, tube = model._meta.db_table, Registration._meta.db_table, Tube._meta.db_table
    columns = ["person_id", key[0], "campaign_id", "region_id", *values]
    consts = [ops.adapt_datetimefield_value(v) if isinstance(v, datetime) else v for v in values.values()]
    exists = " AND ".join([f"x.{key[0]} = r.tube_id", f"x.{key[1]} = r.person_id",
                           *(f"x.{c} = %s" for c in match or {})])  # fmt: skip
    with connection.cursor() as cur:
        for chunk in _chunks(tube_ids):
            marks = ", ".join(["%s"] * len(chunk))
            cur.execute(f"""INSERT INTO {table} ({", ".join(columns)})
                            SELECT r.person_id, r.tube_id, t.campaign_id, r.region_id{", %s" * len(consts)}
                            FROM {reg} r JOIN {tube} t ON t.id = r.tube_id
                            WHERE r.tube_id IN ({marks})
                              AND NOT EXISTS (SELECT 1 FROM {table} x WHERE {exists})""",
                        [*consts, *chunk, *(match or {}).values()])  # fmt: skip


def _audit_tube(user: Any, action: str, tube: Tube, changes: dict[str, Any]) -> None:
    """One event on a tube: ``audit.append`` (one statement on PostgreSQL), same fields as ``audit.record``."""
    audit.append(user or "lab", action, object_type=Tube._meta.label_lower, object_id=str(tube.pk),
                 region_code=tube.region_id, changes=changes)  # fmt: skip


def _withdraw_positive(user: Any, tube: Tube) -> None:
    """A positive corrected away: pending retests are cancelled and holds lifted (cases stay: a clinician
    excludes a case, not the lab file)."""
    now = timezone.now()
    n = Retest.objects.filter(source_tube=tube, status=Retest.Status.PENDING).update(status=Retest.Status.CANCELLED)
    h = Hold.objects.filter(tube=tube, status=Hold.Status.ACTIVE).update(status=Hold.Status.LIFTED, lifted_at=now)
    audit.record(user or "lab", "screening.positive_withdrawn", tube, region_code=tube.region_id,
                 changes={"retests_cancelled": n, "holds_lifted": h})  # fmt: skip


def _resample(user: Any, tube: Tube) -> None:
    """An invalid tube: its members go on the resample list (no hold: nothing positive is known)."""
    _resample_many(user, [tube])


def _resample_many(user: Any, tubes: list[Tube]) -> None:
    """``_resample`` for many invalid tubes: one INSERT…SELECT of retests, then one audit event per tube."""
    hours = float(active_policy().screening.positive_pool.hold_and_resample_hours)
    now = timezone.now()
    ids = [t.pk for t in tubes]
    members = _member_counts(ids)
    _from_members(Retest, ids, {"reason": Retest.Reason.INVALID, "status": Retest.Status.PENDING, "ordered_at": now,
                                "due_at": now + timedelta(hours=hours)},
                  ("source_tube_id", "person_id"), {"reason": Retest.Reason.INVALID})  # fmt: skip
    for tube in tubes:
        _audit_tube(user, "screening.resample", tube, {"members": members.get(tube.pk, 0)})


def _open_case(user: Any, person_id: int, tube: Tube, sampled_at: datetime | None) -> Any:
    from cordon.cases.services import report_case
    from cordon.people.models import Person

    person = Person.objects.get(pk=person_id)
    county = person.region_id[:6]
    return report_case(user, person, classification="asymptomatic", region_code=county, found_by="screening",
                       found_under_control=False, sampled_at=sampled_at, first_positive_at=sampled_at)  # fmt: skip


def _single_positive(user: Any, tube: Tube) -> None:
    reg = Registration.objects.filter(tube=tube).first()
    if reg is not None:
        case = _open_case(user, reg.person_id, tube, reg.collected_at)
        audit.record(user or "lab", "screening.single_positive", tube, region_code=tube.region_id,
                     changes={"case": getattr(case, "pk", None)})  # fmt: skip


def _resolve_retest_tube(user: Any, tube: Tube, result: str) -> None:
    for retest in Retest.objects.filter(retest_tube=tube).exclude(status=Retest.Status.CANCELLED):
        resolve_retest(user, retest, result, _checked=True)


def sample_retest(user: Any, retest: Retest, barcode: str, collected_at: datetime | None = None) -> Retest:
    """The emergency sampling team takes the single-tube re-sample: a tube of one, in the same campaign."""
    require(user, "scan")
    if not in_jurisdiction(user, retest.region_id):
        raise FieldError("retest", str(retest.pk), "outside your jurisdiction")
    if retest.status != Retest.Status.PENDING:
        raise FieldError("retest", str(retest.pk), f"retest is {retest.status}, not awaiting a sample")
    barcode = barcode.strip()
    if not barcode:
        raise FieldError("tube", "", "required")
    if Tube.objects.filter(barcode=barcode).exists():
        raise FieldError("tube", barcode, "barcode already used")
    at = collected_at or timezone.now()
    with transaction.atomic():
        source = retest.source_tube
        tube = Tube.objects.create(barcode=barcode, campaign_id=retest.campaign_id, site_id=source.site_id,
                                   region_id=source.region_id, capacity=1, members=1, opened_at=at, sealed_at=at,
                                   collector=getattr(user, "username", ""), is_retest=True)  # fmt: skip
        Registration.objects.create(scan_id=f"retest-{retest.pk}-{barcode}"[:64], campaign_id=retest.campaign_id,
                                    tube=tube, person_id=retest.person_id, site_id=source.site_id,
                                    region_id=retest.region_id, collected_at=at, digest="retest",
                                    created_at=timezone.now())  # fmt: skip
        retest.retest_tube, retest.sampled_at, retest.status = tube, at, Retest.Status.SAMPLED
        retest.save(update_fields=["retest_tube", "sampled_at", "status"])
        audit.record(user, "screening.retest_sampled", retest, region_code=retest.region_id,
                     changes={"tube": barcode})  # fmt: skip
    return retest


def resolve_retest(user: Any, retest: Retest, result: str, *, _checked: bool = False) -> Retest:
    """A retest's result: negative lifts the hold, positive opens a case, invalid puts it back to pending."""
    if not _checked:
        require(user, "lab_results")
        if not in_jurisdiction(user, retest.region_id):
            raise FieldError("retest", str(retest.pk), "outside your jurisdiction")
    if result not in Result.values:
        raise FieldError("result", result, "expected negative, positive or invalid")
    pp = active_policy().screening.positive_pool
    now = timezone.now()
    with transaction.atomic():
        old = retest.status
        if result == Result.INVALID:
            retest.status, retest.retest_tube = Retest.Status.PENDING, None
            retest.due_at = max(retest.due_at, now + timedelta(hours=float(pp.hold_and_resample_hours)))
            retest.save(update_fields=["status", "retest_tube", "due_at"])
        else:
            retest.status = result
            retest.resulted_at = now
            hold = Hold.objects.filter(tube_id=retest.source_tube_id, person_id=retest.person_id).first()
            if result == Result.NEGATIVE and hold is not None and pp.negative_retest_lifts_hold:
                hold.status, hold.lifted_at = Hold.Status.LIFTED, now
                hold.save(update_fields=["status", "lifted_at"])
            if result == Result.POSITIVE and pp.positive_retest_opens_case and retest.case_id is None:
                case = _open_case(user, retest.person_id, retest.source_tube, retest.sampled_at)
                retest.case_id = getattr(case, "pk", None)
                if hold is not None:
                    hold.status = Hold.Status.CASE
                    hold.save(update_fields=["status"])
            retest.save(update_fields=["status", "resulted_at", "case_id"])
        audit.record(user or "lab", "screening.retest_result", retest, region_code=retest.region_id,
                     changes={"from": old, "result": result, "case": retest.case_id})  # fmt: skip
        events.emit("retest.resulted", retest=retest, user=user)
    return retest
