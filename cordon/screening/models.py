"""Mass screening (核酸筛查): campaigns (rounds), sampling sites, pooled tubes, registrations, labs, results,
and the follow-up of every member of a positive pool (holds and single-tube retests).

Rows that belong to a place carry its region code (``region``), so jurisdiction scoping is a prefix range on
an indexed column, like everywhere else in Cordon. Registrations are the high-volume table (one row per
swab); they carry ``campaign`` and ``person`` so that coverage (应检尽检) is one anti-join.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Campaign(models.Model):
    class Status(models.TextChoices):
        PLANNED = "planned", _("Planned")
        RUNNING = "running", _("Running")
        FINISHED = "finished", _("Finished")

    name = models.CharField(_("name"), max_length=100)
    round_number = models.PositiveIntegerField(_("round"), default=1)
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next_rounds",
                                 verbose_name=_("previous round"))  # fmt: skip
    # The owning jurisdiction: the narrowest region containing every covered region.
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+", verbose_name=_("region"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PLANNED)
    starts_at = models.DateTimeField(_("start"))
    deadline = models.DateTimeField(_("deadline"))
    target_hours = models.PositiveIntegerField(_("target hours"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-starts_at", "-pk"]
        verbose_name = _("screening campaign")

    def __str__(self) -> str:
        return f"{self.name} #{self.round_number}"


class CampaignArea(models.Model):
    """One covered region of a campaign with the kind of area it is, which fixes its pool size."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="areas")
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+")
    area_kind = models.CharField(_("area kind"), max_length=32)
    pool_size = models.PositiveSmallIntegerField(_("pool size"))
    household_tubes = models.BooleanField(_("one tube per household"), default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "region"], name="campaign_area_unique")]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.region_id}"


class Site(models.Model):
    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+", verbose_name=_("grid"))
    hours = models.CharField(_("opening hours"), max_length=50, blank=True)
    staff = models.PositiveIntegerField(_("samplers"), default=0)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("sampling site")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Lab(models.Model):
    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+")
    daily_capacity = models.PositiveIntegerField(_("tubes per day"), default=0)

    class Meta:
        ordering = ["code"]
        verbose_name = _("laboratory")

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Result(models.TextChoices):
    NEGATIVE = "negative", _("Negative")
    POSITIVE = "positive", _("Positive")
    INVALID = "invalid", _("Invalid")


class Tube(models.Model):
    # Unique through a named constraint, not ``unique=True``: on PostgreSQL that would add a second,
    # pattern-ops index that no query uses and every swab pays for.
    barcode = models.CharField(_("barcode"), max_length=40)
    # The campaign and region are looked up through the named campaign and region indexes below; the automatic
    # foreign-key indexes (and the region's pattern-ops twin) would only repeat them.
    # No database constraint on the keys a round writes a hundred thousand times (see Registration): the engine
    # resolves them by join in the same transaction, and the deferred checks cost more than the insert itself.
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="tubes", db_index=False,
                                 db_constraint=False)  # fmt: skip
    site = models.ForeignKey(Site, null=True, on_delete=models.PROTECT, related_name="tubes", db_constraint=False)
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+",
                               db_index=False, db_constraint=False)  # the site's grid
    capacity = models.PositiveSmallIntegerField(_("pool size"))
    members = models.PositiveSmallIntegerField(_("swabs"), default=0)
    collector = models.CharField(_("collector"), max_length=64, blank=True)
    opened_at = models.DateTimeField(_("opened"))
    sealed_at = models.DateTimeField(_("sealed"), null=True, blank=True)
    received_at = models.DateTimeField(_("received"), null=True, blank=True)
    # No index on the lab either: a result sets it (see Meta). Turnaround reads a campaign's tubes by campaign.
    lab = models.ForeignKey(Lab, null=True, blank=True, on_delete=models.PROTECT, related_name="tubes",
                            db_index=False, db_constraint=False)  # fmt: skip
    resulted_at = models.DateTimeField(_("resulted"), null=True, blank=True)
    result = models.CharField(_("result"), max_length=10, choices=Result.choices, blank=True)
    ct_orf1ab = models.FloatField(null=True, blank=True)
    ct_n = models.FloatField(null=True, blank=True)
    is_retest = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("tube")
        constraints = [models.UniqueConstraint(fields=["barcode"], name="tube_barcode_unique")]
        # A round's results update a million tubes. No index covers what a result sets (result, lab, times), and
        # on PostgreSQL the table keeps half of each page free (fillfactor 50, migration 0008): the result then
        # updates the tube in place (a heap-only tuple), instead of writing a new entry into every index of the
        # tube. Positive pools are found through their result versions (TubeResult's partial index).
        indexes = [
            models.Index(fields=["campaign"], name="tube_campaign_idx"),
            models.Index(fields=["region"], name="tube_region_idx"),
        ]

    def __str__(self) -> str:
        return self.barcode


