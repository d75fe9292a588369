"""Entities: NER plus the alias table, normalised to one canonical name and counted."""

from __future__ import annotations

import pytest

from consumers.enrich.enrich import Enricher, document_text


def entities(enricher: Enricher, text: str) -> dict[str, tuple[str, int]]:
    analysis = enricher.analyse(document_text("", content=text))
    return {entity.name: (entity.label, entity.count) for entity in analysis.entities}


@pytest.mark.parametrize("alias", [
    "IS", "ISIS", "ISIL", "IS-K", "ISKP", "Daesh", "Islamic State", "the Islamic State",
    "Islamic State Khorasan", "Islamic State Khorasan Province", "ISIS-K", "Isis", "ISWAP",
])
def test_islamic_state_aliases(enricher: Enricher, alias: str) -> None:
    found = entities(enricher, f"Officials said {alias} fighters were behind the raid.")
    assert found.get("Islamic State") == ("ORG", 1)


@pytest.mark.parametrize(("text", "canonical"), [
    ("Envoys met the Taliban in Doha.", "Taliban"),
    ("Envoys met Taliban officials in Doha.", "Taliban"),
    ("Sanctions were imposed by the U.S. on Monday.", "United States"),
    ("Sanctions were imposed by the US on Monday.", "United States"),
    ("Sanctions were imposed by the USA on Monday.", "United States"),
    ("Sanctions were imposed by the United States on Monday.", "United States"),
])
def test_other_aliases(enricher: Enricher, text: str, canonical: str) -> None:
    assert canonical in entities(enricher, text)


def test_every_alias_counts_towards_one_entity(enricher: Enricher) -> None:
    found = entities(enricher, "ISIS, also called ISIL or Daesh, and its branch ISKP "
                               "attacked. The Islamic State denied it.")
    assert found["Islamic State"] == ("ORG", 5)


def test_the_verb_is_in_a_shouted_headline_is_no_entity(enricher: Enricher) -> None:
    assert "Islamic State" not in entities(enricher, "THE WITCH IS DEAD, FANS SAY")
    assert "Islamic State" not in entities(enricher, "Who is to blame? It is unclear.")


def test_pakistani_taliban_is_not_the_taliban(enricher: Enricher) -> None:
    found = entities(enricher, "The Pakistani Taliban attacked a police post.")
    assert "Tehrik-i-Taliban Pakistan" in found
    assert "Taliban" not in found


def test_surname_joins_the_full_name(enricher: Enricher) -> None:
    found = entities(enricher, "Vladimir Putin spoke on Monday. Later Putin left Moscow.")
    assert found["Vladimir Putin"] == ("PERSON", 2)
    assert "Putin" not in found


def test_counts_are_sorted_and_carry_surface_forms(enricher: Enricher) -> None:
    analysis = enricher.analyse(document_text(
        "", content="ISIS, ISIL and Daesh threaten Iraq. Iraq responds."))
    names = [entity.name for entity in analysis.entities]
    assert names[0] == "Islamic State"
    first = analysis.entities[0]
    assert first.count == 3
    assert set(first.texts) == {"ISIS", "ISIL", "Daesh"}
    counts = [entity.count for entity in analysis.entities]
    assert counts == sorted(counts, reverse=True)
