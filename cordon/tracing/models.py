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
    created_at = models.DateTimeField(auto_now_add=True)
    notes = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.name
