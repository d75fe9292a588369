"""Fault 5 of issue 16: an article with more than 1,024 matches of one rule.

`topics._noisy_or` halved each further match's weight with ``weight / 2**n``; past
n = 1,024 the integer no longer converts to a float and the valid article was
dead-lettered with an OverflowError. The score must stay a bounded number.
"""

from __future__ import annotations

from consumers.enrich.enrich import Enricher, document_text


def test_more_than_1024_matches_of_one_rule_scores_instead_of_overflowing(
        enricher: Enricher) -> None:
    text = "Islamic State attack. " * 1030  # 23 KB, the reproduction
    analysis = enricher.analyse(document_text("Attack", content=text))
    scores = {hit.topic: hit.score for hit in analysis.hits}
    assert 0.0 < scores["is_threat"] <= 1.0
