"""Scoped reads of contacts and clusters.

A contact is visible to the jurisdiction where the person lives (``region``: they find and transfer them) and
to the jurisdiction investigating the index case (``index_region``: they identified them).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from cordon.core.scoping import jurisdiction_prefix, prefix_range, require
from cordon.people.validation import FieldError
from cordon.tracing.models import Cluster, ColocationRun, Contact, ContactKind, ContactStatus


def _either(prefix: str) -> Q:
    return Q(**prefix_range("region_id", prefix)) | Q(**prefix_range("index_region_id", prefix))


def contacts_for(user: Any) -> QuerySet[Contact]:
    require(user, "view_cases")
    prefix = jurisdiction_prefix(user)
    if not prefix:
        return Contact.objects.none()
    return Contact.objects.filter(_either(prefix))


def search_contacts(user: Any, *, status: str = "", kind: str = "", case_id: int | None = None,
                    region: str = "") -> QuerySet[Contact]:  # fmt: skip
    qs = contacts_for(user)
    if status:
        if status not in ContactStatus.values:
            raise FieldError("status", status, f"expected one of {', '.join(ContactStatus.values)}")
        qs = qs.filter(status=status)
    if kind:
        if kind not in ContactKind.values:
            raise FieldError("kind", kind, f"expected one of {', '.join(ContactKind.values)}")
        qs = qs.filter(kind=kind)
    if case_id:
        qs = qs.filter(index_case_id=case_id)
    if region:
        if not region.isdigit():
            raise FieldError("region", region, "not a region code")
        qs = qs.filter(_either(region))
    return qs


def get_contact(user: Any, contact_id: int) -> Contact:
    try:
        return contacts_for(user).select_related("person", "index_case", "via").get(pk=contact_id)
    except (Contact.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("no such contact in your jurisdiction") from exc


def status_counts(user: Any) -> dict[str, int]:
    from django.db.models import Count

    rows = contacts_for(user).values("status").annotate(n=Count("pk"))
    counts = {s: 0 for s in ContactStatus.values}
    counts.update({r["status"]: r["n"] for r in rows})
    return counts


def clusters_for(user: Any) -> QuerySet[Cluster]:
    """Clusters whose region is in the jurisdiction, or that hold a case managed in it."""
    require(user, "view_cases")
    prefix = jurisdiction_prefix(user)
    if not prefix:
        return Cluster.objects.none()
    return Cluster.objects.filter(
        Q(**prefix_range("region_id", prefix)) | Q(cases__in=_cases_in(prefix))
    ).distinct()


def _cases_in(prefix: str) -> Any:
    from cordon.cases.models import Case

    return Case.objects.filter(**prefix_range("region_id", prefix)).values("pk")


def get_cluster(user: Any, cluster_id: int) -> Cluster:
    try:
        return clusters_for(user).get(pk=cluster_id)
    except (Cluster.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("no such cluster in your jurisdiction") from exc


def latest_run(case: Any) -> ColocationRun | None:
    return ColocationRun.objects.filter(case=case).order_by("-pk").first()
