"""Contacts, the transmission graph and clusters.

A contact is visible to the jurisdiction where the person lives (who must find and transfer them) and to
the jurisdiction investigating the index case (who identified them): ``region`` is the former,
``index_region`` the latter.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ContactKind(models.TextChoices):
    CLOSE = "close", _("Close contact")
    SECONDARY = "secondary", _("Secondary contact")
    SPACETIME = "spacetime", _("Space-time companion")


class ContactStatus(models.TextChoices):
    PROPOSED = "proposed", _("Proposed (to confirm)")
    IDENTIFIED = "identified", _("Identified")
    NOTIFIED = "notified", _("Notified")
    LOCATED = "located", _("Located")
    TRANSFER_REQUESTED = "transfer_requested", _("Transfer requested")
    QUARANTINED = "quarantined", _("In quarantine")
    RELEASED = "released", _("Released")
    BECAME_CASE = "became_case", _("Became a case")
    DISMISSED = "dismissed", _("Dismissed")


# The pipeline order; a contact only moves forward (or out to became_case / dismissed).
PIPELINE = [
    ContactStatus.IDENTIFIED,
    ContactStatus.NOTIFIED,
    ContactStatus.LOCATED,
    ContactStatus.TRANSFER_REQUESTED,
    ContactStatus.QUARANTINED,
    ContactStatus.RELEASED,
]
# "Under management" for the dashboard and bulletin.
ACTIVE_STATUSES = [s for s in PIPELINE if s != ContactStatus.RELEASED]


class IdentifiedHow(models.TextChoices):
    INTERVIEW = "interview", _("Interview")
    MANIFEST = "manifest", _("Transport manifest")
    COMPUTED = "computed", _("Computed from check-in data")


class Contact(models.Model):
    index_case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="contacts")
    # For a secondary contact: the close contact through whom they were exposed.
    via = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="secondaries")
    person = models.ForeignKey("people.Person", on_delete=models.PROTECT, related_name="contact_records")
    kind = models.CharField(_("kind"), max_length=12, choices=ContactKind.choices, default=ContactKind.CLOSE)
    setting = models.CharField(_("setting"), max_length=32, blank=True)  # a code from the policy's settings
    status = models.CharField(_("status"), max_length=20, choices=ContactStatus.choices,
                              default=ContactStatus.IDENTIFIED)  # fmt: skip
    identified_how = models.CharField(max_length=12, choices=IdentifiedHow.choices, default=IdentifiedHow.INTERVIEW)
    # First exposure: a secondary contact's window opens at their close contact's first exposure.
    first_exposure_at = models.DateTimeField(_("first exposure"), null=True, blank=True)
    last_exposure_at = models.DateTimeField(_("last exposure"))
    last_exposure_date = models.DateField()  # calendar date in the deployment zone; the policy counts from it
    identified_at = models.DateTimeField()
    notified_at = models.DateTimeField(null=True, blank=True)
    located_at = models.DateTimeField(null=True, blank=True)
    transfer_requested_at = models.DateTimeField(null=True, blank=True)
    quarantined_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    transfer_due_at = models.DateTimeField()
    quarantine_end_date = models.DateField(null=True, blank=True)
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+")
    index_region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+")
    became_case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="as_contact")  # fmt: skip
    provenance = models.JSONField(default=dict, blank=True)
    # For exposures on shared transport: the trajectory stop (and manifest) this contact came from.
    exposure = models.ForeignKey("cases.Exposure", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="contacts")  # fmt: skip
    note = models.CharField(_("note"), max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")  # fmt: skip

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        constraints = [
            models.UniqueConstraint(fields=["index_case", "person", "kind"], name="contact_unique_per_case_kind")
        ]
        indexes = [
            models.Index(fields=["region", "status"], name="contact_region_status_idx"),
            models.Index(fields=["index_region", "status"], name="contact_index_region_idx"),
            models.Index(fields=["status", "transfer_due_at"], name="contact_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} contact #{self.pk} of {self.index_case_id}"


class ContactEvent(models.Model):
    """Each step of a contact's pipeline, with who and when: the timeliness figures are computed from these."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=20, choices=ContactStatus.choices)
    at = models.DateTimeField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.contact_id} → {self.status}"


class Cluster(models.Model):
    """聚集性疫情: linked cases with a setting."""

    name = models.CharField(_("name"), max_length=100)
    setting = models.CharField(_("setting"), max_length=100, blank=True)
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+")
    cases = models.ManyToManyField("cases.Case", related_name="clusters", blank=True)
    # The case with no known source in the group: generation 0 of the chain.
    root_case = models.ForeignKey("cases.Case", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    size = models.PositiveIntegerField(default=0)
    generations = models.PositiveIntegerField(default=0)
    first_reported_at = models.DateTimeField(null=True, blank=True)
    last_reported_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    notes = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["region"], name="cluster_region_idx")]

    def __str__(self) -> str:
        return self.name


class ContactTest(models.Model):
    """A test of a contact (recorded by isolation or screening): the secondary-contact release and upgrade
    rules read the close contact's first tests and the secondary contact's own."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="tests")
    sampled_at = models.DateTimeField()
    positive = models.BooleanField()
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")  # fmt: skip
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sampled_at", "pk"]

    def __str__(self) -> str:
        return f"test of contact {self.contact_id} at {self.sampled_at:%Y-%m-%d %H:%M}"


class ColocationRun(models.Model):
    """One run of the co-location engine for a case: its status is what the case page shows while the
    background task works."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    case = models.ForeignKey("cases.Case", on_delete=models.CASCADE, related_name="colocation_runs")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    window_from = models.DateTimeField()
    window_to = models.DateTimeField()
    task_id = models.CharField(max_length=64, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")  # fmt: skip
    requested_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    matches = models.PositiveIntegerField(default=0)
    proposed = models.PositiveIntegerField(default=0)
    unknown_people = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-pk"]

    def __str__(self) -> str:
        return f"co-location run #{self.pk} for {self.case_id}"
