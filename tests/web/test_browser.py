"""The console in a real browser: Debian's chromium driven by Playwright (never a
downloaded browser). Each test saves screenshots of the pages it sees under its
tmp_path/screenshots folder."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from consumers.store.feedback import export_feedback
from consumers.store.write import store_batch
from tests.factories import make_article, make_enriched, make_hit
from tests.web.conftest import HOSTILE_TITLE, PASSWORD, Console

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing under CI: .ci/run installs Debian's chromium")
        pytest.skip(f"browser tests skipped: {CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Shots:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, page: Any, name: str, docs: str | None = None) -> Path:
        """Save a screenshot; with NEWSWATCH_UPDATE_DOCS=1 also as docs/<docs> (the
        README's pictures), so an ordinary test run leaves the work tree alone."""
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if docs and os.environ.get("NEWSWATCH_UPDATE_DOCS") == "1":
            shutil.copy(path, DOCS / docs)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    return Shots(tmp_path / "screenshots")


def sign_in(browser: Any, console: Console, name: str = "ana") -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{console.url}/alerts")
    assert "/login" in page.url  # nothing is readable without signing in
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{console.url}/alerts")
    return page


def test_sign_in_see_alerts_open_the_seed_article_and_search(
        browser: Any, sqlite_console: Console, shots: Shots) -> None:
    console = sqlite_console
    page = sign_in(browser, console)
    rows = page.locator("tr.alert")
    assert rows.count() == 3
    rules = set(page.locator("section.group").evaluate_all(
        "els => els.map(e => e.dataset.rule)"))
    assert rules == {"islamic-state-threat", "drug-trafficking", "regime-recognition"}
    assert "Russia has Invited the Afghan Taliban" in page.inner_text("main")
    shots.take(page, "alerts", docs="web-alerts.png")

    page.click("text=After Issuing Warning About the Threat Posed by The Islamic State >> nth=0")
    page.wait_for_url(f"**/articles/{console.seed_id}")
    topics = page.locator(".topic").evaluate_all("els => els.map(e => e.dataset.topic)")
    assert sorted(topics) == ["drug_trafficking", "is_threat", "recognition"]
    marked = {t for t in page.locator(".text mark.evidence").evaluate_all(
        "els => els.map(e => e.title)")}
    assert {"evidence: is_threat", "evidence: drug_trafficking",
            "evidence: recognition"} <= marked
    phrases = page.locator(".text mark.evidence strong.phrase").all_inner_texts()
    assert "drug trafficking" in phrases
    assert "recognition" in phrases
    shots.take(page, "article", docs="web-article.png")

    page.click("nav >> text=Search")
    page.fill("input[name=q]", "Taliban recognition")
    page.click("form.filters button[type=submit]")
    results = page.locator("li.result a.title").all_inner_texts()
    assert any("Russia has Invited the Afghan Taliban" in title for title in results)
    assert page.locator("li.result .snippet strong.phrase").count() > 0
    shots.take(page, "search")

    for name, path in (("topics", "/topics"), ("topic", "/topics/recognition"),
                       ("feeds", "/feeds"), ("rules", "/rules"), ("audit", "/audit"),
                       ("alert", "/alerts/1")):
        page.goto(console.url + path)
        assert page.locator("h1").count() == 1
        shots.take(page, name)
    page.goto(console.url + "/entities?name=Taliban")
    assert page.locator("h1").inner_text().startswith("Taliban")
    shots.take(page, "entity")
    page.goto(console.url + "/rules")
    page.click("text=Run backtest")
    assert page.locator("section.backtest").count() == 3
    assert "1 alert(s)" in page.locator("section.backtest[data-rule=drug-trafficking]").inner_text()
    shots.take(page, "rules-backtest")
    page.context.close()


def _silenced_total(rule: str) -> float:
    return REGISTRY.get_sample_value("newswatch_alerts_silenced_total", {"rule": rule}) or 0.0


def test_acknowledge_and_silence_then_the_alert_daemon_honours_the_silence(
        browser: Any, sqlite_console: Console, shots: Shots,
        caplog: pytest.LogCaptureFixture) -> None:
    console = sqlite_console
    page = sign_in(browser, console)
    row = page.locator("tr.alert", has=page.locator("text=drug-trafficking")).first
    group = page.locator("section.group[data-rule=drug-trafficking]")
    group.locator("button:text('Acknowledge')").last.click()
    assert group.locator("tr.alert .badge").first.inner_text() == "acknowledged"
    assert "by ana" in group.inner_text()
    del row

    threat = page.locator("section.group[data-rule=islamic-state-threat]")
    threat.locator("input[name=comment]").fill("known campaign, reviewed")
    threat.locator("select[name=duration]").select_option("1d")
    threat.locator("button:text('Silence')").click()
    threat = page.locator("section.group[data-rule=islamic-state-threat]")
    assert "silenced until" in threat.inner_text()
    assert threat.locator("tr.alert .badge").first.inner_text() == "silenced"
    shots.take(page, "alerts-acknowledged-silenced")

    # New articles arrive for the silenced group and for a group that is not silenced.
    before = _silenced_total("islamic-state-threat")
    store_batch(console.engine, [
        make_enriched(make_article(title="New Islamic State threat"),
                      topics=[make_hit("is_threat", 0.9, phrases=("Islamic State",))]),
        make_enriched(make_article(title="Another recognition debate"),
                      topics=[make_hit("recognition", 0.9, phrases=("recognition",))]),
    ])
    with caplog.at_level(logging.INFO, logger="consumers.alert.silence"):
        fired = console.evaluate()
    assert [rule for _, rule in fired] == ["regime-recognition"]
    assert _silenced_total("islamic-state-threat") == before + 1
    assert any(r.getMessage() == "group silenced: nothing decided"
               and getattr(r, "rule", None) == "islamic-state-threat" for r in caplog.records)

    page.goto(f"{console.url}/audit")
    actions = page.locator("td:nth-child(3)").all_inner_texts()
    assert "acknowledge" in actions
    assert "silence" in actions
    page.context.close()


def test_feedback_and_send_again(browser: Any, sqlite_console: Console, shots: Shots) -> None:
    console = sqlite_console
    page = sign_in(browser, console)
    page.goto(f"{console.url}/articles/{console.seed_id}")
    page.locator(".topic[data-topic=drug_trafficking] button[value=not_relevant]").click()
    assert "not about this" in page.locator(
        ".topic[data-topic=drug_trafficking] .verdict").inner_text()
    exported = list(export_feedback(console.engine))
    assert [(r["id"], r["judged"], r["labels"]) for r in exported] == [
        (console.seed_id, ["drug_trafficking"], [])]
    assert [(v["verdict"], v["who"]) for v in exported[0]["verdicts"]] == [
        ("not_relevant", "ana")]

    # The webhook of the threat rule points at a closed port: its delivery failed.
    page.goto(f"{console.url}/alerts?rule=islamic-state-threat")
    page.locator("tr.alert a").first.click()
    assert page.locator("tr.outcome-failed").count() == 1
    assert "failed" in page.locator("tr.send-failed").inner_text()
    shots.take(page, "alert-failed-delivery")
    page.click("text=Send again")
    assert "pending" in page.locator("table").nth(0).inner_text()
    page.context.close()


def test_a_viewer_reads_but_cannot_acknowledge(browser: Any, sqlite_console: Console,
                                               shots: Shots) -> None:
    console = sqlite_console
    page = sign_in(browser, console, "vic")
    assert page.locator("tr.alert").count() == 3
    assert page.locator("button:text('Acknowledge')").count() == 0
    shots.take(page, "alerts-viewer")
    # Even a hand-made POST with the viewer's own valid CSRF token is refused.
    page.goto(f"{console.url}/alerts/1")
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = page.request.post(f"{console.url}/alerts/1/ack", form={"csrf_token": csrf},
                               max_redirects=0)
    assert answer.status == 403
    page.goto(f"{console.url}/articles/{console.seed_id}")
    assert page.locator("button[value=not_relevant]").count() == 0
    page.context.close()


def test_no_session_no_page_and_a_forged_post_is_refused(browser: Any,
                                                         sqlite_console: Console) -> None:
    console = sqlite_console
    anonymous = browser.new_context()
    answer = anonymous.request.get(f"{console.url}/alerts", max_redirects=0)
    assert answer.status == 303
    assert answer.headers["location"].startswith("/login")
    assert anonymous.request.get(f"{console.url}/api/v1/alerts").status == 401
    anonymous.close()

    page = sign_in(browser, console)
    forged = page.request.post(f"{console.url}/alerts/1/ack", form={"comment": "x"},
                               max_redirects=0)
    assert forged.status == 403
    wrong = page.request.post(f"{console.url}/alerts/1/ack",
                              form={"csrf_token": "forged"}, max_redirects=0)
    assert wrong.status == 403
    page.goto(f"{console.url}/alerts/1")
    assert page.locator(".badge").first.inner_text() == "new"
    page.context.close()


def test_hostile_article_text_renders_as_text(browser: Any, sqlite_console: Console,
                                              shots: Shots) -> None:
    console = sqlite_console
    page = sign_in(browser, console)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{console.url}/articles/{console.hostile_id}")
    assert page.locator("h1").inner_text() == HOSTILE_TITLE
    assert page.locator("main img").count() == 0
    assert page.locator("main script").count() == 0
    assert "<script>alert(3)</script>" in page.locator(".text").inner_text()
    assert page.locator("a[href^='javascript']").count() == 0
    page.goto(f"{console.url}/search?q=Kabul")
    assert HOSTILE_TITLE in page.locator("li.result a.title").first.inner_text()
    page.wait_for_timeout(300)
    assert dialogs == []
    shots.take(page, "hostile")
    page.context.close()


def test_sign_in_is_rate_limited(browser: Any, sqlite_console: Console) -> None:
    console = sqlite_console
    page = browser.new_context().new_page()
    for _ in range(3):  # the fixture allows 3 failures
        page.goto(f"{console.url}/login")
        page.fill("input[name=username]", "ana")
        page.fill("input[name=password]", "wrong password!")
        page.click("button[type=submit]")
        assert "Wrong user name or password" in page.inner_text("main")
    page.goto(f"{console.url}/login")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", PASSWORD)  # right, but too late
    page.click("button[type=submit]")
    assert "Too many failed sign-ins" in page.inner_text("main")
    page.context.close()



