"""The console's query layer: every read and change the HTML pages and the API make.

Route handlers call these functions and render what they return; no SQL lives in routes
or templates. Each function opens its own connection (or transaction, for changes) and
returns plain dataclasses. Changes are written with their audit row in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    Engine,
    Select,
    cast,
    exists,
    func,
    not_,
    or_,
    select,
)

from consumers.alert.silence import Silence, active_silences, silence_for
from consumers.store.audit import record_audit
from consumers.store.feedback import record_feedback
from consumers.web.highlight import Segment, paragraphs, segments
from consumers.web.listing import Window
from newswatch.db_errors import unavailable_as_retryable
from newswatch.errors import NotFoundError
from newswatch.utc import as_utc
from schemas import tables

AL, ACK, SND, DLV = (tables.alerts.c, tables.alert_acks.c, tables.alert_sends.c,
                     tables.deliveries.c)
SIL, A, H = tables.silences.c, tables.articles.c, tables.topic_hits.c
E, AE, FD = tables.entities.c, tables.article_entities.c, tables.feeds.c
STATES = ("new", "acknowledged", "silenced")
DAYS = 30





def _day(conn: Any, column: Any) -> Any:
    """A timestamp column as its UTC day (SQLite stores UTC wall time as text)."""
    return func.date(column) if conn.dialect.name == "sqlite" else cast(column, Date)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


# --- Alerts ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AlertFilters(Window):
    """Alerts by rule, topic, channel and state, in a date range (of ``created_at``)."""

    rule: str | None = None
    topic: str | None = None
    channel: str | None = None
    state: str | None = None


@dataclass(frozen=True)
class SendView:
    channel: str
    status: str
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class AlertView:
    id: int
    rule: str
    group_key: str
    kind: str
    status: str
    reason: str
    created_at: datetime
    state: str
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    silence: Silence | None
    articles_total: int
    titles: list[tuple[str, str]]
    sends: list[SendView]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "rule": self.rule, "group": self.group_key, "kind": self.kind,
            "delivery_status": self.status, "reason": self.reason,
            "created_at": self.created_at.isoformat(), "state": self.state,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": self.acknowledged_at.isoformat() if self.acknowledged_at
            else None,
            "silence_id": self.silence.id if self.silence else None,
            "articles_total": self.articles_total,
            "articles": [{"id": i, "title": t} for i, t in self.titles],
            "sends": [s.__dict__ for s in self.sends],
        }


@dataclass(frozen=True)
class AlertGroupView:
    rule: str
    group_key: str
    silence: Silence | None
    alerts: list[AlertView]


@dataclass(frozen=True)
class AlertPage:
    groups: list[AlertGroupView]
    alerts: list[AlertView]
    page: int
    has_more: bool


def _silenced_clause(now: datetime) -> Any:
    return exists().where(SIL.rule == AL.rule, SIL.starts_at <= now, SIL.ends_at > now,
                          or_(SIL.group_key.is_(None), SIL.group_key == AL.group_key))


def list_alerts(engine: Engine, f: AlertFilters, *,
                rules_of_topic: Mapping[str, Sequence[str]] | None = None,
                now: datetime | None = None) -> AlertPage:
    """Newest alerts first, filtered, each with its state and sends, grouped by rule group.

    State: acknowledged when someone acknowledged it, else silenced while a silence
    covers its group, else new. ``rules_of_topic`` maps a topic to the rules that match
    it (from the rules file), for the topic filter; groups keyed by topic match too.
    """
    now = now or datetime.now(UTC)
    query: Select[Any] = (
        select(AL.id, AL.rule, AL.group_key, AL.kind, AL.status, AL.reason, AL.created_at,
               AL.payload, ACK.acknowledged_by, ACK.acknowledged_at)
        .select_from(tables.alerts.outerjoin(tables.alert_acks, ACK.alert_id == AL.id)))
    if f.rule:
        query = query.where(AL.rule == f.rule)
    if f.topic:
        rules = list((rules_of_topic or {}).get(f.topic, ()))
        query = query.where(or_(AL.rule.in_(rules),
                                AL.group_key.contains(f"topic={f.topic}", autoescape=True)))
    if f.channel:
        query = query.where(exists().where(SND.alert_id == AL.id, SND.channel == f.channel))
    query = f.within(query, AL.created_at)
    if f.state == "acknowledged":
        query = query.where(ACK.alert_id.is_not(None))
    elif f.state == "silenced":
        query = query.where(ACK.alert_id.is_(None), _silenced_clause(now))
    elif f.state == "new":
        query = query.where(ACK.alert_id.is_(None), not_(_silenced_clause(now)))
    query = f.one_page(query.order_by(AL.id.desc()))
    with unavailable_as_retryable(), engine.connect() as conn:
        rows, has_more = f.split_page(conn.execute(query).all())
        silences = active_silences(conn, now)
        sends = _sends(conn, [row.id for row in rows])
    alerts = [_alert_view(row, silences, sends.get(row.id, [])) for row in rows]
    groups: dict[tuple[str, str], AlertGroupView] = {}
    for alert in alerts:
        key = (alert.rule, alert.group_key)
        if key not in groups:
            groups[key] = AlertGroupView(alert.rule, alert.group_key,
                                         silence_for(silences, *key), [])
        groups[key].alerts.append(alert)
    return AlertPage(list(groups.values()), alerts, f.page_number, has_more)


def _sends(conn: Any, ids: list[int]) -> dict[int, list[SendView]]:
    out: dict[int, list[SendView]] = {}
    if ids:
        for row in conn.execute(select(tables.alert_sends).where(SND.alert_id.in_(ids))
                                .order_by(SND.channel)):
            out.setdefault(row.alert_id, []).append(
                SendView(row.channel, row.status, row.attempts, row.last_error))
    return out


def _alert_view(row: Any, silences: Sequence[Silence], sends: list[SendView]) -> AlertView:
    payload = row.payload or {}
    silence = silence_for(silences, row.rule, row.group_key)
    state = ("acknowledged" if row.acknowledged_by is not None
             else "silenced" if silence is not None else "new")
    titles = [(str(a.get("id", "")), str(a.get("title", "")))
              for a in payload.get("articles", [])[:5] if isinstance(a, dict)]
    return AlertView(
        id=int(row.id), rule=row.rule, group_key=row.group_key, kind=row.kind,
        status=row.status, reason=row.reason, created_at=as_utc(row.created_at) or row.created_at,
        state=state, acknowledged_by=row.acknowledged_by,
        acknowledged_at=as_utc(row.acknowledged_at), silence=silence,
        articles_total=int(payload.get("articles_total", len(titles)) or 0), titles=titles,
        sends=sends)


@dataclass(frozen=True)
class DeliveryView:
    channel: str
    attempt: int
    attempted_at: datetime
    outcome: str
    status: str
    latency_ms: float
    error: str | None


@dataclass(frozen=True)
class AlertDetail:
    alert: AlertView
    deliveries: list[DeliveryView]
    articles: list[dict[str, Any]]
    payload: dict[str, Any]


def alert_detail(engine: Engine, alert_id: int, now: datetime | None = None) -> AlertDetail:
    """One alert with its sends, every delivery attempt and its articles."""
    now = now or datetime.now(UTC)
    query = (select(AL.id, AL.rule, AL.group_key, AL.kind, AL.status, AL.reason,
                    AL.created_at, AL.payload, ACK.acknowledged_by, ACK.acknowledged_at)
             .select_from(tables.alerts.outerjoin(tables.alert_acks, ACK.alert_id == AL.id))
             .where(AL.id == alert_id))
    with unavailable_as_retryable(), engine.connect() as conn:
        row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"no alert {alert_id}")
        view = _alert_view(row, active_silences(conn, now), _sends(conn, [alert_id]).get(
            alert_id, []))
        deliveries = [
            DeliveryView(d.channel, d.attempt, as_utc(d.attempted_at) or d.attempted_at,
                         d.outcome, d.status, float(d.latency_ms), d.error)
            for d in conn.execute(select(tables.deliveries).where(DLV.alert_id == alert_id)
                                  .order_by(DLV.attempted_at, DLV.id))]
    payload = dict(row.payload or {})
    articles = [a for a in payload.get("articles", []) if isinstance(a, dict)]
    return AlertDetail(view, deliveries, articles, payload)


def acknowledge(engine: Engine, alert_ids: Sequence[int], *, who: str,
                comment: str = "") -> int:
    """Acknowledge alerts not acknowledged yet; returns how many were."""
    now = datetime.now(UTC)
    done = 0
    with unavailable_as_retryable(), engine.begin() as conn:
        wanted = sorted(set(alert_ids))
        known = set(conn.execute(select(AL.id).where(AL.id.in_(wanted))).scalars())
        if not known:
            raise NotFoundError("no such alert")
        acked = set(conn.execute(select(ACK.alert_id).where(ACK.alert_id.in_(wanted)))
                    .scalars())
        for alert_id in sorted(known - acked):
            conn.execute(tables.alert_acks.insert().values(
                alert_id=alert_id, acknowledged_by=who, acknowledged_at=now,
                comment=comment[:2000]))
            record_audit(conn, who=who, action="acknowledge", target=f"alert:{alert_id}",
                         detail={"comment": comment[:2000]} if comment else {}, at=now)
            done += 1
    return done


def acknowledge_group(engine: Engine, rule: str, group_key: str, *, who: str,
                      comment: str = "", limit: int = 10_000) -> int:
    """Acknowledge every alert of a rule's group not acknowledged yet."""
    with unavailable_as_retryable(), engine.connect() as conn:
        ids = list(conn.execute(
            select(AL.id).where(AL.rule == rule, AL.group_key == group_key,
                                not_(exists().where(ACK.alert_id == AL.id)))
            .order_by(AL.id.desc()).limit(limit)).scalars())
    return acknowledge(engine, ids, who=who, comment=comment) if ids else 0


