"""Fixtures of the alert tests: a migrated database, seed rows, a real HTTP receiver and a
real SMTP server (aiosmtpd) on 127.0.0.1, and rules files written to tmp_path."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Boolean, DateTime, Engine, Float, Integer, Table, delete, func, select
from sqlalchemy.types import JSON

from consumers.alert.compile import CompiledRules, compile_rules
from consumers.alert.ledger import open_groups
from consumers.alert.rules import parse_rules
from schemas import tables
from schemas.ids import article_id
from tests.support.webhook import WebhookReceiver

NOW = datetime(2021, 10, 21, 12, 0, tzinfo=UTC)

SEED_TITLE = ("After Issuing Warning About the Threat Posed by The Islamic State, Russia has "
              "Invited the Afghan Taliban to Hold Talks")
SEED_EVIDENCE = {
    "is_threat": [("Islamic State (IS) fighters",
                   "Russia will host the Taliban for talks in Moscow, seeking to assert its "
                   "influence in Central Asia and press for action against Islamic State (IS) "
                   "fighters it claims have gathered in perennially volatile Afghanistan.")],
    "drug_trafficking": [("drug trafficking",
                          "Lavrov also warned that drug trafficking from Afghanistan had reached "
                          "unprecedented levels, a concern that the Kremlin has since echoed "
                          "during meetings with other Central Asian countries and China.")],
    "recognition": [("formal recognition of the regime",
                     "Despite reaching out to the Taliban, Russian officials, including Putin, "
                     "have made it clear in recent weeks that Moscow is not on the verge of "
                     "formal recognition of the regime.")],
}
SEED_ENTITIES = [("Taliban", "ORG", 9), ("Afghanistan", "GPE", 7), ("Russia", "GPE", 6),
                 ("Islamic State", "ORG", 3), ("Moscow", "GPE", 5)]


def _filler(table: Table, column: Any) -> Any:
    kind = column.type
    if isinstance(kind, DateTime):
        return NOW
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer | Float):
        return 0
    if isinstance(kind, JSON):
        return []
    return ""


def complete(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """``row`` plus a plain value for every required column the test did not name, so these
    helpers survive columns other stages add."""
    out = dict(row)
    for column in table.columns:
        if column.name in out or column.nullable or (column.primary_key and column.autoincrement):
            continue
        if column.default is not None or column.server_default is not None:
            continue
        out[column.name] = _filler(table, column)
    return out


_counter = iter(range(1, 10**9))


def insert_article(engine: Engine, *, title: str = "", published: datetime = NOW,
                   feed_id: str = "demo", feed_name: str = "Demo feed",
                   topics: Mapping[str, float] | None = None,
                   evidence: Mapping[str, Sequence[tuple[str, str]]] | None = None,
                   entities: Sequence[tuple[str, str, int]] = (), tags: Sequence[str] = (),
                   language: str | None = "en", url: str | None = None) -> str:
    """One stored article with its topic hits and entities, as the store writes them."""
    n = next(_counter)
    url = url or f"https://news.example.org/{n}"
    aid = article_id(url)
    evidence = evidence or {}
    with engine.begin() as conn:
        conn.execute(tables.articles.insert(), complete(tables.articles, {
            "id": aid, "url": url, "title": title or f"Story {n}", "summary": "",
            "content": "", "published": published, "fetched_at": published,
            "feed_id": feed_id, "feed_name": feed_name, "language": language,
            "authors": [], "tags": list(tags), "stored_at": published,
        }))
        for name, label, count in entities:
            found = conn.execute(select(tables.entities.c.id).where(
                tables.entities.c.name == name, tables.entities.c.label == label)).scalar()
            if found is None:
                found = conn.execute(tables.entities.insert().values(
                    name=name, label=label)).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(tables.article_entities.insert().values(
                article_id=aid, entity_id=found, count=count, published=published))
        for topic, score in (topics or {}).items():
            spans = [{"phrase": p, "start": s.find(p), "end": s.find(p) + len(p),
                      "sentence": s, "rule": p} for p, s in evidence.get(topic, [])]
            conn.execute(tables.topic_hits.insert().values(
                article_id=aid, topic=topic, score=score, evidence=spans,
                topics_version="v1", published=published, created_at=published))
    return aid


def insert_seed(engine: Engine, *, title: str = SEED_TITLE, published: datetime = NOW) -> str:
    """The seed article with hits for all three default topics, with evidence."""
    return insert_article(
        engine, title=title, published=published, feed_id="seed", feed_name="Seed source",
        url="https://www.example-news.org/russia-taliban-talks",
        topics={"is_threat": 0.93, "drug_trafficking": 0.71, "recognition": 0.82},
        evidence=SEED_EVIDENCE, entities=SEED_ENTITIES,
    )


def alert_article_ids(engine: Engine) -> list[list[str]]:
    """The article ids of every alert stored, alert by alert in id order (each sorted)."""
    with engine.connect() as conn:
        payloads = conn.execute(select(tables.alerts.c.payload)
                                .order_by(tables.alerts.c.id)).scalars().all()
    return [sorted(a["id"] for a in payload["articles"]) for payload in payloads]


def ledger_pairs(engine: Engine) -> list[tuple[str, str]]:
    """Every (rule, article id) the ledger holds, held or sent (a pair twice if twice)."""
    with engine.connect() as conn:
        rows = conn.execute(select(tables.alert_ledger.c.article_id,
                                   tables.alert_ledger.c.matches)).all()
    return [(rule, aid) for aid, matches in rows for rules in matches.values()
            for rule in rules]


def held_pairs(engine: Engine) -> set[tuple[str, str]]:
    """(rule, article id) a throttle holds or a digest waits with, rebuilt from SQL as a
    restarted evaluator does (`ledger.open_groups`)."""
    with engine.connect() as conn:
        names = {name: None for name in conn.execute(
            select(tables.alert_groups.c.rule).distinct()).scalars()}
        states = open_groups(conn, names)
    return {(state.rule, ref.article_id) for state in states.values() for ref in state.held}


def alerted_pairs(engine: Engine) -> list[tuple[str, str]]:
    """(rule, article id) of every alert's articles (``alerts.article_ids``)."""
    with engine.connect() as conn:
        rows = conn.execute(select(tables.alerts.c.rule, tables.alerts.c.article_ids)
                            .order_by(tables.alerts.c.id)).all()
    return [(rule, aid) for rule, ids in rows for aid in ids or []]


