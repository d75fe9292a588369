"""Word forms: a phrase written once matches its inflections and spellings."""

from __future__ import annotations

import pytest

from consumers.enrich.forms import phrase_forms, word_forms


@pytest.mark.parametrize(("word", "forms"), [
    ("recognise", {"recognised", "recognises", "recognising", "recognize", "recognized"}),
    ("traffic", {"trafficked", "trafficking", "traffics"}),
    ("smuggle", {"smuggled", "smuggling", "smuggles"}),
    ("plot", {"plots", "plotted", "plotting"}),
    ("seizure", {"seizures"}),
    ("bomb", {"bombs", "bombed", "bombing"}),
    ("supply", {"supplies", "supplied"}),
])
def test_inflections(word: str, forms: set[str]) -> None:
    assert forms <= word_forms(word)


@pytest.mark.parametrize(("word", "inflect", "irregular"), [
    ("longshoreman", "nouns", {"longshoremen"}),
    ("child", "all", {"children"}),
    ("crisis", "nouns", {"crises"}),
    ("fight", "all", {"fought", "fights", "fighting"}),
    ("seize", "all", {"seized", "seizing"}),
    ("catch", "all", {"caught"}),
])
def test_irregular_forms_come_from_the_lexicon(word: str, inflect: str,
                                               irregular: set[str]) -> None:
    assert irregular <= word_forms(word, inflect)  # type: ignore[arg-type]


def test_a_phrase_is_inflected_as_written_not_widened_to_its_lemma() -> None:
    assert "traffic" not in word_forms("trafficking")
    assert "fight" not in word_forms("fought")
    assert "longshoremen" in phrase_forms("longshoreman")
    assert "dock longshoremen" in phrase_forms("dock longshoreman")


def test_nouns_only_get_plurals() -> None:
    assert word_forms("state", "nouns") == {"state", "states"}


def test_none_keeps_the_word() -> None:
    assert word_forms("Golden", "none") == {"golden"}


@pytest.mark.parametrize("word", ["of", "the", "us", "traffickers", "recognition"])
def test_no_nonsense_forms(word: str) -> None:
    forms = word_forms(word)
    assert not any(form.endswith(("ed", "ing")) and form != word for form in forms)


def test_phrases_get_hyphen_and_space_variants() -> None:
    forms = phrase_forms("drug trafficking")
    assert {"drug trafficking", "drug-trafficking", "drugs trafficking"} <= forms
    assert "in-recognition-of" not in phrase_forms("in recognition of")
