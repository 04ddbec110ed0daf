"""Background imports: a file uploaded in the browser is imported by ``cordon worker``, so a large file
never holds a web request open."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django_tasks import task


@task(queue_name="imports")
def import_people_file(path: str, user_id: int, errors_path: str) -> dict[str, Any]:
    from cordon.core.importing import FileUnusable
    from cordon.people.importer import import_people

    user = get_user_model().objects.select_related("region").get(pk=user_id)
    try:
        summary = import_people(path, user=user, errors_path=errors_path)
    except FileUnusable as exc:
        return {"unusable": str(exc)}
    return {"accepted": summary.accepted, "updated": summary.updated, "unchanged": summary.unchanged,
            "rejected": summary.rejected, "errors": summary.errors,
            "duplicates_flagged": summary.extra.get("duplicates_flagged", 0)}  # fmt: skip
