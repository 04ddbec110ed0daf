from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PeopleConfig(AppConfig):
    name = "cordon.people"
    label = "people"
    verbose_name = "People"

    def ready(self) -> None:
        post_migrate.connect(_restore_registry_indexes, sender=self)


def _restore_registry_indexes(sender: AppConfig, using: str = "default", apps: Any = None, **kwargs: Any) -> None:
    """An import that died while its secondary indexes were deferred leaves them missing: ``migrate``
    creates them again, as the migrations that just ran declare them."""
    from cordon.people.importer import restore_registry_indexes

    try:
        model = apps.get_model("people", "Person") if apps is not None else None
    except LookupError:  # migrated back to before the registry existed
        return
    if model is not None:
        restore_registry_indexes(using, model)
