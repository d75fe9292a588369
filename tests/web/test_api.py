"""The JSON API over HTTP on both databases: tokens, roles, CSRF, and each resource."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from consumers.store.feedback import export_feedback
from producers.state import Store
from schemas import tables
from schemas.feeds_file import FeedConfig
from tests.web.conftest import PASSWORD, Console

pytestmark = pytest.mark.integration


def test_nothing_without_a_token_and_a_bad_token_is_refused(console: Console) -> None:
    with console.api() as anonymous:
        for path in ("/api/v1/alerts", "/api/v1/articles", "/api/v1/openapi.json",
                     f"/api/v1/articles/{console.seed_id}", "/api/v1/feedback"):
            assert anonymous.get(path).status_code == 401, path
        assert anonymous.get("/healthz").text == "ok\n"
        assert anonymous.get("/readyz").status_code == 200
        assert "newswatch_web_requests_total" in anonymous.get("/metrics").text
    with console.api("nw_not-a-token") as wrong:
        assert wrong.get("/api/v1/alerts").status_code == 401


def test_openapi_document_lists_the_resources(console: Console) -> None:
    with console.api(console.viewer_token) as api:
        document = api.get("/api/v1/openapi.json").json()
    paths = set(document["paths"])
    assert {"/api/v1/articles", "/api/v1/articles/{article_id}", "/api/v1/alerts",
            "/api/v1/alerts/{alert_id}/ack", "/api/v1/silences", "/api/v1/topics",
            "/api/v1/entities/{entity_id}", "/api/v1/feeds", "/api/v1/feedback"} <= paths
    assert not any(p.startswith(("/alerts", "/login")) for p in paths)  # HTML is not API


def test_search_article_topics_entities_and_feeds(console: Console) -> None:
    with console.api(console.viewer_token) as api:
        found = api.get("/api/v1/articles", params={"q": "Taliban recognition"}).json()
        assert found["articles"][0]["id"] == console.seed_id
        assert found["articles"][0]["highlights"]
        assert api.get("/api/v1/articles", params={"q": "Taliban", "topic": "is_threat"}
                       ).json()["articles"][0]["id"] == console.seed_id
        assert api.get("/api/v1/articles", params={"q": "Taliban", "feed": "nope"}
                       ).json()["articles"] == []
        assert api.get("/api/v1/articles", params={"q": '"Moscow meeting" -Kabul',
                                                   "entity": "taliban"}
                       ).json()["articles"][0]["id"] == console.seed_id
        # Operators in the query are words, never syntax errors or injections.
        assert api.get("/api/v1/articles", params={"q": 'NEAR( "" * ) \' OR 1=1 --'}
                       ).status_code == 200
        article = api.get(f"/api/v1/articles/{console.seed_id}").json()
        assert sorted(t["topic"] for t in article["topics"]) == [
            "drug_trafficking", "is_threat", "recognition"]
        # The shipped relevance model judged each topic; the hit keeps its rule score too.
        assert all(0.0 <= t["probability"] <= 1.0 and t["score"] > 0
                   for t in article["topics"])
        assert api.get("/api/v1/articles/nope").status_code == 404
        topics = {t["topic"]: t["total"] for t in api.get("/api/v1/topics").json()["topics"]}
        assert topics["recognition"] == 1
        taliban = api.get("/api/v1/entities", params={"name": "Taliban"}).json()["entities"]
        detail = api.get(f"/api/v1/entities/{taliban[0]['id']}").json()
        assert detail["latest"][0]["id"] in {console.seed_id, console.hostile_id}
        assert any(e["name"] == "Afghanistan" for e in detail["co_occurring"])
        assert api.get("/api/v1/feeds").status_code == 200


def test_alerts_ack_silence_and_roles(console: Console) -> None:
    with console.api(console.viewer_token) as viewer:
        alerts = viewer.get("/api/v1/alerts").json()["alerts"]
        assert len(alerts) == 3
        assert {a["state"] for a in alerts} == {"new"}
        first = alerts[0]["id"]
        assert viewer.post(f"/api/v1/alerts/{first}/ack").status_code == 403
        assert viewer.post("/api/v1/silences", json={
            "rule": "drug-trafficking", "duration": "1h", "comment": "x"}).status_code == 403
    with console.api(console.admin_token) as analyst:
        assert analyst.post(f"/api/v1/alerts/{first}/ack",
                            json={"comment": "seen"}).json() == {"acknowledged": 1}
        assert analyst.post(f"/api/v1/alerts/{first}/ack").json() == {"acknowledged": 0}
        assert analyst.post("/api/v1/silences", json={
            "rule": "drug-trafficking", "duration": "forever", "comment": "x"}
        ).status_code == 400
        made = analyst.post("/api/v1/silences", json={
            "rule": "drug-trafficking", "duration": "2h", "comment": "noisy"})
        assert made.status_code == 201
        states = {a["rule"]: a["state"] for a in analyst.get("/api/v1/alerts").json()["alerts"]}
        assert states["drug-trafficking"] == "silenced"
        assert analyst.get("/api/v1/alerts", params={"state": "acknowledged"}
                           ).json()["alerts"][0]["id"] == first
        silenced = analyst.get("/api/v1/alerts", params={"state": "silenced"}).json()["alerts"]
        assert [a["rule"] for a in silenced] == ["drug-trafficking"]
        assert analyst.delete(f"/api/v1/silences/{made.json()['id']}").status_code == 200
        assert analyst.get("/api/v1/silences").json()["silences"] == []
        detail = analyst.get("/api/v1/alerts", params={"rule": "islamic-state-threat"}
                             ).json()["alerts"][0]
        failed = [s for s in detail["sends"] if s["status"] == "failed"]
        assert [s["channel"] for s in failed] == ["partner-hook"]
        assert analyst.post(f"/api/v1/alerts/{detail['id']}/resend").json() == {"requeued": 1}
        assert analyst.post(f"/api/v1/alerts/{detail['id']}/resend").json() == {"requeued": 0}
    with console.engine.connect() as conn:
        audit = [(r.who, r.action) for r in conn.execute(
            select(tables.audit_log.c.who, tables.audit_log.c.action)
            .where(tables.audit_log.c.who == "ana").order_by(tables.audit_log.c.id))]
    assert [a for _, a in audit if a != "token.create"] == [
        "acknowledge", "silence", "unsilence", "resend"]  # the second resend changed nothing


def test_feedback_is_stored_and_exported(console: Console) -> None:
    with console.api(console.admin_token) as analyst:
        body = {"article_id": console.seed_id, "topic": "recognition",
                "verdict": "not_relevant", "note": "about talks"}
        assert analyst.post("/api/v1/feedback", json=body).status_code == 201
        assert analyst.post("/api/v1/feedback", json={**body, "verdict": "maybe"}
                            ).status_code == 422
        assert analyst.post("/api/v1/feedback", json={**body, "article_id": "nope"}
                            ).status_code == 404
        lines = analyst.get("/api/v1/feedback").text.splitlines()
        article = analyst.get(f"/api/v1/articles/{console.seed_id}").json()
    exported = [json.loads(line) for line in lines]
    assert [(r["id"], r["judged"], r["labels"]) for r in exported] == [
        (console.seed_id, ["recognition"], [])]
    assert {t["topic"]: t["verdict"] for t in article["topics"]}["recognition"] == "not_relevant"
    assert [[v["who"] for v in r["verdicts"]] for r in export_feedback(console.engine)] == [
        ["ana"]]
    with console.api(console.viewer_token) as viewer:
        assert viewer.post("/api/v1/feedback", json=body).status_code == 403


def test_a_browser_session_needs_the_csrf_header_for_api_changes(console: Console) -> None:
    with httpx.Client(base_url=console.url, timeout=30) as browser:
        form = browser.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert token is not None
        signed = browser.post("/login", data={"username": "ana", "password": PASSWORD,
                                              "csrf_token": token.group(1)})
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie
        assert "Secure" not in cookie
        assert browser.get("/api/v1/alerts").status_code == 200
        assert browser.post("/api/v1/alerts/1/ack").status_code == 403
        page = browser.get("/alerts/1").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf is not None
        assert browser.post("/api/v1/alerts/1/ack",
                            headers={"X-CSRF-Token": csrf.group(1)}).status_code == 200


def test_feeds_show_warnings_apart_from_errors_failing_first(console: Console) -> None:
    store = Store(console.engine)
    store.sync_feeds([FeedConfig(id=name, url=f"https://{name}.example.org/rss")
                      for name in ("clean", "guessed", "broken")])
    now = datetime.now(UTC)
    warning = ("no encoding declared and the bytes are not UTF-8; read as cp1251 "
               "(guessed); 3 bytes invalid in UTF-8 replaced by U+FFFD <b>x</b>")
    for feed_id, note in (("clean", None), ("guessed", warning)):
        store.record_success(feed_id, published=[], unchanged_ids=[], etag=None,
                             last_modified=None, next_check_at=now, now=now, warning=note)
    store.record_failure("broken", "HTTP 500", next_check_at=now, now=now)
    with console.api(console.viewer_token) as api:
        feeds = {f["id"]: f for f in api.get("/api/v1/feeds").json()["feeds"]}
        order = [f["id"] for f in api.get("/api/v1/feeds").json()["feeds"]]
    assert order[0] == "broken"
    assert feeds["broken"]["failing"]
    assert feeds["broken"]["last_error"] == "HTTP 500"
    assert feeds["guessed"]["warnings"] == [
        "no encoding declared and the bytes are not UTF-8", "read as cp1251 (guessed)",
        "3 bytes invalid in UTF-8 replaced by U+FFFD <b>x</b>"]
    assert not feeds["guessed"]["failing"]
    assert feeds["guessed"]["last_error"] is None
    assert feeds["clean"]["warnings"] == []
    # A later clean read clears the warning; a 304 keeps what the last body had.
    store.record_success("guessed", published=[], unchanged_ids=[], etag=None,
                         last_modified=None, next_check_at=now, now=now, not_modified=True)
    assert store.load("guessed").last_warning == warning
    store.record_success("guessed", published=[], unchanged_ids=[], etag=None,
                         last_modified=None, next_check_at=now, now=now)
    assert store.load("guessed").last_warning is None
