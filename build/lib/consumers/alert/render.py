"""Alerts as people read them: a subject line, plain text, and HTML.

Every value that comes from a feed (titles, sources, sentences, URLs) is escaped in the
HTML, and only http(s) URLs become links, so a title such as ``<script>`` arrives as
text. Used by the email, Apprise and terminal channels.
"""

from __future__ import annotations

import html
from datetime import datetime

from schemas.alert_payload import AlertPayload, ArticleItem, EvidenceItem

MAX_SUBJECT = 200


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _group(alert: AlertPayload) -> str:
    return ", ".join(f"{k}={v}" for k, v in alert.group.items() if k != "rule")


def subject(alert: AlertPayload, prefix: str = "[newswatch]") -> str:
    """One line, no CR/LF (so it cannot inject mail headers)."""
    if alert.kind == "digest":
        text = f"{alert.rule.name}: digest of {alert.articles_total} article(s)"
    elif alert.articles_total == 1 and alert.articles:
        text = f"{alert.rule.name}: {alert.articles[0].title}"
    else:
        text = f"{alert.rule.name}: {alert.articles_total} article(s)"
        if _group(alert):
            text += f" ({_group(alert)})"
    line = _one_line(f"{prefix} {text}" if prefix else text)
    return line if len(line) <= MAX_SUBJECT else line[:MAX_SUBJECT - 1] + "…"


def render_text(alert: AlertPayload) -> str:
    """The alert as plain text: why it fired, then each article with its evidence."""
    lines = [f"Rule: {alert.rule.name}"]
    if alert.rule.description:
        lines.append(_one_line(alert.rule.description))
    if _group(alert):
        lines.append(f"Group: {_group(alert)}")
    lines.append(f"Why: {_one_line(alert.reason)}")
    lines.append(f"Alert: #{alert.alert_id} at {_when(alert.created_at)}")
    for article in alert.articles:
        lines.append("")
        lines.append(f"* {_one_line(article.title) or '(no title)'}")
        lines.append(f"  {article.source} | {_when(article.published)}")
        if article.url:
            lines.append(f"  {article.url}")
        for topic in article.topics:
            lines.append(f"  topic {topic.topic} (score {topic.score:.2f})")
            for item in topic.evidence:
                lines.append(f"    - \"{_one_line(item.sentence)}\" [{_one_line(item.phrase)}]")
    hidden = alert.articles_total - len(alert.articles)
    if hidden > 0:
        lines.append(f"\n... and {hidden} more article(s)")
    return "\n".join(lines) + "\n"


def _href(url: str | None) -> str | None:
    if url and url.lower().startswith(("http://", "https://")):
        return html.escape(url, quote=True)
    return None


def _sentence_html(item: EvidenceItem) -> str:
    """The sentence escaped, with the matched phrase marked (both escaped)."""
    sentence, phrase = _one_line(item.sentence), _one_line(item.phrase)
    at = sentence.lower().find(phrase.lower()) if phrase else -1
    if at < 0:
        return html.escape(sentence)
    return (html.escape(sentence[:at]) + "<mark>" + html.escape(sentence[at:at + len(phrase)])
            + "</mark>" + html.escape(sentence[at + len(phrase):]))


def _article_html(article: ArticleItem) -> str:
    title = html.escape(_one_line(article.title) or "(no title)")
    href = _href(article.url)
    heading = f'<a href="{href}">{title}</a>' if href else title
    parts = [
        f"<h3 style=\"margin:16px 0 4px\">{heading}</h3>",
        f"<div style=\"color:#555\">{html.escape(article.source)} &middot; "
        f"{html.escape(_when(article.published))}</div>",
    ]
    if article.url and not href:
        parts.append(f"<div>{html.escape(article.url)}</div>")
    for topic in article.topics:
        parts.append(f"<p style=\"margin:8px 0 2px\"><b>{html.escape(topic.topic)}</b> "
                     f"(score {topic.score:.2f})</p>")
        if topic.evidence:
            items = "".join(f"<li>{_sentence_html(item)}</li>" for item in topic.evidence)
            parts.append(f"<ul style=\"margin:0\">{items}</ul>")
    return "\n".join(parts)


def render_html(alert: AlertPayload) -> str:
    """The alert as a small HTML document; every feed-supplied value is escaped."""
    group = _group(alert)
    head = [
        f"<h2>{html.escape(alert.rule.name)}</h2>",
        f"<p>{html.escape(alert.rule.description)}</p>" if alert.rule.description else "",
        f"<p><b>Group:</b> {html.escape(group)}</p>" if group else "",
        f"<p><b>Why:</b> {html.escape(_one_line(alert.reason))}</p>",
    ]
    body = "\n".join([*(h for h in head if h), *(_article_html(a) for a in alert.articles)])
    hidden = alert.articles_total - len(alert.articles)
    if hidden > 0:
        body += f"\n<p>... and {hidden} more article(s)</p>"
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>"
            f"<body style=\"font-family:sans-serif\">\n{body}\n</body></html>\n")
