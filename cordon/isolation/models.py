"""Isolation sites, rooms, placements with their policy-computed test schedule, restarts, transfers.

A placement stores the schedule it was given (start, end, one PlacementTest row per test day), computed
from the active policy when it was made: a later policy change does not move a clock that is already
running, but a restart or a missed test day does, and each such change is recorded.

Scoping: a site belongs to its region; a placement or transfer is visible to the jurisdiction of the
person (``region``) and to the jurisdiction running the site (``site_region``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class SiteKind(models.TextChoices):
    HOTEL = "hotel", _("Hotel")
    PURPOSE_BUILT = "purpose_built", _("Purpose-built site")


class SiteStatus(models.TextChoices):
    OPEN = "open", pgettext_lazy("isolation site status", "Open")
    FULL = "full", _("Full")
    CLOSED = "closed", _("Closed")
    DISINFECTING = "disinfecting", _("Disinfecting")


class IsolationSite(models.Model):
    """集中隔离点."""

    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=SiteKind.choices, default=SiteKind.HOTEL)
    region = models.ForeignKey("regions.Region", verbose_name=_("region"), on_delete=models.PROTECT,
                               related_name="+")  # fmt: skip
    address = models.CharField(_("address"), max_length=200, blank=True)
    floors = models.PositiveSmallIntegerField(_("floors"), default=1)
    status = models.CharField(_("status"), max_length=16, choices=SiteStatus.choices, default=SiteStatus.OPEN)
    staff_count = models.PositiveIntegerField(_("staff"), default=0)
    contact_name = models.CharField(_("contact person"), max_length=50, blank=True)
    contact_phone = models.CharField(_("contact phone"), max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("isolation site")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Room(models.Model):
    site = models.ForeignKey(IsolationSite, on_delete=models.CASCADE, related_name="rooms")
    floor = models.SmallIntegerField(_("floor"))
    number = models.CharField(_("room"), max_length=16)
    beds = models.PositiveSmallIntegerField(_("beds"), default=1)
    in_service = models.BooleanField(_("in service"), default=True)

    class Meta:
        ordering = ["site", "floor", "number"]
        constraints = [models.UniqueConstraint(fields=["site", "number"], name="room_unique_per_site")]

    def __str__(self) -> str:
        return f"{self.site.code}-{self.number}"


class SampleResult(models.TextChoices):
    PENDING = "pending", _("Pending")
    NEGATIVE = "negative", _("Negative")
    POSITIVE = "positive", _("Positive")


class EnvironmentSample(models.Model):
    """An environment swab of a room (or of the site's common areas when ``room`` is empty)."""

    site = models.ForeignKey(IsolationSite, on_delete=models.CASCADE, related_name="environment_samples")
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.CASCADE, related_name="samples")
    sampled_at = models.DateTimeField(_("sampled at"))
    result = models.CharField(_("result"), max_length=10, choices=SampleResult.choices, default=SampleResult.PENDING)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")  # fmt: skip

    class Meta:
        ordering = ["sampled_at", "pk"]
        indexes = [models.Index(fields=["site", "room", "sampled_at"], name="envsample_room_idx")]

    def __str__(self) -> str:
        return f"environment sample #{self.pk} ({self.result})"


# Labels of the policy's phase kinds and rules (the codes themselves come from the policy file).
PHASE_LABELS = {
    "centralized_quarantine": _("Centralized quarantine"),
    "home_quarantine": _("Home quarantine"),
    "home_health_monitoring": _("Home health monitoring"),
    "home_isolation": _("Home isolation"),
}
SUBJECT_LABELS = {
    "close_contact": _("Close contact"),
    "secondary_contact": _("Secondary contact"),
}


class PlacementStatus(models.TextChoices):
    ACTIVE = "active", _("Under management")
    RELEASED = "released", _("Released")
    TO_HOSPITAL = "to_hospital", _("Transferred to hospital")
    ENDED = "ended", _("Ended (moved on)")


