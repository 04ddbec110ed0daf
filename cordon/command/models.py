"""The command centre: headquarters and working groups, tasks and their audit trail, notifications,
pre-aggregated daily figures for the dashboard, inspections and accountability, bulletins and tip-offs.

Rows that belong to a place carry a ``region_code`` (the code of the responsible region), so scoping is
the same prefix range as everywhere else in Cordon.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.utils.translation import gettext_lazy as _

# The default working groups of a headquarters (综合协调 … 督导检查): code, Chinese name, English name.
DEFAULT_GROUPS = [
    ("coordination", "综合协调组", "General coordination"),
    ("tracing", "流调溯源组", "Investigation and tracing"),
    ("testing", "核酸检测组", "Nucleic-acid testing"),
    ("isolation", "转运隔离组", "Transfer and isolation"),
    ("medical", "医疗救治组", "Medical treatment"),
    ("community", "社区管控组", "Community control"),
    ("supplies", "物资保障组", "Supplies"),
    ("publicity", "宣传舆情组", "Publicity and public opinion"),
    ("supervision", "督导检查组", "Supervision and inspection"),
]


def evidence_storage() -> FileSystemStorage:
    """Evidence files live under CORDON_DATA_DIR/media, never in the code tree; served only through the
    task page to users who may see the task."""
    return FileSystemStorage(location=str(settings.CORDON_DATA_DIR / "media"))


class Headquarters(models.Model):
    """指挥部: one per province, city and county."""

    region = models.OneToOneField("regions.Region", on_delete=models.PROTECT, related_name="headquarters")
    name = models.CharField(_("name"), max_length=100)

    class Meta:
        ordering = ["region_id"]
        verbose_name = _("headquarters")
        verbose_name_plural = _("headquarters")

    def __str__(self) -> str:
        return self.name


class WorkingGroup(models.Model):
    headquarters = models.ForeignKey(Headquarters, on_delete=models.CASCADE, related_name="groups")
    code = models.CharField(_("code"), max_length=32)
    name = models.CharField(_("name"), max_length=100)
    name_en = models.CharField(_("English name"), max_length=100, blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="working_groups")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["headquarters_id", "pk"]
        constraints = [models.UniqueConstraint(fields=["headquarters", "code"], name="group_unique_code")]

    def __str__(self) -> str:
        return f"{self.headquarters.name} · {self.name}"


class TaskKind(models.TextChoices):
    GENERAL = "general", _("General")
    INVESTIGATION = "investigation", _("Investigation")
    TRANSFER = "transfer", _("Transfer to quarantine")
    RETEST = "retest", _("Retest of a positive pool")
    RELEASE = "release", _("Release from quarantine")
    TIPOFF = "tipoff", _("Tip-off follow-up")
    RECTIFICATION = "rectification", _("Rectification")


class Priority(models.TextChoices):
    URGENT = "urgent", _("Urgent")
    HIGH = "high", _("High")
    NORMAL = "normal", _("Normal")


class TaskStatus(models.TextChoices):
    ISSUED = "issued", _("Issued")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    IN_PROGRESS = "in_progress", _("In progress")
    DONE = "done", _("Done")
    REJECTED = "rejected", _("Rejected")


OPEN_STATUSES = [TaskStatus.ISSUED, TaskStatus.ACKNOWLEDGED, TaskStatus.IN_PROGRESS]


class Task(models.Model):
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=TaskKind.choices, default=TaskKind.GENERAL)
    priority = models.CharField(_("priority"), max_length=8, choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(_("status"), max_length=16, choices=TaskStatus.choices, default=TaskStatus.ISSUED)
    issuer_hq = models.ForeignKey(Headquarters, on_delete=models.PROTECT, related_name="issued_tasks")
    issuer_group = models.ForeignKey(WorkingGroup, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="issued_tasks")  # fmt: skip
    issued_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")  # fmt: skip
    assignee_hq = models.ForeignKey(Headquarters, on_delete=models.PROTECT, related_name="assigned_tasks")
    assignee_group = models.ForeignKey(WorkingGroup, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="assigned_tasks")  # fmt: skip
    # The assignee's region: who sees the task (their jurisdiction contains it).
    region_code = models.CharField(max_length=15, db_index=True)
    context_type = models.CharField(_("context"), max_length=16, blank=True)  # case, contact, tube, campaign, …
    context_id = models.CharField(max_length=64, blank=True)
    context_label = models.CharField(max_length=200, blank=True)
    issued_at = models.DateTimeField()
    due_at = models.DateTimeField(_("due"))
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    evidence_note = models.TextField(blank=True)
    evidence_file = models.FileField(upload_to="command/evidence/%Y/%m/", storage=evidence_storage, blank=True)
    reject_reason = models.CharField(max_length=300, blank=True)
    # Escalation: 0 = none; n = raised n levels, the last to ``escalated_to``.
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_to = models.ForeignKey(Headquarters, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="escalated_tasks")  # fmt: skip
    reminded_at = models.DateTimeField(null=True, blank=True)
    due_notified_at = models.DateTimeField(null=True, blank=True)
    # Automatic tasks carry a natural key ("investigation:case:12") so an event replayed never duplicates one.
    auto_key = models.CharField(max_length=80, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["due_at", "pk"]
        indexes = [
            models.Index(fields=["region_code", "status"], name="task_region_status_idx"),
            models.Index(fields=["status", "due_at"], name="task_status_due_idx"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def assignee_label(self) -> str:
        return str(self.assignee_group) if self.assignee_group_id else self.assignee_hq.name

    def issuer_label(self) -> str:
        return str(self.issuer_group) if self.issuer_group_id else self.issuer_hq.name


class TaskEvent(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=20)  # issued, acknowledged, started, done, rejected, reassigned, …
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    at = models.DateTimeField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.task_id} {self.action}"


class Notification(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16)  # assigned, reminder, due, escalated, tipoff
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)
    # One notification per (purpose, user): sending twice is a no-op.
    key = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "read_at"], name="notif_user_unread_idx")]

    def __str__(self) -> str:
        return self.title


class DailyFigure(models.Model):
    """Pre-aggregated counts per calendar day and county, kept up to date by the event handlers.

    Daily metrics (``new_*``) count what happened that day; ``*_managed_*`` metrics are deltas (+1 on
    entering management, −1 on leaving), so the number under management is the sum over all days."""

    date = models.DateField()
    region_code = models.CharField(max_length=6)
    metric = models.CharField(max_length=40)
    value = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["date", "region_code", "metric"], name="dailyfigure_unique")]
        indexes = [models.Index(fields=["metric", "date", "region_code"], name="dailyfigure_metric_idx")]

    def __str__(self) -> str:
        return f"{self.date} {self.region_code} {self.metric}={self.value}"


class RoundClock(models.Model):
    """A screening round finishing in an area: the clock "screening round → area finished"."""

    campaign_id = models.CharField(max_length=64)
    campaign_label = models.CharField(max_length=200, blank=True)
    region_code = models.CharField(max_length=15, db_index=True)
    started_at = models.DateTimeField()
    due_at = models.DateTimeField()
    finished_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign_id", "region_code"], name="roundclock_unique")]

    def __str__(self) -> str:
        return f"{self.campaign_label} {self.region_code}"


class Inspection(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        RECTIFYING = "rectifying", _("Being rectified")
        CLOSED = "closed", _("Closed")

    region_code = models.CharField(max_length=15, db_index=True)
    unit = models.CharField(_("inspected unit"), max_length=200)
    date = models.DateField(_("date"))
    inspector = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")  # fmt: skip
    findings = models.TextField(_("findings"))
    rectification_due = models.DateField(_("rectification due"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-date", "-pk"]

    def __str__(self) -> str:
        return f"{self.unit} {self.date}"


class AccountabilityAction(models.Model):
    class Kind(models.TextChoices):
        REMINDER_TALK = "talk", _("Admonishing talk")
        CRITICISM = "criticism", _("Circulated criticism")
        WARNING = "warning", _("Warning")
        DISMISSAL = "dismissal", _("Removal from post")
        OTHER = "other", _("Other")

    region_code = models.CharField(max_length=15, db_index=True)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    subject = models.CharField(_("unit or official held accountable"), max_length=200)
    description = models.TextField(_("description"))
    decided_on = models.DateField(_("decided on"))
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    inspection = models.ForeignKey(Inspection, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="actions")  # fmt: skip
    tasks = models.ManyToManyField(Task, blank=True, related_name="accountability_actions")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-decided_on", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.subject}"


class Bulletin(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        REVIEWED = "reviewed", _("Reviewed")
        PUBLISHED = "published", _("Published")
        SUPERSEDED = "superseded", _("Superseded")

    region_code = models.CharField(max_length=6)
    region_name = models.CharField(max_length=100)
    date = models.DateField()
    version = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    figures = models.JSONField(default=dict)
    text_zh = models.TextField()
    text_en = models.TextField()
    correction_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")  # fmt: skip
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")  # fmt: skip
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")  # fmt: skip

    class Meta:
        ordering = ["-date", "region_code", "-version"]
        constraints = [models.UniqueConstraint(fields=["region_code", "date", "version"], name="bulletin_version")]

    def __str__(self) -> str:
        return f"{self.region_name} {self.date} v{self.version}"


class TipOff(models.Model):
    class Category(models.TextChoices):
        CONCEALMENT = "concealment", _("Concealment (of travel, symptoms or contact)")
        GATHERING = "gathering", _("Illegal gathering")
        VIOLATION = "violation", _("Violation of control measures")

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        TRIAGED = "triaged", _("Being handled")
        RESOLVED = "resolved", _("Resolved")
        DISMISSED = "dismissed", _("Closed without action")

    code = models.CharField(max_length=16, unique=True)
    category = models.CharField(_("category"), max_length=12, choices=Category.choices)
    region_code = models.CharField(_("where"), max_length=15, db_index=True)
    place = models.CharField(_("place"), max_length=200)
    description = models.TextField(_("what happened"))
    contact = models.CharField(_("how to reach you (optional)"), max_length=100, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    task = models.OneToOneField(Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="tipoff")
    resolution = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.code
