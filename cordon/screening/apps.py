from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class ScreeningConfig(AppConfig):
    name = "cordon.screening"
    label = "screening"
    verbose_name = "Mass screening"
    nav = [("screening:campaigns", _("Screening"), "view_screening")]

    def ready(self) -> None:
        post_migrate.connect(_restore_indexes, sender=self)


def _restore_indexes(sender: AppConfig, using: str = "default", apps: Any = None, **kwargs: Any) -> None:
    """A registration file that died while the secondary indexes of registrations and tubes were deferred
    leaves them missing: ``migrate`` creates them again, as the migrations that just ran declare them."""
    from cordon.screening.ingest import restore_indexes

    try:
        models = [apps.get_model("screening", "Registration"), apps.get_model("screening", "Tube")] if apps else None
    except LookupError:  # migrated back to before these tables existed
        return
    if models:
        restore_indexes(using, models)
