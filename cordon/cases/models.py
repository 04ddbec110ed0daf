"""Cases, their reclassification history, investigations and trajectories.

A case is scoped by its managing region (``region``: normally the reporting county), which is the
jurisdiction that must investigate it; the person's own region may differ.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Classification(models.TextChoices):
    SUSPECTED = "suspected", _("Suspected")
    CONFIRMED = "confirmed", _("Confirmed")
    ASYMPTOMATIC = "asymptomatic", _("Asymptomatic")
    EXCLUDED = "excluded", _("Excluded")


class Severity(models.TextChoices):
    NONE = "none", _("No symptoms")
    MILD = "mild", _("Mild")
    MODERATE = "moderate", _("Moderate")
    SEVERE = "severe", _("Severe")
    CRITICAL = "critical", _("Critical")


class Origin(models.TextChoices):
    LOCAL = "local", _("Local")
    IMPORTED_ABROAD = "imported_abroad", _("Imported from abroad")
    IMPORTED_DOMESTIC = "imported_domestic", _("From another province")


class FoundBy(models.TextChoices):
    SCREENING = "screening", _("Mass screening")
    UNDER_CONTROL = "under_control", _("Among people under control")
    FEVER_CLINIC = "fever_clinic", _("Fever clinic")
    PORT = "port", _("Port of entry")
    KEY_GROUPS = "key_groups", _("Routine testing of key groups")
    CONTACT_TESTING = "contact_testing", _("Contact testing")
    OTHER = "other", _("Other")


class CaseStatus(models.TextChoices):
    IN_HOSPITAL = "in_hospital", _("In hospital")
    DISCHARGED = "discharged", _("Discharged")
    DIED = "died", _("Died")
    CLOSED = "closed", _("Closed (excluded)")


class Case(models.Model):
    number = models.CharField(_("case number"), max_length=32, unique=True)
    person = models.ForeignKey("people.Person", on_delete=models.PROTECT, related_name="cases")
    classification = models.CharField(_("classification"), max_length=16, choices=Classification.choices)
    severity = models.CharField(_("severity"), max_length=12, choices=Severity.choices, default=Severity.MILD)
    origin = models.CharField(_("origin"), max_length=20, choices=Origin.choices, default=Origin.LOCAL)
    origin_detail = models.CharField(_("imported from"), max_length=100, blank=True)
    found_by = models.CharField(_("found by"), max_length=20, choices=FoundBy.choices, default=FoundBy.OTHER)
    # 管控人员中发现: the bulletin's test of whether transmission is contained.
    found_under_control = models.BooleanField(_("found among people under control"), default=False)
    onset_date = models.DateField(_("onset date"), null=True, blank=True)
    sampled_at = models.DateTimeField(_("sampled at"), null=True, blank=True)
    first_positive_at = models.DateTimeField(_("first positive sample"), null=True, blank=True)
    diagnosed_at = models.DateTimeField(_("diagnosed at"), null=True, blank=True)
    reported_at = models.DateTimeField(_("reported at"))
    region = models.ForeignKey("regions.Region", verbose_name=_("managing region"), on_delete=models.PROTECT,
                               related_name="cases")  # fmt: skip
    hospital = models.CharField(_("treating hospital"), max_length=100, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=CaseStatus.choices, default=CaseStatus.IN_HOSPITAL)
    discharged_at = models.DateTimeField(_("discharged at"), null=True, blank=True)
    died_at = models.DateTimeField(_("died at"), null=True, blank=True)
    # Home health monitoring after discharge, scheduled from the policy at discharge time.
    home_monitoring_end = models.DateField(_("home monitoring until"), null=True, blank=True)
    home_test_dates = models.JSONField(_("home monitoring test dates"), default=list, blank=True)
    # The case that infected this one, where known: the edge of the transmission chain.
    source_case = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="infected", verbose_name=_("source case"))  # fmt: skip
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        indexes = [
            models.Index(fields=["region", "reported_at"], name="case_region_reported_idx"),
            models.Index(fields=["reported_at"], name="case_reported_idx"),
            models.Index(fields=["onset_date"], name="case_onset_idx"),
        ]

    def __str__(self) -> str:
        return self.number


class Reclassification(models.Model):
    """转归/订正: every change of classification. Asymptomatic → confirmed is a conversion, not a new case."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="reclassifications")
    from_classification = models.CharField(max_length=16, choices=Classification.choices, blank=True)
    to_classification = models.CharField(max_length=16, choices=Classification.choices)
    at = models.DateTimeField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [models.Index(fields=["at"], name="reclass_at_idx")]

    def __str__(self) -> str:
        return f"{self.case_id}: {self.from_classification} → {self.to_classification}"

    @property
    def is_conversion(self) -> bool:
        return (
            self.from_classification == Classification.ASYMPTOMATIC
            and self.to_classification == Classification.CONFIRMED
        )


