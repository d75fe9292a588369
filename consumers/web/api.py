"""The JSON API under /api/v1, described by its OpenAPI document (/api/v1/openapi.json).

The same query layer as the pages. Programs authenticate with a Bearer API token; a
browser session works too, and then changes need the X-CSRF-Token header.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from consumers.alert.outbox import resend_alert
from consumers.alert.silence import create_silence, expire_silence, list_silences
from consumers.store.feedback import export_feedback, latest_verdicts
from consumers.web import queries
from consumers.web.app import Principal, change, principal, state_of
from consumers.web.pages import _duration, parse_when
from consumers.web.search import SearchQuery, search_articles

router = APIRouter(prefix="/api/v1", tags=["v1"])
Who = Annotated[Principal, Depends(principal)]
CsrfHeader = Annotated[str | None, Header(alias="X-CSRF-Token")]


class AckBody(BaseModel):
    comment: str = Field(default="", max_length=2000)


class SilenceBody(BaseModel):
    rule: str = Field(max_length=64)
    group_key: str | None = Field(default=None, max_length=255,
                                  description="Unset: every group of the rule")
    duration: str = Field(description="e.g. 2h, 1d", max_length=16)
    comment: str = Field(min_length=1, max_length=2000)


class FeedbackBody(BaseModel):
    article_id: str = Field(max_length=64)
    topic: str = Field(max_length=64)
    verdict: Literal["relevant", "not_relevant"]
    note: str = Field(default="", max_length=2000)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, who: Who) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/articles", summary="Search articles (full text and filters)")
def articles(request: Request, who: Who, q: str = "", topic: str = "", entity: str = "",
             feed: str = "", language: str = "",
             since: Annotated[str, Query(description="ISO date or time")] = "",
             until: str = "", page: Annotated[int, Query(ge=1, le=10_000)] = 1,
             page_size: Annotated[int, Query(ge=1, le=200)] = 25) -> dict[str, Any]:
    found = search_articles(state_of(request).engine, SearchQuery(
        text=q, topic=topic or None, entity=entity or None, feed=feed or None,
        language=language or None, since=parse_when(since), until=parse_when(until, end=True),
        page=page, page_size=page_size))
    return {"page": found.page, "has_more": found.has_more,
            "articles": [hit.to_json() for hit in found.hits]}


@router.get("/articles/{article_id}", summary="One article with topics, evidence, entities")
def article(request: Request, who: Who, article_id: str) -> dict[str, Any]:
    web = state_of(request)
    detail = queries.article_detail(web.engine, article_id,
                                    latest_verdicts(web.engine, article_id))
    return detail.to_json()


@router.get("/alerts", summary="Alerts, newest first, with state and sends")
def alerts(request: Request, who: Who, rule: str = "", topic: str = "", channel: str = "",
           state: Literal["", "new", "acknowledged", "silenced"] = "", since: str = "",
           until: str = "", page: Annotated[int, Query(ge=1, le=100_000)] = 1,
           page_size: Annotated[int, Query(ge=1, le=200)] = 25) -> dict[str, Any]:
    web = state_of(request)
    found = queries.list_alerts(web.engine, queries.AlertFilters(
        rule=rule or None, topic=topic or None, channel=channel or None, state=state or None,
        since=parse_when(since), until=parse_when(until, end=True), page=page,
        page_size=page_size), rules_of_topic=web.rules_of_topic())
    return {"page": found.page, "has_more": found.has_more,
            "alerts": [a.to_json() for a in found.alerts]}


@router.get("/alerts/{alert_id}", summary="One alert with its delivery history")
def alert(request: Request, who: Who, alert_id: int) -> dict[str, Any]:
    detail = queries.alert_detail(state_of(request).engine, alert_id)
    return {**detail.alert.to_json(), "articles": detail.articles,
            "deliveries": [{**d.__dict__, "attempted_at": d.attempted_at.isoformat()}
                           for d in detail.deliveries]}


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge an alert")
def ack(request: Request, who: Who, alert_id: int, body: AckBody | None = None,
        x_csrf_token: CsrfHeader = None) -> dict[str, Any]:
    with change(who, x_csrf_token, "acknowledge"):
        done = queries.acknowledge(state_of(request).engine, [alert_id], who=who.name,
                                   comment=body.comment if body else "")
    return {"acknowledged": done}


@router.post("/alerts/{alert_id}/resend", summary="Send an alert's failed deliveries again")
def resend(request: Request, who: Who, alert_id: int,
           x_csrf_token: CsrfHeader = None) -> dict[str, Any]:
    with change(who, x_csrf_token, "resend"):
        requeued = resend_alert(state_of(request).engine, alert_id, who=who.name)
    return {"requeued": requeued}


@router.get("/silences", summary="Silences in force (all=true: also ended ones)")
def silences(request: Request, who: Who, all: bool = False) -> dict[str, Any]:
    return {"silences": [{**s.__dict__, "starts_at": _iso(s.starts_at),
                          "ends_at": _iso(s.ends_at)}
                         for s in list_silences(state_of(request).engine, include_ended=all)]}


@router.post("/silences", summary="Silence a rule or one of its groups", status_code=201)
def silence(request: Request, who: Who, body: SilenceBody,
            x_csrf_token: CsrfHeader = None) -> dict[str, Any]:
    with change(who, x_csrf_token, "silence"):
        new_id = create_silence(state_of(request).engine, rule=body.rule,
                                group_key=body.group_key or None,
                                duration=_duration(body.duration), comment=body.comment,
                                who=who.name)
    return {"id": new_id}


@router.delete("/silences/{silence_id}", summary="End a silence now")
def unsilence(request: Request, who: Who, silence_id: int,
              x_csrf_token: CsrfHeader = None) -> dict[str, Any]:
    with change(who, x_csrf_token, "unsilence"):
        expire_silence(state_of(request).engine, silence_id, who=who.name)
    return {"expired": silence_id}


@router.get("/topics", summary="Topics with hits per day over 30 days")
def topics(request: Request, who: Who) -> dict[str, Any]:
    web = state_of(request)
    return {"topics": [{"topic": s.topic, "total": s.total,
                        "per_day": {d.day.isoformat(): d.count for d in s.per_day}}
                       for s in queries.topics_overview(web.engine,
                                                        sorted(web.rules_of_topic()))]}


@router.get("/topics/{topic}", summary="One topic: per day, top entities, latest hits")
def topic(request: Request, who: Who, topic: str) -> dict[str, Any]:
    t = queries.topic_detail(state_of(request).engine, topic)
    return {"topic": t.topic, "per_day": {d.day.isoformat(): d.count for d in t.per_day},
            "top_entities": [e.__dict__ for e in t.top_entities],
            "latest": [{**a.__dict__, "published": _iso(a.published)} for a in t.latest]}


@router.get("/entities", summary="Find entities by name")
def entities(request: Request, who: Who, name: str) -> dict[str, Any]:
    return {"entities": [e.__dict__ for e in queries.find_entities(state_of(request).engine,
                                                                    name)]}


@router.get("/entities/{entity_id}", summary="One entity: mentions, co-occurring, latest")
def entity(request: Request, who: Who, entity_id: int) -> dict[str, Any]:
    e = queries.entity_detail(state_of(request).engine, entity_id)
    return {"id": e.id, "name": e.name, "label": e.label,
            "per_day": {d.day.isoformat(): d.count for d in e.per_day},
            "co_occurring": [c.__dict__ for c in e.co_occurring],
            "latest": [{**a.__dict__, "published": _iso(a.published)} for a in e.latest]}


@router.get("/feeds", summary="Every feed's health, failing first")
def feeds(request: Request, who: Who) -> dict[str, Any]:
    return {"feeds": [f.to_json() for f in queries.feeds_health(state_of(request).engine)]}


@router.post("/feedback", summary="Record a verdict on an article's topic", status_code=201)
def feedback(request: Request, who: Who, body: FeedbackBody,
             x_csrf_token: CsrfHeader = None) -> dict[str, Any]:
    with change(who, x_csrf_token, "feedback"):
        feedback_id = queries.record_verdict(
            state_of(request).engine, who=who.name, article_id=body.article_id,
            topic=body.topic, verdict=body.verdict, note=body.note)
    return {"id": feedback_id}


@router.get("/feedback", summary="Every verdict, oldest first, as JSON lines")
def feedback_export(request: Request, who: Who) -> StreamingResponse:
    import json

    def lines() -> Iterator[str]:
        for row in export_feedback(state_of(request).engine):
            yield json.dumps(row, ensure_ascii=False) + "\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")
