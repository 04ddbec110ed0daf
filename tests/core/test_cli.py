from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cordon.cli import app
from cordon.core.models import ApiToken, AuditEvent, User
from cordon.core.tokens import authenticate_token

runner = CliRunner()


@pytest.mark.django_db
def test_createuser_validates_role_region_and_password(regions):
    ok = runner.invoke(app, ["createuser", "li", "--role", "investigator", "--region", "430102",
                             "--password", "a-Long-pass-9"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    user = User.objects.get(username="li")
    assert user.region_id == "430102" and user.password.startswith("argon2")
    assert AuditEvent.objects.filter(action="user.create", object_id=str(user.pk)).exists()
    for role, region, password, message in [
        ("wizard", "430102", "a-Long-pass-9", "unknown role"),
        ("analyst", "999999", "a-Long-pass-9", "unknown region"),
        ("analyst", "430102", "short", "too short"),
    ]:
        r = runner.invoke(app, ["createuser", "x", "--role", role, "--region", region, "--password", password])
        assert r.exit_code == 2 and message in r.output
    dup = runner.invoke(app, ["createuser", "li", "--role", "analyst", "--region", "430102", "--password", "a-Long-pass-9"])
    assert dup.exit_code == 2 and "exists" in dup.output


@pytest.mark.django_db
def test_token_create_prints_once_stores_hash_and_revokes(make_user):
    make_user("lab", role="machine", region="430100")
    r = runner.invoke(app, ["token", "create", "lab", "--name", "长沙一检"])
    assert r.exit_code == 0, r.output
    secret = r.stdout.strip().splitlines()[-1]
    token = ApiToken.objects.get()
    assert secret.startswith("cdn_") and token.digest != secret and secret not in token.prefix + token.digest
    assert authenticate_token(secret).username == "lab"
    listing = runner.invoke(app, ["token", "list"])
    assert secret not in listing.output and token.prefix in listing.output
    assert runner.invoke(app, ["token", "revoke", str(token.pk)]).exit_code == 0
    assert authenticate_token(secret) is None
    assert runner.invoke(app, ["token", "create", "nobody"]).exit_code == 2


def test_policy_show_and_list():
    r = runner.invoke(app, ["policy", "show", "--profile", "ncov-8"])
    assert r.exit_code == 0 and "lookback_days" in r.output
    assert runner.invoke(app, ["policy", "show", "--profile", "no-such"]).exit_code == 2
    listed = runner.invoke(app, ["policy", "list"]).output.split()
    assert {"ncov-8", "ncov-9", "ncov-2022-11"} <= set(listed)


def test_production_requires_a_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(CORDON_ENV="production", CORDON_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="cordon.settings")
    r = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "SECRET_KEY must be set" in r.stderr
    env["SECRET_KEY"] = "x" * 50
    ok = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert not (tmp_path / "secret_key").exists()