class CaseTest(models.Model):
    """Tests of a case during treatment and after discharge: the policy's discharge rule reads these."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="tests")
    sampled_at = models.DateTimeField()
    positive = models.BooleanField()
    ct_n = models.FloatField(null=True, blank=True)
    ct_orf1ab = models.FloatField(null=True, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sampled_at"]

    def __str__(self) -> str:
        return f"test of {self.case_id} at {self.sampled_at:%Y-%m-%d %H:%M}"


class Investigation(models.Model):
    """流调: opened with the case; each deadline comes from the policy at opening time and is stored, so a
    later policy change does not move a clock that is already running."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")

    case = models.OneToOneField(Case, on_delete=models.CASCADE, related_name="investigation")
    investigator = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="investigations")  # fmt: skip
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField()
    trajectory_due_at = models.DateTimeField()
    preliminary_due_at = models.DateTimeField()
    contacts_due_at = models.DateTimeField()
    complete_due_at = models.DateTimeField()
    trajectory_published_at = models.DateTimeField(null=True, blank=True)
    preliminary_report_at = models.DateTimeField(null=True, blank=True)
    contacts_done_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    lookback_from = models.DateField()
    notes = models.TextField(blank=True)
    policy_name = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["region", "status"], name="inv_region_status_idx")]

    def __str__(self) -> str:
        return f"investigation of {self.case_id}"


class Exposure(models.Model):
    """One stop of a case's trajectory: a place or a journey in a time window."""

    class Transport(models.TextChoices):
        NONE = "", _("None")
        AIRCRAFT = "aircraft", _("Aircraft")
        TRAIN_SEALED = "train_sealed", _("Train (sealed, air-conditioned)")
        COACH_SEALED = "coach_sealed", _("Coach (sealed)")
        BUS_VENTILATED = "bus_ventilated", _("Bus (ventilated)")
        SHIP = "ship", _("Ship")
        CAR = "car", _("Car / taxi")

    class Source(models.TextChoices):
        INTERVIEW = "interview", _("Interview")
        CHECKIN = "checkin", _("Venue check-in data")
        TELECOM = "telecom", _("Telecom data")

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="exposures")
    place = models.CharField(_("place"), max_length=200)
    venue_code = models.CharField(_("venue code"), max_length=64, blank=True, db_index=True)
    address = models.CharField(_("address"), max_length=200, blank=True)
    region = models.ForeignKey("regions.Region", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    start = models.DateTimeField(_("from"))
    end = models.DateTimeField(_("to"))
    transport = models.CharField(_("transport"), max_length=16, choices=Transport.choices, blank=True, default="")
    transport_number = models.CharField(_("flight / train number"), max_length=32, blank=True)
    carriage = models.CharField(_("carriage"), max_length=8, blank=True)
    seat = models.CharField(_("seat"), max_length=8, blank=True)
    source = models.CharField(_("source"), max_length=12, choices=Source.choices, default=Source.INTERVIEW)
    notes = models.TextField(blank=True)
    published = models.BooleanField(_("published"), default=False)

    class Meta:
        ordering = ["start"]

    def __str__(self) -> str:
        return f"{self.place} {self.start:%m-%d %H:%M}"
