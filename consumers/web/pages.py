"""The HTML pages. Each handler: who is asking, one call into the query layer, render.

Every POST is a form carrying the session's CSRF token, and answers with a redirect
(post/redirect/get), so a reload never repeats a change.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from consumers.alert.backtest import backtest
from consumers.alert.compile import compile_rules
from consumers.alert.outbox import resend_alert
from consumers.alert.silence import create_silence, expire_silence, list_silences
from consumers.store.feedback import latest_verdicts
from consumers.web import queries
from consumers.web.app import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    CsrfError,
    Principal,
    change,
    check_csrf,
    principal,
    safe_next,
    session_lifetime,
    state_of,
)
from consumers.web.auth import authenticate, end_session, start_session
from consumers.web.charts import bar_chart
from consumers.web.search import SearchQuery, search_articles
from newswatch.errors import ConfigError
from newswatch.metrics import WEB_LOGIN_FAILURES
from schemas.duration import parse_duration

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
Who = Annotated[Principal, Depends(principal)]
# A missing token is a refused request (403), not a malformed form (422).
Csrf = Annotated[str, Form(alias="csrf_token")]


def _page(request: Request, template: str, who: Principal | None, status: int = 200,
          **context: Any) -> HTMLResponse:
    web = state_of(request)
    return web.templates.TemplateResponse(
        request, template, {"user": who.user if who else None,
                            "csrf": who.csrf_token if who else None,
                            "nav": template.split(".")[0], **context},
        status_code=status)


def _back(target: str | None, default: str) -> RedirectResponse:
    return RedirectResponse(safe_next(target, default), 303)


def parse_when(value: str | None, *, end: bool = False) -> datetime | None:
    """A date from a form (``2021-10-21``, or a date and time); None when empty."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"{value!r} is not a date such as 2021-10-21") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end and len(value.strip()) == 10:
        moment += timedelta(days=1)  # an end date includes that whole day
    return moment


def _duration(text: str) -> timedelta:
    try:
        value = parse_duration(text.strip())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if not isinstance(value, timedelta):
        raise ConfigError(f"{text!r} is not a duration such as 2h or 7d")
    return value


# --- Signing in ----------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, next: str = "/alerts") -> Response:
    token = secrets.token_urlsafe(24)
    response = _page(request, "login.html", None, next=safe_next(next), login_csrf=token,
                     error=None)
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                        secure=state_of(request).secure(request), max_age=3600)
    return response


@router.post("/login")
def login(request: Request, username: Annotated[str, Form()],
          password: Annotated[str, Form()], csrf: Csrf = "",
          next: Annotated[str, Form()] = "/alerts") -> Response:
    web = state_of(request)
    address = request.client.host if request.client else "?"
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf):
        raise CsrfError
    wait = web.limiter.retry_after(address, username)
    if wait > 0:
        WEB_LOGIN_FAILURES.labels("rate_limited").inc()
        log.warning("sign-in refused: too many failures",
                    extra={"client": address, "account": username[:64]})
        response = _page(request, "login.html", None, status=429, next=safe_next(next),
                         login_csrf=expected,
                         error=f"Too many failed sign-ins. Try again in {int(wait) + 1} s.")
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    user = authenticate(web.engine, username, password)
    if user is None:
        web.limiter.failed(address, username)
        WEB_LOGIN_FAILURES.labels("bad_credentials").inc()
        log.warning("sign-in failed", extra={"client": address, "account": username[:64]})
        return _page(request, "login.html", None, status=401, next=safe_next(next),
                     login_csrf=expected, error="Wrong user name or password.")
    web.limiter.succeeded(address, username)
    cookie, _ = start_session(web.engine, user, session_lifetime(web.settings))
    log.info("signed in", extra={"user": user.name, "client": address})
    target = _back(next, "/alerts")
    target.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="lax",
                        secure=web.secure(request),
                        max_age=int(session_lifetime(web.settings).total_seconds()))
    target.delete_cookie(LOGIN_COOKIE)
    return target


