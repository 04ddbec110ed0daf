from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from cordon.cases.models import Case
from cordon.tracing.services import add_contact


def test_pages_render_for_investigator(make_case, inv, client_for, person_factory):
    case = make_case()
    add_contact(inv, case, person_factory(name="密接乙"), setting="household",
                last_exposure_at=timezone.now() - timedelta(hours=2))
    c = client_for(inv)
    for url in ["/cases/", "/cases/board/", "/cases/new/", f"/cases/{case.pk}/", "/tracing/", "/tracing/clusters/",
                f"/tracing/contacts/{case.contacts.first().pk}/"]:
        r = c.get(url)
        assert r.status_code == 200, (url, r.status_code)
    body = c.get(f"/cases/{case.pk}/").content.decode()
    assert 'class="countdown"' in body and "chain-data" in body and "密接乙" not in body, "names are masked"


def test_report_form_creates_person_and_case(inv, client_for, regions):
    from tests.conftest import rid

    c = client_for(inv)
    r = c.post("/cases/new/", {"new_name": "新病例", "new_document_type": "resident_id",
                               "new_document_number": rid("430102", 1991, 3, 4, 7, "F"), "new_region_code": "430102001001001",
                               "classification": "confirmed", "found_by": "fever_clinic", "origin": "local",
                               "onset_date": str(timezone.localdate()), "region_code": "430102"})
    assert r.status_code == 302, r.content.decode()[:2000]
    case = Case.objects.get()
    assert case.person.verified is False and r["Location"] == f"/cases/{case.pk}/"


def test_report_form_bad_input_names_field(inv, client_for, regions):
    r = client_for(inv).post("/cases/new/", {"new_name": "x", "new_document_number": "123", "classification": "confirmed",
                                             "found_by": "fever_clinic", "region_code": "430102"})
    assert r.status_code == 422 and "document_number" in r.content.decode()


def test_county_user_sees_none_of_another_countys_cases(make_case, inv, inv2, client_for, person_factory):
    mine = make_case(person_factory(name="本县"))
    theirs = make_case(person_factory("430104001001001", name="外县"), user=inv2, region_code="430104")
    c = client_for(inv)
    listing = c.get("/cases/").content.decode()
    assert mine.number in listing and theirs.number not in listing
    assert c.get(f"/cases/{theirs.pk}/").status_code == 404
    api = c.get("/api/v1/cases").json()
    assert [x["number"] for x in api["items"]] == [mine.number]
    assert c.get(f"/api/v1/cases/{theirs.pk}").status_code == 404
    assert c.post(f"/cases/{theirs.pk}/reclassify", {"to": "excluded", "reason": "x"}).status_code == 404
    # the city sees both
    from cordon.core.models import User

    city = User.objects.create(username="city", role="commander", region_id="430100")
    assert len(client_for(city).get("/api/v1/cases").json()["items"]) == 2


def test_case_list_filters_and_cursor(make_case, inv, client_for, person_factory):
    for i in range(3):
        make_case(person_factory(name=f"人{i}"), classification="asymptomatic" if i else "confirmed")
    c = client_for(inv)
    assert len(c.get("/api/v1/cases?classification=asymptomatic").json()["items"]) == 2
    page = c.get("/api/v1/cases?limit=2").json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = c.get(f"/api/v1/cases?limit=2&cursor={page['next_cursor']}").json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert c.get("/api/v1/cases?classification=bogus").json()["error"]["field"] == "classification"
    assert c.get("/api/v1/cases?cursor=zzz").status_code == 400
    html = c.get("/cases/?classification=asymptomatic").content.decode()
    assert html.count('class="case-number"') == 2
