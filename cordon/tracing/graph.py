"""The transmission graph as data for an ECharts chart, with positions computed here.

Why server-side positions: a force layout of thousands of nodes freezes a browser for seconds and gives a
different picture at every load. Generations give a natural left-to-right order, so cases of generation g sit
in column 2g and their contacts in column 2g + 1; the chart draws with ``layout: 'none'``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.urls import reverse

from cordon.cases.models import Case
from cordon.core.scoping import in_jurisdiction
from cordon.tracing.models import Contact, ContactStatus
from cordon.tracing.services import generations

COLUMN_GAP = 260
ROW_GAP = 26
CONTACT_GAP = 14
FAN = 8  # contacts per row in a case's block
# Categories, in the order of the legend.
CAT_CONFIRMED, CAT_ASYMPTOMATIC, CAT_SUSPECTED, CAT_CONTACT, CAT_CONTACT_DONE = range(5)


def chain_data(user: Any, case_ids: set[int], *, focus: int | None = None, contacts: bool = True,
               max_contacts: int = 5000) -> dict[str, Any]:  # fmt: skip
    """Nodes and links for the cases ``case_ids`` (and their contacts still open or released). Cases outside
    the user's jurisdiction are shown by number only, without a link."""
    from django.utils.translation import gettext as _

    cases = {c.pk: c for c in Case.objects.filter(pk__in=case_ids).only(
        "pk", "number", "classification", "region_id", "source_case_id", "reported_at")}  # fmt: skip
    parent_of = {pk: c.source_case_id for pk, c in cases.items()}
    gen = generations(set(cases), parent_of)
    columns: dict[int, list[int]] = defaultdict(list)
    for pk in sorted(cases, key=lambda pk: (gen[pk], cases[pk].reported_at, pk)):
        columns[gen[pk]].append(pk)
    contact_rows: list[tuple[int, int, str, str]] = []
    if contacts and cases:
        contact_rows = list(Contact.objects.filter(index_case_id__in=list(cases))
                            .exclude(status__in=[ContactStatus.DISMISSED, ContactStatus.PROPOSED, ContactStatus.BECAME_CASE])
                            .order_by("index_case_id", "pk").values_list("pk", "index_case_id", "status", "kind")[:max_contacts])  # fmt: skip
    per_case: dict[int, int] = defaultdict(int)
    for _pk, index_id, _status, _kind in contact_rows:
        per_case[index_id] += 1
    y_of: dict[int, float] = {}
    nodes: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    # Order each column by the position of the source, so links cross as little as possible; each case takes
    # the height of its block of contacts (FAN per row, to its right).
    for g in sorted(columns):
        col = columns[g]
        col.sort(key=lambda pk: (y_of.get(parent_of.get(pk) or -1, -1), cases[pk].reported_at, pk))
        cursor = 0.0
        for pk in col:
            y_of[pk] = cursor
            rows = -(-per_case[pk] // FAN)
            cursor += max(ROW_GAP * 2, rows * CONTACT_GAP + ROW_GAP)
    cat_of = {"confirmed": CAT_CONFIRMED, "asymptomatic": CAT_ASYMPTOMATIC}
    for pk, c in cases.items():
        visible = in_jurisdiction(user, c.region_id)
        nodes.append({
            "id": f"c{pk}", "name": c.number, "x": gen[pk] * 2 * COLUMN_GAP, "y": y_of[pk],
            "category": cat_of.get(c.classification, CAT_SUSPECTED), "symbolSize": 22 if pk == focus else 14,
            "url": reverse("cases:detail", args=[pk]) if visible else "", "generation": gen[pk],
        })  # fmt: skip
        p = parent_of.get(pk)
        if p in cases:
            links.append({"source": f"c{p}", "target": f"c{pk}"})
    seen: dict[int, int] = defaultdict(int)
    for pk, index_id, status, kind in contact_rows:
        g = gen[index_id]
        j = seen[index_id]
        seen[index_id] += 1
        nodes.append({
            "id": f"k{pk}", "name": f"{_('contact')} #{pk}",
            "x": (2 * g + 1) * COLUMN_GAP - COLUMN_GAP / 2 + (j % FAN) * CONTACT_GAP,
            "y": y_of[index_id] + (j // FAN) * CONTACT_GAP,
            "category": CAT_CONTACT_DONE if status == ContactStatus.RELEASED else CAT_CONTACT,
            "symbol": "rect" if kind == "secondary" else "circle", "symbolSize": 7,
            "url": reverse("tracing:contact", args=[pk]), "generation": g,
        })  # fmt: skip
        links.append({"source": f"c{index_id}", "target": f"k{pk}"})
    n_contacts = len(contact_rows)
    return {
        "nodes": nodes,
        "links": links,
        "categories": [{"name": _("Confirmed")}, {"name": _("Asymptomatic")}, {"name": _("Suspected")},
                       {"name": _("Contact under management")}, {"name": _("Contact released")}],
        "cases": len(cases),
        "contacts": n_contacts,
        "generations": (max(gen.values()) + 1) if gen else 0,
    }