def alert_group_of(engine: Engine, alert_id: int) -> tuple[str, str]:
    with unavailable_as_retryable(), engine.connect() as conn:
        row = conn.execute(select(AL.rule, AL.group_key).where(AL.id == alert_id)).first()
    if row is None:
        raise NotFoundError(f"no alert {alert_id}")
    return row.rule, row.group_key


# --- Articles ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicView:
    topic: str
    score: float
    probability: float | None
    evidence: list[dict[str, Any]]
    verdict: str | None


@dataclass(frozen=True)
class EntityView:
    id: int
    name: str
    label: str
    count: int


@dataclass(frozen=True)
class ArticleDetail:
    id: str
    title: str
    url: str | None
    feed_id: str
    feed_name: str
    language: str | None
    published: datetime
    published_estimated: bool
    authors: list[str]
    title_segments: list[Segment]
    body: list[list[Segment]]
    topics: list[TopicView]
    entities: list[EntityView]
    story: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "url": self.url, "feed_id": self.feed_id,
            "feed_name": self.feed_name, "language": self.language,
            "published": self.published.isoformat(),
            "published_estimated": self.published_estimated, "authors": self.authors,
            "text": "\n\n".join("".join(s.text for s in p) for p in self.body),
            "topics": [{"topic": t.topic, "score": t.score, "probability": t.probability,
                        "evidence": t.evidence, "verdict": t.verdict} for t in self.topics],
            "entities": [e.__dict__ for e in self.entities],
            "story": self.story,
        }