class Placement(models.Model):
    """One person under one phase of management: in a site room, or at home."""

    person = models.ForeignKey("people.Person", on_delete=models.PROTECT, related_name="placements")
    contact = models.ForeignKey("tracing.Contact", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="placements")  # fmt: skip
    # The policy rule: close_contact, secondary_contact, traveller_<level>.
    subject = models.CharField(_("subject"), max_length=32)
    # The phase kind from the policy: centralized_quarantine, home_quarantine, home_health_monitoring, home_isolation.
    kind = models.CharField(_("type"), max_length=32)
    phase = models.PositiveSmallIntegerField(default=0)  # index of the phase in the policy schedule
    site = models.ForeignKey(IsolationSite, null=True, blank=True, on_delete=models.PROTECT, related_name="placements")
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.PROTECT, related_name="placements")
    floor = models.SmallIntegerField(null=True, blank=True)  # denormalised from room for the restart rule
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+")  # the person's
    site_region = models.CharField(max_length=15, blank=True, db_index=True)  # the site's, for scoping
    household = models.CharField(max_length=64, blank=True)
    clock_start = models.DateField(_("clock start"))  # day 0: last exposure, departure, or last restart
    start_date = models.DateField(_("from"))  # day 1 of this phase
    end_date = models.DateField(_("until"))  # last day under management (inclusive)
    entry_date = models.DateField(_("entry day"))  # the cohort: the day the person came in
    placed_at = models.DateTimeField()
    status = models.CharField(_("status"), max_length=12, choices=PlacementStatus.choices,
                              default=PlacementStatus.ACTIVE)  # fmt: skip
    released_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.CharField(max_length=200, blank=True)
    restarts = models.PositiveSmallIntegerField(default=0)
    missed_days = models.PositiveSmallIntegerField(default=0)
    previous = models.OneToOneField("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="follow_on")
    case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    policy_name = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")  # fmt: skip

    class Meta:
        indexes = [
            models.Index(fields=["region", "status"], name="placement_region_idx"),
            models.Index(fields=["site", "status", "floor"], name="placement_site_floor_idx"),
            models.Index(fields=["status", "end_date"], name="placement_end_idx"),
        ]

    def __str__(self) -> str:
        return f"placement #{self.pk} ({self.kind})"

    @property
    def centralized(self) -> bool:
        return self.site_id is not None

    @property
    def kind_label(self) -> str:
        return str(PHASE_LABELS.get(self.kind, self.kind))

    @property
    def subject_label(self) -> str:
        if self.subject.startswith("traveller_"):
            return f"{_('Inbound traveller')} ({self.subject.removeprefix('traveller_')})"
        return str(SUBJECT_LABELS.get(self.subject, self.subject))


class TestKind(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    ARRIVAL = "arrival", _("On arrival")
    MAKEUP = "makeup", _("Make-up")


class TestStatus(models.TextChoices):
    PENDING = "pending", _("Due")
    NEGATIVE = "negative", _("Negative")
    POSITIVE = "positive", _("Positive")
    MISSED = "missed", _("Missed")
    BEFORE_ARRIVAL = "before_arrival", _("Before arrival")
    CANCELLED = "cancelled", _("Cancelled")


class PlacementTest(models.Model):
    placement = models.ForeignKey(Placement, on_delete=models.CASCADE, related_name="tests")
    day = models.PositiveSmallIntegerField()  # day number in the phase (1 = start_date)
    due_date = models.DateField()
    kind = models.CharField(max_length=10, choices=TestKind.choices, default=TestKind.SCHEDULED)
    status = models.CharField(max_length=16, choices=TestStatus.choices, default=TestStatus.PENDING)
    sampled_at = models.DateTimeField(null=True, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")  # fmt: skip

    class Meta:
        ordering = ["due_date", "pk"]
        indexes = [models.Index(fields=["due_date", "status"], name="ptest_due_idx")]

    def __str__(self) -> str:
        return f"test of placement {self.placement_id} on {self.due_date}"


class RestartCause(models.TextChoices):
    PERSON_POSITIVE = "person_positive", _("A person tested positive")
    ENVIRONMENT_POSITIVE = "environment_positive", _("Positive environment sample")


class Restart(models.Model):
    """A cross-infection restart: who was affected and why."""

    site = models.ForeignKey(IsolationSite, on_delete=models.CASCADE, related_name="restarts")
    cause = models.CharField(max_length=24, choices=RestartCause.choices)
    scope = models.CharField(max_length=8)  # floor | site | room
    floors = models.JSONField(default=list)
    source_placement = models.ForeignKey(Placement, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source_sample = models.ForeignKey(EnvironmentSample, null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")  # fmt: skip
    clock_start = models.DateField()
    at = models.DateTimeField()
    people_affected = models.PositiveIntegerField(default=0)
    placements = models.ManyToManyField(Placement, related_name="restart_events", blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"restart #{self.pk} ({self.cause})"


class TripStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    DISPATCHED = "dispatched", _("Dispatched")
    PICKED_UP = "picked_up", _("Picked up")
    ARRIVED = "arrived", _("Arrived")


class Trip(models.Model):
    """One vehicle run from a pick-up area to a site."""

    site = models.ForeignKey(IsolationSite, on_delete=models.PROTECT, related_name="trips")
    pickup_area = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+")
    seats = models.PositiveSmallIntegerField()
    vehicle = models.CharField(_("vehicle"), max_length=32, blank=True)
    status = models.CharField(max_length=12, choices=TripStatus.choices, default=TripStatus.PLANNED)
    created_at = models.DateTimeField()
    dispatched_at = models.DateTimeField(null=True, blank=True)
    picked_up_at = models.DateTimeField(null=True, blank=True)
    arrived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"trip #{self.pk}"


class TransferStatus(models.TextChoices):
    REQUESTED = "requested", _("Requested")
    DISPATCHED = "dispatched", _("Dispatched")
    PICKED_UP = "picked_up", _("Picked up")
    ARRIVED = "arrived", _("Arrived")
    CANCELLED = "cancelled", _("Cancelled")


OPEN_TRANSFER = [TransferStatus.REQUESTED, TransferStatus.DISPATCHED, TransferStatus.PICKED_UP]


class Transfer(models.Model):
    person = models.ForeignKey("people.Person", on_delete=models.PROTECT, related_name="+")
    contact = models.ForeignKey("tracing.Contact", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="transfers")  # fmt: skip
    contact_kind = models.CharField(max_length=12, blank=True)
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+")  # the person's
    pickup_area = models.CharField(max_length=15)  # community (or township) code
    site = models.ForeignKey(IsolationSite, null=True, blank=True, on_delete=models.PROTECT, related_name="transfers")
    site_region = models.CharField(max_length=15, blank=True, db_index=True)
    trip = models.ForeignKey(Trip, null=True, blank=True, on_delete=models.SET_NULL, related_name="transfers")
    placement = models.ForeignKey(Placement, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=12, choices=TransferStatus.choices, default=TransferStatus.REQUESTED)
    identified_at = models.DateTimeField()
    requested_at = models.DateTimeField()
    due_at = models.DateTimeField()
    dispatched_at = models.DateTimeField(null=True, blank=True)
    picked_up_at = models.DateTimeField(null=True, blank=True)
    arrived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["region", "status"], name="transfer_region_idx"),
            models.Index(fields=["status", "due_at"], name="transfer_due_idx"),
        ]

    def __str__(self) -> str:
        return f"transfer #{self.pk}"
