"""Word families that say what kind of story an article is (its frame), for the relevance
layer: a seizure or a trial is told with police, ports and prosecutors; a review or an
obituary that names a drug lord with films, actors and seasons; a recognition of a state
with embassies and envoys; a "recognition" of something else with awards, vaccines and
genocides. With a few dozen positives per topic the model cannot learn each of these words
on its own; counted as families, one weight covers them all and carries over to words that
are rare in the labelled sets.

A family is a list of stems: a word belongs when it starts with one ("seize" covers
"seized" and "seizes", "seizur" "seizure"); a stem of four letters or fewer is a whole
word, alone or with a plural "s" ("port" is not "Portugal", "star" not "start"). Stems are
matched on lower-cased words of the title, the lead and the evidence sentences. The
families are English, as are the default topics; they are stored in the model file
(`FeatureSpec.frames`), so a model always reads the families it was trained with.
"""

from __future__ import annotations

import re

DEFAULT_FRAMES: dict[str, tuple[str, ...]] = {
    # Who acts against the illegal trade, and what they do.
    "enforcement": (
        "seize", "seizur", "smuggl", "traffick", "cartel", "kingpin", "extradit", "indict",
        "shipment", "tonne", "kilo", "kilogram", "port", "customs", "navy", "coastguard",
        "police", "prosecut", "arrest", "gang", "syndicate", "launder", "intercept",
        "raid", "raided", "sentenc", "convict", "jail", "jailed", "prison", "plead",
        "charg", "eradicat", "cultivat", "poppy", "farmer",
    ),
    # Fiction, culture and lives told: a review, a show, an obituary.
    "culture": (
        "film", "movie", "series", "netflix", "review", "actor", "actress", "stars",
        "starring", "dies", "died", "obituar", "novel", "book", "season", "episode",
        "character", "portray", "museum", "restaurant", "tourist", "documentar", "album",
        "song", "fans", "zoo", "wildlife", "comedy", "drama",
    ),
    # Health, medicine, sport and the law on users.
    "health_policy": (
        "addict", "overdos", "treatment", "patient", "health", "clinic", "doctor",
        "legalis", "legaliz", "decriminal", "recriminal", "prescri", "medic", "pharma",
        "doping", "athlete", "tested", "harm", "naloxone", "recreational", "dispensar",
        "opioid", "therapy",
    ),
    # The vocabulary of states recognising states and governments.
    "diplomacy": (
        "embass", "ambassador", "envoy", "diplomat", "sovereign", "statehood",
        "independen", "credential", "taipei", "beijing", "breakaway", "separatist",
        "annex", "foreign", "assembly", "legitima", "regime", "junta", "taliban",
        "palestin", "kosovo", "somaliland", "seat",
    ),
    # Ties mended between states that already have them (restored, resumed, thawed):
    # TRAIN.md's "ordinary agreements between states that already recognise each other".
    # The polities whose recognition is in question (a regime, a junta, Taiwan, Kosovo)
    # are in "diplomacy" above; the model weighs the two together.
    "mended_ties": (
        "restor", "resum", "mend", "mended", "rekindl", "thaw", "repair", "reconcil",
        "rapprochement", "upgrad", "reopen",
    ),
    # Looking back: an anniversary, a memorial, the dead remembered. A story that marks
    # ten years since a massacre names the attackers and the killing as a report of the
    # attack does, in its headline too; what it adds is these words (sixth session). A
    # headline with one of them does not give the headline floor (`retrospective`).
    "retrospective": (
        "anniversar", "commemorat", "memorial", "remember", "remembranc", "mourn",
        "tribute", "mark", "marking",
    ),
    # What else is "recognised": wrongs, people, awards, rights, technology.
    "other_recognition": (
        "genocide", "massacre", "apolog", "vaccin", "jab", "award", "prize", "honour",
        "honor", "marriage", "gender", "facial", "face", "technolog", "software",
        "heritage", "unesco", "indigenous", "famine", "holiday", "union", "right",
    ),
}


def frames_of(word: str, frames: dict[str, tuple[str, ...]]) -> tuple[tuple[str, str], ...]:
    """The (frame, stem) pairs a lower-cased word belongs to."""
    found = []
    for name, stems in frames.items():
        for stem in stems:
            if (word == stem or word == stem + "s") if len(stem) <= 4 else word.startswith(stem):
                found.append((name, stem))
    return tuple(found)


RETROSPECTIVE = "retrospective"


def retrospective(headline: str, frames: dict[str, tuple[str, ...]]) -> bool:
    """Whether a headline looks back (a word of the ``retrospective`` family of
    ``frames``; a model file without that family: never)."""
    stems = frames.get(RETROSPECTIVE)
    if not stems:
        return False
    family = {RETROSPECTIVE: stems}
    return any(frames_of(word, family) for word in re.findall(r"\w+", headline.lower()))
