"""``newswatch users`` and ``newswatch tokens``: passwords never from arguments, tokens
shown once and usable; and the first-admin step of ``newswatch run``."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from consumers.web.auth import authenticate, token_user
from newswatch.cli import main
from newswatch.cli.web import ensure_first_admin
from newswatch.db import make_engine
from newswatch.migrate import upgrade
from newswatch.settings import Settings
from schemas import tables
from tests.web.conftest import PASSWORD, Console


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    monkeypatch.setenv("NEWSWATCH_DATABASE_URL", url)
    return url


def test_users_add_reads_the_password_from_the_named_variable(
        database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEW_PW", "a long enough password")
    assert main(["users", "add", "ana", "--role", "analyst", "--password-env", "NEW_PW"]) == 0
    engine = make_engine(database)
    try:
        user = authenticate(engine, "ana", "a long enough password")
        assert user is not None
        assert user.role == "analyst"
        with engine.connect() as conn:
            stored = conn.execute(select(tables.users.c.password_hash)).scalar_one()
        assert stored.startswith("$argon2id$")
        assert "a long enough password" not in stored
        # No terminal and no variable: refused, nothing read from the arguments.
        assert main(["users", "add", "bob"]) == 2
        assert "use --password-env" in capsys.readouterr().err
        monkeypatch.setenv("SHORT", "short")
        assert main(["users", "add", "bob", "--password-env", "SHORT"]) == 2
        with pytest.raises(SystemExit):
            main(["users", "add", "bob", "--password", "x"])

        capsys.readouterr()
        assert main(["tokens", "create", "--user", "ana", "--name", "grafana"]) == 0
        token = capsys.readouterr().out.strip()
        assert token.startswith("nw_")
        found = token_user(engine, token)
        assert found is not None
        assert found.name == "ana"
        assert main(["tokens", "list"]) == 0
        assert token not in capsys.readouterr().out
        assert main(["tokens", "revoke", "1"]) == 0
        assert token_user(engine, token) is None
        assert main(["users", "disable", "ana"]) == 0
        assert authenticate(engine, "ana", "a long enough password") is None
    finally:
        engine.dispose()


def test_run_creates_a_first_admin_once(database: str, tmp_path: Path) -> None:
    settings = Settings(database_url=database, state_dir=tmp_path)
    line = ensure_first_admin(settings)
    assert line is not None
    found = re.search(r"password (\S+) \(shown once", line)
    assert found is not None
    engine = make_engine(database)
    try:
        assert authenticate(engine, "admin", found.group(1)) is not None
    finally:
        engine.dispose()
    assert ensure_first_admin(settings) is None


@pytest.mark.integration
def test_secure_cookie_over_https_and_sign_out_ends_the_session(
        sqlite_console: Console) -> None:
    with httpx.Client(base_url=sqlite_console.url, timeout=30,
                      headers={"X-Forwarded-Proto": "https"}) as client:
        form = client.get("/login")
        assert "Secure" in form.headers["set-cookie"]
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None
        # A client keeps Secure cookies for https; the proxy in front would be https.
        signed = client.post("/login", data={"username": "ana", "password": PASSWORD,
                                             "csrf_token": token.group(1)},
                             headers={"Cookie": f"nw_login={form.cookies['nw_login']}"})
        assert signed.status_code == 303
        assert "Secure" in signed.headers["set-cookie"]
        cookie = signed.cookies["nw_session"]
    with httpx.Client(base_url=sqlite_console.url, timeout=30,
                      cookies={"nw_session": cookie}) as browser:
        page = browser.get("/alerts")
        assert page.status_code == 200
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert csrf is not None
        assert browser.post("/logout", data={"csrf_token": csrf.group(1)}).status_code == 303
    with httpx.Client(base_url=sqlite_console.url, timeout=30,
                      cookies={"nw_session": cookie}) as replay:
        assert replay.get("/alerts").status_code == 303  # the old cookie is dead