def compiled_rules(engine: Engine, text: str) -> CompiledRules:
    """The rules file ``text`` compiled for ``engine``'s database (a rule set of its own:
    its caches start empty)."""
    return compile_rules(parse_rules(text).rules, engine.dialect.name)


def forget_decisions(engine: Engine, *, hits_evaluated: bool = False) -> None:
    """Delete every alert decision and the cursor, and mark all hits ``hits_evaluated``:
    a replay of the same hits by another evaluator starts from here."""
    with engine.begin() as conn:
        for table in (tables.alert_sends, tables.alert_ledger, tables.alerts,
                      tables.alert_groups, tables.alert_state):
            conn.execute(delete(table))
        conn.execute(tables.topic_hits.update().values(evaluated=hits_evaluated))


def count_rows(engine: Engine, table: Table, **where: Any) -> int:
    """Rows of ``table`` whose columns equal ``where``."""
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def write_rules(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rules_for(channels_yaml: str, channel_names: Sequence[str], *, throttle: str = "0s",
              extra: str = "", delivery: str = "max_attempts: 5\n  backoff: 0.01s\n"
              "  max_backoff: 0.05s\n  deadline: 1h") -> str:
    """One rule per default topic, all sent to ``channel_names``."""
    rules = "\n".join(
        f"""  - name: {name}
    description: {desc}
    match:
      topics: [{topic}]
    group_by: [rule, topic]
    throttle: {throttle}
    channels: [{", ".join(channel_names)}]
{extra}"""
        for name, topic, desc in (
            ("islamic-state-threat", "is_threat", "Islamic State threat"),
            ("drug-trafficking", "drug_trafficking", "Drug trafficking"),
            ("regime-recognition", "recognition", "Recognition of a regime"),
        )
    )
    return (f"version: 1\nchannels:\n{channels_yaml}\ndelivery:\n  {delivery}\n"
            f"rules:\n{rules}\n")


# --- a real HTTP receiver --------------------------------------------------------------

@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)