@router.post("/logout")
def logout(request: Request, who: Who, csrf: Csrf = "") -> Response:
    check_csrf(who, csrf)
    end_session(state_of(request).engine, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
def home(who: Who) -> Response:
    return RedirectResponse("/alerts", 303)


# --- Alerts --------------------------------------------------------------------------------


@router.get("/alerts")
def alerts_page(request: Request, who: Who, rule: str = "", topic: str = "",
                channel: str = "", state: str = "", since: str = "", until: str = "",
                page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Response:
    web = state_of(request)
    filters = queries.AlertFilters(
        rule=rule or None, topic=topic or None, channel=channel or None,
        state=state if state in queries.STATES else None, since=parse_when(since),
        until=parse_when(until, end=True), page=page, page_size=web.settings.web_page_size)
    found = queries.list_alerts(web.engine, filters, rules_of_topic=web.rules_of_topic())
    return _page(request, "alerts.html", who, found=found, f=filters,
                 form={"rule": rule, "topic": topic, "channel": channel, "state": state,
                       "since": since, "until": until},
                 choices=queries.distinct_values(web.engine), states=queries.STATES,
                 silences=list_silences(web.engine), query=request.url.query,
                 pager_query=urlencode({k: v for k, v in (
                     ("rule", rule), ("topic", topic), ("channel", channel), ("state", state),
                     ("since", since), ("until", until)) if v}))


@router.get("/alerts/{alert_id}")
def alert_page(request: Request, who: Who, alert_id: int) -> Response:
    detail = queries.alert_detail(state_of(request).engine, alert_id)
    return _page(request, "alert.html", who, d=detail)


@router.post("/alerts/{alert_id}/ack")
def ack(request: Request, who: Who, alert_id: int, csrf: Csrf = "",
        comment: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "") -> Response:
    with change(who, csrf, "acknowledge"):
        queries.acknowledge(state_of(request).engine, [alert_id], who=who.name, comment=comment)
    return _back(next, f"/alerts/{alert_id}")


@router.post("/alerts/{alert_id}/ack-group")
def ack_group(request: Request, who: Who, alert_id: int, csrf: Csrf = "",
              next: Annotated[str, Form()] = "") -> Response:
    with change(who, csrf, "acknowledge"):
        engine = state_of(request).engine
        rule, group_key = queries.alert_group_of(engine, alert_id)
        queries.acknowledge_group(engine, rule, group_key, who=who.name)
    return _back(next, "/alerts")


@router.post("/alerts/{alert_id}/resend")
def resend(request: Request, who: Who, alert_id: int, csrf: Csrf = "") -> Response:
    with change(who, csrf, "resend"):
        resend_alert(state_of(request).engine, alert_id, who=who.name)
    return _back(None, f"/alerts/{alert_id}")


@router.post("/silences")
def silence(request: Request, who: Who, *, csrf: Csrf = "", rule: Annotated[str, Form()],
            duration: Annotated[str, Form()], comment: Annotated[str, Form()] = "",
            group_key: Annotated[str, Form()] = "",
            next: Annotated[str, Form()] = "") -> Response:
    with change(who, csrf, "silence"):
        create_silence(state_of(request).engine, rule=rule, group_key=group_key or None,
                       duration=_duration(duration), comment=comment, who=who.name)
    return _back(next, "/alerts")


@router.post("/silences/{silence_id}/expire")
def unsilence(request: Request, who: Who, silence_id: int, csrf: Csrf = "",
              next: Annotated[str, Form()] = "") -> Response:
    with change(who, csrf, "unsilence"):
        expire_silence(state_of(request).engine, silence_id, who=who.name)
    return _back(next, "/alerts")


# --- Articles and search -------------------------------------------------------------------


@router.get("/articles/{article_id}")
def article_page(request: Request, who: Who, article_id: str) -> Response:
    web = state_of(request)
    verdicts = latest_verdicts(web.engine, article_id)
    detail = queries.article_detail(web.engine, article_id, verdicts)
    return _page(request, "article.html", who, a=detail)


@router.post("/articles/{article_id}/feedback")
def feedback(request: Request, who: Who, article_id: str, *, csrf: Csrf = "",
             topic: Annotated[str, Form()], verdict: Annotated[str, Form()],
             note: Annotated[str, Form()] = "") -> Response:
    with change(who, csrf, "feedback"):
        queries.record_verdict(state_of(request).engine, who=who.name, article_id=article_id,
                               topic=topic[:64], verdict=verdict, note=note[:2000])
    return _back(None, f"/articles/{article_id}")


@router.get("/search")
def search_page(request: Request, who: Who, q: str = "", topic: str = "", entity: str = "",
                feed: str = "", language: str = "", since: str = "", until: str = "",
                page: Annotated[int, Query(ge=1, le=10_000)] = 1) -> Response:
    web = state_of(request)
    query = SearchQuery(text=q, topic=topic or None, entity=entity or None, feed=feed or None,
                        language=language or None, since=parse_when(since),
                        until=parse_when(until, end=True), page=page,
                        page_size=web.settings.web_page_size)
    found = search_articles(web.engine, query)
    form = {"q": q, "topic": topic, "entity": entity, "feed": feed, "language": language,
            "since": since, "until": until}
    return _page(request, "search.html", who, found=found, form=form,
                 choices=queries.distinct_values(web.engine))


# --- Topics, entities, feeds, rules --------------------------------------------------------


def _topic_names(request: Request) -> list[str]:
    return sorted(state_of(request).rules_of_topic())


@router.get("/topics")
def topics_page(request: Request, who: Who) -> Response:
    summaries = queries.topics_overview(state_of(request).engine, _topic_names(request))
    charts = {s.topic: bar_chart(s.per_day, width=300, height=60) for s in summaries}
    return _page(request, "topics.html", who, summaries=summaries, charts=charts)


@router.get("/topics/{topic}")
def topic_page(request: Request, who: Who, topic: str) -> Response:
    detail = queries.topic_detail(state_of(request).engine, topic)
    return _page(request, "topic.html", who, t=detail, chart=bar_chart(detail.per_day))


@router.get("/entities")
def entities_page(request: Request, who: Who, name: str = "") -> Response:
    found = queries.find_entities(state_of(request).engine, name) if name else []
    if len(found) == 1:
        return RedirectResponse(f"/entities/{found[0].id}", 303)
    return _page(request, "entities.html", who, name=name, found=found)


@router.get("/entities/{entity_id}")
def entity_page(request: Request, who: Who, entity_id: int) -> Response:
    detail = queries.entity_detail(state_of(request).engine, entity_id)
    return _page(request, "entity.html", who, e=detail, chart=bar_chart(detail.per_day))


@router.get("/feeds")
def feeds_page(request: Request, who: Who) -> Response:
    return _page(request, "feeds.html", who, feeds=queries.feeds_health(state_of(request).engine))


@router.get("/rules")
def rules_page(request: Request, who: Who) -> Response:
    web = state_of(request)
    return _page(request, "rules.html", who, rules=web.rules(),
                 path=web.settings.rules_path(), reports=None, days=7)


@router.post("/rules/backtest")
def rules_backtest(request: Request, who: Who, csrf: Csrf = "",
                   days: Annotated[int, Form(ge=1, le=90)] = 7) -> Response:
    """The same code as ``newswatch rules test``: stored history through the rules, in
    memory; nothing is sent or written."""
    check_csrf(who, csrf)
    web = state_of(request)
    parsed = web.rules()
    until = datetime.now(UTC)
    reports = backtest(web.engine, compile_rules(parsed.rules, web.engine.dialect.name),
                       until - timedelta(days=days), until, samples=5)
    charts = {r.rule: bar_chart([queries.DayCount(d, n) for d, n in sorted(r.per_day.items())],
                                width=400, height=60) for r in reports}
    return _page(request, "rules.html", who, rules=parsed, path=web.settings.rules_path(),
                 reports=reports, charts=charts, days=days)


@router.get("/audit")
def audit_page(request: Request, who: Who) -> Response:
    return _page(request, "audit.html", who, rows=queries.recent_audit(state_of(request).engine))
