"""The signs that two articles of one subject report two events: which words are names,
template series, digests. Case tables of examples of their own (none from the labelled
sets), so the rules are shown on text they were not chosen on."""

from __future__ import annotations

import pytest

from consumers.stories.digest import is_digest
from consumers.stories.names import name_terms, plain_terms, template_conflict
from consumers.stories.text import first_words, lead, leads, terms


@pytest.mark.parametrize(("title", "text", "language", "names", "not_names"), [
    # A capital inside a sentence-case title; a sentence's first word only when the
    # next word is capitalised too.
    ("Arlington County health calendar, Aug. 3-9", "", "en",
     {"arlington", "county", "aug"}, {"health", "calendar"}),
    ("Storm floods Valencia", "", "en", {"valencia"}, {"storm", "flood"}),
    # Title Case says nothing by its case; an acronym still does.
    ("Obama Reports For Jury Duty In Chicago, Ends Up Being Dismissed", "", "en",
     set(), {"obama", "jury", "chicago"}),
    ("Afghan Women Ban Makes Taliban Recognition Near Impossible: UN", "", "en",
     {"un"}, {"taliban", "recognition"}),
    # ... but the text's case does; a dateline's dash ends a "sentence".
    ("Obama Reports For Jury Duty", "CHICAGO (AP) — Former President Barack Obama showed "
     "up to a downtown Chicago courthouse.", "en",
     {"chicago", "ap", "barack", "obama"}, {"downtown", "courthouse"}),
    # German capitalises every noun: only enrichment's entities are names.
    ("Bundesanwaltschaft ermittelt gegen Hacker in Berlin", "Die Ermittler in Berlin "
     "prüfen Angriffe.", "de", set(), {"berlin", "ermittler", "hacker"}),
])
def test_names_are_told_by_their_capitals_where_a_sentence_would_not_put_one(
        title: str, text: str, language: str, names: set[str], not_names: set[str]) -> None:
    found = name_terms(title, text, language)
    assert names <= found
    assert not (not_names & found)


def test_enrichments_entities_are_names_in_every_language() -> None:
    found = name_terms("Ermittlungen in Berlin", "", "de", entities=("Berlin",))
    assert found == {"berlin"}


def test_a_word_written_small_is_an_ordinary_word_there() -> None:
    assert plain_terms("Trump carves deeper into Utah monument protections") == {
        "carve", "deeper", "monument", "protection"}


def _conflict(title_a: str, text_a: str, title_b: str, text_b: str) -> bool:
    def side(title: str, text: str) -> tuple[list[str], frozenset[str], dict[str, int]]:
        return (terms(title), name_terms(title, text, "en"),
                dict.fromkeys(terms(f"{title} {text}"), 1))
    a_title, a_names, a_words = side(title_a, text_a)
    b_title, b_names, b_words = side(title_b, text_b)
    return template_conflict(a_title, a_names, a_words, b_title, b_names, b_words)


@pytest.mark.parametrize(("a", "b", "conflict"), [
    # One frame, a different subject in its slot: a series, two events.
    (("Arlington County health calendar, May 3-9", ""),
     ("Montgomery County health calendar, May 3-9", ""), True),
    (("Magnitude 6.1 earthquake strikes off Chile", "Off Chile, the U.S. Geological "
      "Survey said."), ("Magnitude 6.1 earthquake strikes off Japan", ""), True),
    (("Real Madrid beat Barcelona in the Clasico", ""),
     ("Real Madrid beat Sevilla in the Clasico", ""), True),
    # One side names more: the same event.
    (("Magnitude 6.1 earthquake strikes off Chile", ""),
     ("Magnitude 6.1 earthquake strikes off Chile near Antofagasta", ""), False),
    # The other side mentions the "distinguishing" name in its text: not distinguishing.
    (("Earthquake strikes off Chile", "Felt as far as Peru."),
     ("Earthquake strikes off Peru", "The quake, off Chile, was felt in Peru."), False),
    # A different frame (another action): not a template, whatever the names.
    (("Trump to shrink Bears Ears", ""), ("Trump shrinks Grand Staircase", ""), False),
    # Different numbers alone (a death toll that rises) are no conflict.
    (("Death toll in Valencia floods rises to 95", ""),
     ("Death toll in Valencia floods rises to 158", ""), False),
])
def test_a_template_conflict_is_one_frame_with_two_subjects(
        a: tuple[str, str], b: tuple[str, str], conflict: bool) -> None:
    assert _conflict(*a, *b) is conflict
    assert _conflict(*b, *a) is conflict


@pytest.mark.parametrize(("title", "text", "digest"), [
    ("Montag: Apple verschiebt Siri, Intel streicht Stellen",
     "Siri kommt später + Intel streicht Stellen + Neue Regeln für E-Scooter + "
     "Glasfaser-Ausbau stockt", True),
    ("The day's news", "• Fed holds rates • Boeing strike ends • Messi re-signs • "
     "Storm floods Valencia", True),
    ("What happened overnight", "- Fed holds rates\n- Boeing strike ends\n- Messi "
     "re-signs\n- Storm floods Valencia", True),
    # The kicker alone: a briefing title before two items.
    ("Morning briefing: Fed holds rates; Boeing strike ends", "", True),
    ("Donnerstag: Teslas Zahlen, TSMC-Pläne", "", True),
    # Not digests: one subject's roundup, one item after a weekday, prose with dashes.
    ("Titanfall review roundup: critics love the mechs, hate the story", "", False),
    ("Monday: storm hits the coast", "", False),
    ("Obama reports for jury duty", "CHICAGO (AP) — Former President Barack Obama — free "
     "of a job that forced him to move — showed up — as a juror would.", False),
    # Marks between long passages are prose, not a list.
    ("Op-ed", " + ".join(["This is a long sentence of opinion that runs on for well "
                          "over a dozen words before it stops"] * 4), False),
])
def test_a_digest_is_a_list_of_items_or_a_briefing_title(
        title: str, text: str, digest: bool) -> None:
    assert is_digest(title, text) is digest


def test_the_lead_keeps_the_written_text_up_to_its_last_word() -> None:
    text = "One + two, three. Four five six"
    assert lead(text, 3) == "One + two, three"
    assert lead(text, 99) == text
    # Untrusted text: a few words spread over pages are cut, not kept whole.
    hostile = "a " + "+" * 100_000 + " b"
    assert len(lead(hostile, 100)) <= 100 * 20


@pytest.mark.parametrize("text", ["", "One + two, three. Four five six",
                                  " ".join(f"w{i}." for i in range(150))])
def test_leads_in_one_pass_are_the_lead_and_first_words(text: str) -> None:
    assert leads(text, 100, 40) == (lead(text, 100), first_words(text, 100), lead(text, 40))