class Registration(models.Model):
    """One swab: a person sampled into a tube. ``scan_id`` is the terminal's own id, for idempotency.

    The highest-volume table of the platform (ten million rows a day for a large city). Its foreign keys
    carry no database constraint (``db_constraint=False``): the only writer is the set-based engine in
    ``ingest.py`` and ``services.sample_retest``, which resolve every key by join in the same transaction,
    and a per-row constraint trigger on five keys would cost more than the insert itself. Deletion rules
    (PROTECT) still hold through the ORM. For the same reason it has only the indexes its reads use:
    (campaign, person) for coverage, (tube, person) for pooling rules, a BRIN on collected_at for pace.
    """

    scan_id = models.CharField(max_length=64)  # unique by constraint (see Tube.barcode for why)
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="registrations", db_constraint=False,
        db_index=False)
    tube = models.ForeignKey(Tube, on_delete=models.PROTECT, related_name="registrations", db_constraint=False,
        db_index=False)
    person = models.ForeignKey("people.Person", on_delete=models.PROTECT, related_name="+", db_constraint=False,
        db_index=False)
    site = models.ForeignKey(Site, null=True, on_delete=models.PROTECT, related_name="+", db_constraint=False,
        db_index=False)
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+",
                               db_constraint=False,
        db_index=False)  # the person's
    guardian = models.ForeignKey("people.Person", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+", db_constraint=False,
        db_index=False)
    collected_at = models.DateTimeField()
    digest = models.CharField(max_length=32)  # of the scan's content: a re-sent scan_id must say the same
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scan_id"], name="registration_scan_id_unique"),
            models.UniqueConstraint(fields=["tube", "person"], name="registration_tube_person_unique"),
        ]
        indexes = [
            models.Index(fields=["campaign", "person"], name="reg_campaign_person_idx"),
        ]
        # collected_at (pace) has a BRIN index on PostgreSQL, made by migration 0004 (Django has no portable
        # BRIN): swabs arrive in time order, and a B-tree here cost a fifth of every registration write.

    def __str__(self) -> str:
        return self.scan_id


class TubeResult(models.Model):
    """Every result a lab reported for a tube, in order. A changed result is a new version (a correction),
    never an overwrite: who reported what, when, stays readable."""

    # A round writes a result version per tube (a hundred thousand for a city): the keys are resolved by the
    # importer in the same transaction and carry no database check, and only the (tube, version) index is
    # kept, the one every read of a tube's history uses.
    tube = models.ForeignKey(Tube, on_delete=models.CASCADE, related_name="results", db_constraint=False,
                             db_index=False)  # fmt: skip
    version = models.PositiveSmallIntegerField()
    result = models.CharField(max_length=10, choices=Result.choices)
    ct_orf1ab = models.FloatField(null=True, blank=True)
    ct_n = models.FloatField(null=True, blank=True)
    tested_at = models.DateTimeField(null=True, blank=True)
    lab = models.ForeignKey(Lab, null=True, on_delete=models.PROTECT, related_name="+", db_constraint=False,
                            db_index=False)  # fmt: skip
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                           related_name="+", db_constraint=False, db_index=False)  # fmt: skip
    at = models.DateTimeField()
    import_run = models.BigIntegerField(null=True, blank=True)
    is_correction = models.BooleanField(default=False)

    class Meta:
        ordering = ["tube", "version"]
        constraints = [models.UniqueConstraint(fields=["tube", "version"], name="tube_result_version_unique")]
        # The positive versions, a handful in a round: how the positive pools of a campaign are found.
        indexes = [models.Index(fields=["tube"], condition=models.Q(result="positive"), name="tuberesult_positive_idx")]

    def __str__(self) -> str:
        return f"{self.tube_id} v{self.version}: {self.result}"