def article_detail(engine: Engine, article_id: str, verdicts: Mapping[str, str]
                   ) -> ArticleDetail:
    """One article: text cut at its evidence, topics with rule scores and probabilities,
    entities, and the other articles of its story."""
    hit_columns: list[Any] = [H.topic, H.score, H.probability, H.evidence]
    with unavailable_as_retryable(), engine.connect() as conn:
        row = conn.execute(select(tables.articles).where(A.id == article_id)).first()
        if row is None:
            raise NotFoundError(f"no article {article_id}")
        hits = conn.execute(select(*hit_columns).where(H.article_id == article_id)
                            .order_by(H.score.desc(), H.topic)).all()
        entities = [EntityView(int(e.id), e.name, e.label, int(e[3])) for e in conn.execute(
            select(E.id, E.name, E.label, AE.count).join(tables.entities, E.id == AE.entity_id)
            .where(AE.article_id == article_id).order_by(AE.count.desc(), E.name).limit(60))]
        story = _story(conn, row)
    evidence = {hit.topic: list(hit.evidence or []) for hit in hits}
    topics = [TopicView(hit.topic, float(hit.score),
                        None if hit.probability is None else float(hit.probability),
                        list(hit.evidence or []), verdicts.get(hit.topic)) for hit in hits]
    title = " ".join(row.title.split())
    return ArticleDetail(
        id=row.id, title=title, url=web_link(row.url), feed_id=row.feed_id, feed_name=row.feed_name,
        language=row.language, published=as_utc(row.published) or row.published,
        published_estimated=bool(row.published_estimated),
        authors=[str(a) for a in (row.authors or [])][:20],
        title_segments=segments(title, evidence),
        body=[segments(p, evidence) for p in paragraphs(row.summary, row.content)],
        topics=topics, entities=entities, story=story)


