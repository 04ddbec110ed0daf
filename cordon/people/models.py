"""The person registry: one row per real person, keyed by document."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from cordon.core.identity import DocumentType


class Sex(models.TextChoices):
    MALE = "M", _("Male")
    FEMALE = "F", _("Female")
    UNKNOWN = "U", _("Unknown")


DOCUMENT_CHOICES = [(d.value, d.label_en) for d in DocumentType]


class Person(models.Model):
    name = models.CharField(_("name"), max_length=100)
    document_type = models.CharField(_("document type"), max_length=32, choices=DOCUMENT_CHOICES)
    document_number = models.CharField(_("document number"), max_length=32)
    sex = models.CharField(_("sex"), max_length=1, choices=Sex.choices, default=Sex.UNKNOWN)
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True)
    address = models.CharField(_("address"), max_length=200, blank=True)
    region = models.ForeignKey(
        "regions.Region", verbose_name=_("region"), on_delete=models.PROTECT, related_name="people", db_index=False
    )
    nationality = models.CharField(_("nationality"), max_length=3, default="CHN")
    # Unverified: added from a sampling scan or an interview without an identity check yet.
    verified = models.BooleanField(_("verified"), default=True)
    guardian = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="wards",
        verbose_name=_("guardian"),
        db_index=False,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    import_run = models.BigIntegerField(null=True, blank=True, db_index=True)

    class Meta:
        verbose_name = _("person")
        verbose_name_plural = _("people")
        constraints = [
            models.UniqueConstraint(fields=["document_type", "document_number"], name="person_document_unique")
        ]
        # Every index is paid for on each row a province-wide import writes, so the registry keeps only those
        # a query uses. Jurisdiction scoping reads the region as a code range (``scoping.prefix_range``),
        # which a plain b-tree answers: the pattern-ops twin PostgreSQL would add for a character foreign
        # key is left out. Few people have a guardian recorded, so only those rows are indexed.
        indexes = [
            models.Index(fields=["name", "birth_date"], name="person_name_birth_idx"),
            models.Index(fields=["region"], name="person_region_idx"),
            models.Index(fields=["guardian"], name="person_guardian_idx", condition=models.Q(guardian__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"Person #{self.pk}"


class DuplicateFlag(models.Model):
    """Two registry entries that look like one person (same name, birth date and phone, different
    documents). Flagged for a human to decide; never merged silently."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        SAME = "same", _("Same person")
        DISTINCT = "distinct", _("Different people")

    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="+")
    other = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    region = models.ForeignKey("regions.Region", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["person", "other"], name="duplicate_pair_unique")]

    def __str__(self) -> str:
        return f"possible duplicate {self.person_id} ~ {self.other_id}"
