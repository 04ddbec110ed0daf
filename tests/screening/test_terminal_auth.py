"""Bearer tokens for terminals: looked up once per few seconds per process, yet revocation is immediate."""

from __future__ import annotations

import pytest
from django.test import Client

from cordon.core import tokens

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh():
    tokens.forget_tokens()
    yield
    tokens.forget_tokens()


def test_token_cache_revocation_and_copies(terminal, django_assert_num_queries):
    token, secret = tokens.create_token(terminal, "t", actor="test")
    first = tokens.authenticate_token(secret)
    assert first.username == "terminal" and first.region_id == "430100"
    with django_assert_num_queries(0):  # answered from the process's memory
        second = tokens.authenticate_token(secret)
    assert second == first and second is not first  # each request gets its own copy
    second.display_name = "changed by a handler"
    assert tokens.authenticate_token(secret).display_name != "changed by a handler"
    tokens.revoke_token(terminal, token)
    assert tokens.authenticate_token(secret) is None  # revoked here: at once
    assert tokens.authenticate_token("cdn_not-a-token") is None
    assert tokens.authenticate_token("") is None and tokens.authenticate_token("Basic x") is None


def test_deactivated_user_after_the_cache(terminal):
    _token, secret = tokens.create_token(terminal, "t", actor="test")
    assert tokens.authenticate_token(secret) is not None
    terminal.is_active = False
    terminal.save(update_fields=["is_active"])
    tokens.forget_tokens()  # what the TTL does within seconds
    assert tokens.authenticate_token(secret) is None
    r = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/me")
    assert r.status_code == 401


def test_scan_api_answers_in_order_with_reasons(campaign, site, terminal, scan):
    _token, secret = tokens.create_token(terminal, "t", actor="test")
    c = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    first = scan("H1", scan_id="h1")
    body = {"scans": [first, scan("H1", scan_id="h2", document_number="1"), first]}
    r = c.post("/api/v1/screening/scans", body, content_type="application/json")
    assert r.status_code == 200 and r["Content-Type"] == "application/json"
    data = r.json()
    assert (data["accepted"], data["duplicate"], data["refused"]) == (1, 1, 1)
    assert [(x["scan_id"], x["status"], x["field"]) for x in data["results"]] == [
        ("h1", "accepted", ""), ("h2", "refused", "document_number"), ("h1", "duplicate", "")]
    assert data["results"][1]["reason"].startswith("invalid document")
    bad = c.post("/api/v1/screening/scans", {"scans": [{"scan_id": "x"}]}, content_type="application/json")
    assert bad.status_code == 422  # a scan without its fields is refused as a request
    assert c.post("/api/v1/screening/scans", {"scans": [{**scan("H2"), "name": 5}]},
                  content_type="application/json").status_code == 422
    schema = Client().get("/api/v1/openapi.json").json()
    assert "ScanIn" in str(schema["components"]["schemas"])