def web_link(url: str | None) -> str | None:
    """The URL when it is http(s); a ``javascript:`` or ``data:`` link is never shown."""
    if url and url.lower().startswith(("http://", "https://")):
        return url
    return None


def _story(conn: Any, row: Any) -> list[dict[str, Any]]:
    story_id = row.story_id
    if story_id is None:
        return []
    others = conn.execute(
        select(A.id, A.title, A.feed_name, A.published)
        .where(A.story_id == story_id, A.id != row.id)
        .order_by(A.published.desc()).limit(20))
    return [{"id": o.id, "title": o.title, "feed_name": o.feed_name,
             "published": as_utc(o.published)} for o in others]


# --- Topics and entities -------------------------------------------------------------------


@dataclass(frozen=True)
class DayCount:
    day: date
    count: int


def _days(counts: Mapping[date, int], today: date, days: int = DAYS) -> list[DayCount]:
    return [DayCount(today - timedelta(days=days - 1 - i),
                     counts.get(today - timedelta(days=days - 1 - i), 0)) for i in range(days)]


@dataclass(frozen=True)
class TopicSummary:
    topic: str
    total: int
    per_day: list[DayCount]


def topics_overview(engine: Engine, topics: Sequence[str],
                    now: datetime | None = None) -> list[TopicSummary]:
    """Per topic (the defined ones and any with hits), hits per day over 30 days."""
    now = now or datetime.now(UTC)
    since = datetime.combine(now.date() - timedelta(days=DAYS - 1), datetime.min.time(), UTC)
    with unavailable_as_retryable(), engine.connect() as conn:
        day = _day(conn, H.published)
        rows = conn.execute(select(H.topic, day.label("day"), func.count())
                            .where(H.published >= since).group_by(H.topic, day)).all()
    counts: dict[str, dict[date, int]] = {t: {} for t in topics}
    for topic, day_value, count in rows:
        counts.setdefault(topic, {})[_as_date(day_value)] = int(count)
    return [TopicSummary(t, sum(c.values()), _days(c, now.date()))
            for t, c in sorted(counts.items())]


@dataclass(frozen=True)
class ArticleLine:
    id: str
    title: str
    feed_name: str
    published: datetime
    score: float | None = None


