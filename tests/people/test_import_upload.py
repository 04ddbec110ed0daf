"""The browser upload path: the file is saved, a background task imports it, the status page follows it."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from cordon.people.models import Person
from tests.conftest import rid


@pytest.fixture
def immediate_tasks(settings, tmp_path, monkeypatch):
    settings.CORDON_DATA_DIR = tmp_path
    # The worker recycles database connections between tasks; inside a test that would drop the test's
    # own transaction, so connection recycling is switched off here and only here.
    monkeypatch.setattr("django_tasks_db.management.commands.db_worker.close_old_connections", lambda: None)
    return settings


def run_worker() -> None:
    """What ``cordon worker`` does, for the queued tasks only, then return."""
    call_command("db_worker", "--batch", "--no-startup-delay", "--queue-name", "*", verbosity=0)


def test_upload_imports_in_the_background_and_reports(immediate_tasks, make_user, client_for):
    user = make_user("tc", role="testing", region="430102")
    c = client_for(user)
    good = f"张三,{rid('430102', 1990, 1, 1, 1, 'M')},430102001001001"
    bad = "李四,123,430102001001001"
    other = f"王五,{rid('430104', 1990, 1, 1, 2, 'M')},430104001001001"
    content = ("姓名,证件号码,所属区划\n" + "\n".join([good, bad, other]) + "\n").encode("gbk")
    r = c.post("/people/import/", {"file": SimpleUploadedFile("名单.csv", content, content_type="text/csv")})
    assert r.status_code == 302
    assert 'data-status="READY"' in c.get(r["Location"]).content.decode()
    run_worker()
    status = c.get(r["Location"])
    html = status.content.decode()
    assert status.status_code == 200 and 'data-status="SUCCESSFUL"' in html
    assert Person.objects.count() == 1
    errors = c.get(r["Location"] + "errors.csv")
    report = b"".join(errors.streaming_content).decode("utf-8-sig")
    assert "line,column,value,reason" in report
    assert "3,document_number" in report and "4,region_code" in report


def test_upload_needs_the_import_capability_and_owner(immediate_tasks, make_user, client_for):
    analyst = client_for(make_user("ana", role="analyst", region="430000"))
    assert analyst.get("/people/import/").status_code == 403
    owner = client_for(make_user("tc", role="testing", region="430102"))
    r = owner.post("/people/import/", {"file": SimpleUploadedFile("a.csv", b"x,y\n1,2\n")})
    run_worker()
    other = client_for(make_user("tc2", role="testing", region="430102"))
    assert other.get(r["Location"]).status_code == 404
    page = owner.get(r["Location"]).content.decode()
    assert "could not be read" in page or "无法读取文件" in page
