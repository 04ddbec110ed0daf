"""Chains and clusters: generations, connected groups of linked cases, their setting, the chain graph."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from cordon.cases.queries import chain_case_ids
from cordon.tracing import graph, queries
from cordon.tracing.models import Cluster
from cordon.tracing.services import add_contact, generations, rebuild_clusters
from tests.cases.conftest import *  # noqa: F403


def _infect(make_case, inv, source, person, setting="household", **kw):
    add_contact(inv, source, person, setting=setting, last_exposure_at=timezone.now() - timedelta(hours=30))
    return make_case(person, found_by="under_control", found_under_control=True, **kw)


def test_generations_of_a_chain(make_case, inv, person_factory):
    a = make_case(person_factory(name="甲"))
    b = _infect(make_case, inv, a, person_factory(name="乙"))
    c = _infect(make_case, inv, b, person_factory(name="丙"))
    d = _infect(make_case, inv, a, person_factory(name="丁"), setting="shared_meal_entertainment")
    ids = chain_case_ids(c)
    assert ids == {a.pk, b.pk, c.pk, d.pk}
    gen = generations(ids, {a.pk: None, b.pk: a.pk, c.pk: b.pk, d.pk: a.pk})
    assert gen == {a.pk: 0, b.pk: 1, c.pk: 2, d.pk: 1}


def test_rebuild_clusters(make_case, inv, inv2, person_factory):
    a = make_case(person_factory(name="甲"))
    b = _infect(make_case, inv, a, person_factory(name="乙"))
    _infect(make_case, inv, b, person_factory(name="丙"))
    lone = make_case(person_factory(name="散发"))
    x = make_case(person_factory("430104001001001", name="岳麓甲"), user=inv2, region_code="430104")
    y = _infect(make_case, inv2, x, person_factory("430104001001001", name="岳麓乙"), setting="shared_workplace",
                user=inv2, region_code="430104")
    out = rebuild_clusters("430100")
    assert len(out) == 2
    fam = Cluster.objects.get(root_case=a)
    assert fam.size == 3 and fam.generations == 3 and fam.setting == "household" and fam.region_id == "430102"
    assert lone.pk not in set(fam.cases.values_list("pk", flat=True))
    work = Cluster.objects.get(root_case=x)
    assert set(work.cases.values_list("pk", flat=True)) == {x.pk, y.pk} and work.setting == "shared_workplace"
    # idempotent
    rebuild_clusters("430100")
    assert Cluster.objects.count() == 2
    fam, work = Cluster.objects.get(root_case=a), Cluster.objects.get(root_case=x)
    # scoping: each county sees its own cluster only
    assert list(queries.clusters_for(inv)) == [fam]
    assert list(queries.clusters_for(inv2)) == [work]


def test_chain_graph_positions_by_generation(make_case, inv, person_factory):
    a = make_case(person_factory(name="甲"))
    b = _infect(make_case, inv, a, person_factory(name="乙"))
    add_contact(inv, b, person_factory(name="丙"), setting="visitor", last_exposure_at=timezone.now() - timedelta(hours=1))
    data = graph.chain_data(inv, chain_case_ids(a), focus=a.pk)
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes[f"c{a.pk}"]["x"] == 0 and nodes[f"c{b.pk}"]["x"] == 2 * graph.COLUMN_GAP
    contact = [n for n in data["nodes"] if n["id"].startswith("k")]
    assert len(contact) == 1 and 2 * graph.COLUMN_GAP < contact[0]["x"] < 4 * graph.COLUMN_GAP
    assert contact[0]["url"].startswith("/tracing/") and contact[0]["y"] == nodes[f"c{b.pk}"]["y"]
    assert {"source": f"c{a.pk}", "target": f"c{b.pk}"} in data["links"]
    assert data["generations"] == 2 and nodes[f"c{a.pk}"]["url"] == f"/cases/{a.pk}/"


def test_chain_of_hundreds_gets_a_spot_for_every_node(make_case, inv, person_factory):
    from cordon.cases.models import Case

    root = make_case(person_factory(name="源"))
    people = [person_factory(name=f"人{i}") for i in range(300)]
    now = timezone.now()
    Case.objects.bulk_create([Case(number=f"X-{i}", person=p, classification="confirmed", reported_at=now,
                                   region_id="430102", source_case=root) for i, p in enumerate(people)])
    data = graph.chain_data(inv, chain_case_ids(root))
    assert len(data["nodes"]) == 301
    assert len({(n["x"], n["y"]) for n in data["nodes"]}) == 301, "no two nodes on the same spot"


def test_cluster_page_and_chain(make_case, inv, client_for, person_factory):
    a = make_case(person_factory(name="甲"))
    _infect(make_case, inv, a, person_factory(name="乙"))
    (cl,) = rebuild_clusters("430102")
    c = client_for(inv)
    body = c.get(f"/tracing/clusters/{cl.pk}/").content.decode()
    assert a.number in body and "chain-data" in body
    api = c.get(f"/api/v1/tracing/clusters/{cl.pk}").json()
    assert api["size"] == 2 and len(api["chain"]["nodes"]) == 2