@dataclass(frozen=True)
class TopicDetail:
    topic: str
    per_day: list[DayCount]
    top_entities: list[EntityView]
    latest: list[ArticleLine]


def topic_detail(engine: Engine, topic: str, now: datetime | None = None,
                 sample: int = 2000) -> TopicDetail:
    """A topic's last 30 days: hits per day, top entities of its newest ``sample``
    articles, and the latest hits."""
    now = now or datetime.now(UTC)
    since = datetime.combine(now.date() - timedelta(days=DAYS - 1), datetime.min.time(), UTC)
    with unavailable_as_retryable(), engine.connect() as conn:
        day = _day(conn, H.published)
        per_day = {_as_date(d): int(c) for d, c in conn.execute(
            select(day, func.count()).where(H.topic == topic, H.published >= since)
            .group_by(day))}
        newest = (select(H.article_id).where(H.topic == topic, H.published >= since)
                  .order_by(H.published.desc()).limit(sample).subquery())
        top = [EntityView(int(r.id), r.name, r.label, int(r.n)) for r in conn.execute(
            select(E.id, E.name, E.label, func.count().label("n"))
            .select_from(newest.join(tables.article_entities,
                                     AE.article_id == newest.c.article_id)
                         .join(tables.entities, E.id == AE.entity_id))
            .group_by(E.id, E.name, E.label).order_by(func.count().desc(), E.name).limit(15))]
        latest = [ArticleLine(r.id, r.title, r.feed_name, as_utc(r.published) or r.published,
                              float(r.score)) for r in conn.execute(
            select(A.id, A.title, A.feed_name, H.published, H.score)
            .join(tables.articles, A.id == H.article_id).where(H.topic == topic)
            .order_by(H.published.desc()).limit(20))]
    return TopicDetail(topic, _days(per_day, now.date()), top, latest)


@dataclass(frozen=True)
class EntityDetail:
    id: int
    name: str
    label: str
    per_day: list[DayCount]
    co_occurring: list[EntityView]
    latest: list[ArticleLine]


def find_entities(engine: Engine, name: str, limit: int = 20) -> list[EntityView]:
    """Entities whose name is ``name`` (any case), with their mentions in 30 days."""
    with unavailable_as_retryable(), engine.connect() as conn:
        return [EntityView(int(r.id), r.name, r.label, 0) for r in conn.execute(
            select(E.id, E.name, E.label).where(func.lower(E.name) == name.strip().lower())
            .order_by(E.label).limit(limit))]


def entity_detail(engine: Engine, entity_id: int, now: datetime | None = None,
                  sample: int = 1000) -> EntityDetail:
    """An entity: articles naming it per day (30 days), the entities named with it in its
    newest ``sample`` articles, and its latest articles."""
    now = now or datetime.now(UTC)
    since = datetime.combine(now.date() - timedelta(days=DAYS - 1), datetime.min.time(), UTC)
    with unavailable_as_retryable(), engine.connect() as conn:
        row = conn.execute(select(tables.entities).where(E.id == entity_id)).first()
        if row is None:
            raise NotFoundError(f"no entity {entity_id}")
        day = _day(conn, AE.published)
        per_day = {_as_date(d): int(c) for d, c in conn.execute(
            select(day, func.count()).where(AE.entity_id == entity_id, AE.published >= since)
            .group_by(day))}
        newest = (select(AE.article_id).where(AE.entity_id == entity_id)
                  .order_by(AE.published.desc()).limit(sample).subquery())
        other = tables.article_entities.alias("other")
        co = [EntityView(int(r.id), r.name, r.label, int(r.n)) for r in conn.execute(
            select(E.id, E.name, E.label, func.count().label("n"))
            .select_from(newest.join(other, other.c.article_id == newest.c.article_id)
                         .join(tables.entities, E.id == other.c.entity_id))
            .where(other.c.entity_id != entity_id)
            .group_by(E.id, E.name, E.label).order_by(func.count().desc(), E.name).limit(15))]
        latest = [ArticleLine(r.id, r.title, r.feed_name, as_utc(r.published) or r.published)
                  for r in conn.execute(
            select(A.id, A.title, A.feed_name, AE.published)
            .join(tables.articles, A.id == AE.article_id).where(AE.entity_id == entity_id)
            .order_by(AE.published.desc()).limit(20))]
    return EntityDetail(int(row.id), row.name, row.label, _days(per_day, now.date()), co,
                        latest)