class Hold(models.Model):
    """A member of a positive pool held in place until their single-tube retest is negative."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Held")
        LIFTED = "lifted", _("Lifted")
        CASE = "case", _("Opened as a case")

    person = models.ForeignKey("people.Person", on_delete=models.PROTECT, related_name="+")
    tube = models.ForeignKey(Tube, on_delete=models.PROTECT, related_name="holds")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="holds")
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    placed_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tube", "person"], name="hold_tube_person_unique")]
        indexes = [models.Index(fields=["region", "status"], name="hold_region_status_idx")]

    def __str__(self) -> str:
        return f"hold {self.person_id} ({self.tube_id})"


class Retest(models.Model):
    """A single-tube re-sample of one person: after a positive pool (held) or an invalid tube (resample)."""

    class Reason(models.TextChoices):
        POSITIVE_POOL = "positive_pool", _("Positive pool")
        INVALID = "invalid", _("Invalid tube")

    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting sample")
        SAMPLED = "sampled", _("Sampled, awaiting result")
        NEGATIVE = "negative", _("Negative")
        POSITIVE = "positive", _("Positive")
        CANCELLED = "cancelled", _("Cancelled")

    person = models.ForeignKey("people.Person", on_delete=models.PROTECT, related_name="+")
    source_tube = models.ForeignKey(Tube, on_delete=models.PROTECT, related_name="retests")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="retests")
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    ordered_at = models.DateTimeField()
    due_at = models.DateTimeField()
    retest_tube = models.ForeignKey(Tube, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sampled_at = models.DateTimeField(null=True, blank=True)
    resulted_at = models.DateTimeField(null=True, blank=True)
    case_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source_tube", "person", "reason"], name="retest_source_person_unique")
        ]
        indexes = [
            models.Index(fields=["region", "status"], name="retest_region_status_idx"),
            models.Index(fields=["campaign", "status"], name="retest_campaign_status_idx"),
        ]

    def __str__(self) -> str:
        return f"retest {self.person_id} ({self.reason})"


class CoverageState(models.Model):
    """How far a campaign's pre-aggregated coverage (``CoverageCount``) has counted.

    Stored counts cover registrations with ``id <= reg_watermark`` and people with ``id <= person_watermark``;
    readers add the rows above the watermarks live, so figures are exact while the stored part stays cheap
    to read. A watermark only moves past ids whose writing transactions have all ended (``candidate_*`` wait
    for that on PostgreSQL), so a batch that commits late is never skipped. ``registry_signature`` and
    ``dirty`` say when people moved between regions (an import run, an edit): the stored part is then
    recounted at the same watermarks.
    """

    campaign = models.OneToOneField(Campaign, primary_key=True, on_delete=models.CASCADE, related_name="coverage_state")
    reg_watermark = models.BigIntegerField(default=0)
    person_watermark = models.BigIntegerField(default=0)
    reg_candidate = models.BigIntegerField(null=True, blank=True)
    person_candidate = models.BigIntegerField(null=True, blank=True)
    candidate_xids = models.TextField(blank=True)  # transactions in flight when the candidates were read
    registry_signature = models.CharField(max_length=64, blank=True)
    dirty = models.BooleanField(default=False)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    rebuilt_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"coverage {self.campaign_id} @ {self.reg_watermark}"


class CoverageCount(models.Model):
    """Per campaign and leaf region (the region people are attached to): the registry's people there, how
    many of them have been sampled in the round, and how many households (same address and region) have at
    least one member sampled. Rolled up by code prefix on read."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    region = models.ForeignKey("regions.Region", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    target = models.PositiveIntegerField(default=0)
    sampled = models.PositiveIntegerField(default=0)
    households_sampled = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "region"], name="coverage_count_unique")]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.region_id} {self.sampled}/{self.target}"


def _mark_coverage_dirty(sender: object, instance: object, **kwargs: object) -> None:
    """A person whose region changes outside an import run moves between stored coverage rows: recount."""
    update_fields = kwargs.get("update_fields")
    pk = getattr(instance, "pk", None)
    if pk is None or kwargs.get("raw"):
        return
    if update_fields is not None and not ({"region", "region_id"} & set(update_fields)):
        return
    if update_fields is None:
        old = type(instance).objects.filter(pk=pk).values_list("region_id", flat=True).first()
        if old is None or old == getattr(instance, "region_id", None):
            return
    CoverageState.objects.filter(dirty=False).update(dirty=True)


def _mark_coverage_dirty_on_delete(sender: object, instance: object, **kwargs: object) -> None:
    CoverageState.objects.filter(dirty=False).update(dirty=True)


models.signals.pre_save.connect(_mark_coverage_dirty, sender="people.Person", dispatch_uid="screening_coverage_move")
models.signals.post_delete.connect(_mark_coverage_dirty_on_delete, sender="people.Person",
                                   dispatch_uid="screening_coverage_delete")  # fmt: skip