# --- Feeds -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedHealth:
    id: str
    name: str
    url: str
    failing: bool
    error_count: int
    last_error: str | None
    last_error_at: datetime | None
    last_success_at: datetime | None
    next_check_at: datetime | None
    disabled_reason: str | None
    items_seen: int
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("last_error_at", "last_success_at", "next_check_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def feeds_health(engine: Engine) -> list[FeedHealth]:
    """Every feed's polling health, failing (and disabled) feeds first.

    Warnings are what the last poll that got a body had to repair (an encoding guessed,
    bytes replaced, a recoverable XML error): ``feeds.last_warning``, one entry each.
    """
    failing = or_(FD.error_count > 0, FD.disabled_reason.is_not(None))
    with unavailable_as_retryable(), engine.connect() as conn:
        rows = conn.execute(select(tables.feeds).order_by(
            failing.desc(), FD.error_count.desc(), FD.id)).all()
    out = []
    for r in rows:
        warnings = [w for w in (r.last_warning or "").split("; ") if w]
        out.append(FeedHealth(
            id=r.id, name=r.name or r.id, url=r.url,
            failing=bool(r.error_count or r.disabled_reason), error_count=int(r.error_count),
            last_error=r.last_error, last_error_at=as_utc(r.last_error_at),
            last_success_at=as_utc(r.last_success_at), next_check_at=as_utc(r.next_check_at),
            disabled_reason=r.disabled_reason, items_seen=int(r.items_seen),
            warnings=warnings))
    return out


# --- Feedback and audit --------------------------------------------------------------------


def article_exists(engine: Engine, article_id: str) -> bool:
    with unavailable_as_retryable(), engine.connect() as conn:
        return conn.execute(select(A.id).where(A.id == article_id)).first() is not None


def record_verdict(engine: Engine, *, who: str, article_id: str, topic: str, verdict: str,
                   note: str = "") -> int:
    """A verdict from the console or the API: its feedback row (`record_feedback`), then
    its audit row (the feedback table is its own trail too); returns the feedback id."""
    feedback_id = record_feedback(engine, article_id=article_id, topic=topic,
                                  verdict=verdict, who=who, note=note)
    with unavailable_as_retryable(), engine.begin() as conn:
        record_audit(conn, who=who, action="feedback", target=f"article:{article_id}",
                     detail={"topic": topic, "verdict": verdict, "feedback_id": feedback_id})
    return feedback_id


def recent_audit(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    log_c = tables.audit_log.c
    with unavailable_as_retryable(), engine.connect() as conn:
        return [{"at": as_utc(r.at), "who": r.who, "action": r.action, "target": r.target,
                 "detail": r.detail} for r in conn.execute(
            select(tables.audit_log).order_by(log_c.id.desc()).limit(limit))]


def distinct_values(engine: Engine) -> dict[str, list[str]]:
    """Choices for the filter forms: feeds, languages, rules and channels seen."""
    with unavailable_as_retryable(), engine.connect() as conn:
        return {
            "feeds": list(conn.execute(select(FD.id).order_by(FD.id)).scalars()),
            "rules": list(conn.execute(select(tables.alert_groups.c.rule).distinct()
                                       .order_by(tables.alert_groups.c.rule)).scalars()),
            "channels": list(conn.execute(select(SND.channel).distinct().limit(50)).scalars()),
        }

