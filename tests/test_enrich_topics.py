"""The shipped topic definitions against tables of positive and hard-negative sentences.

Each sentence is scored as a headline. Positives must reach the topic's threshold,
negatives must not; the negatives are the near misses a keyword list would get wrong.
"""

from __future__ import annotations

from typing import Any

import pytest

from consumers.enrich.enrich import Enricher, document_text
from newswatch.cli.enrich import Item, evaluate
from tests.enrich_fixtures import SEED_ARTICLE, hits, labelled

IS_THREAT_POSITIVE = [
    "Islamic State claims responsibility for Kerman bombings that killed 84",
    "ISIS fighters ambush Syrian army convoy in desert",
    "Iraq executes 11 men convicted of Islamic State membership",
    "Daesh cell dismantled in Morocco, interior ministry says",
    "US strike kills senior ISIL commander in Syria",
    "IS-K suicide bomber hits mosque in Kabul",
    "Teenager charged with plotting ISIS-inspired attack on concert",
    "ISWAP fighters kill 30 in Borno state",
    "Mozambique insurgents linked to Islamic State seize port town",
    "Europol warns of rising Islamic State propaganda online",
    "The Islamic State is regrouping in the Sahel, UN experts warn",
    "Why IS is so hard to beat in Mozambique",
    "Isis claims Manchester Arena bombing",
    "Islamic State Khorasan Province gunmen storm concert hall",
    # the group's long name carries an "of" that the state-name exclusion must not take
    "Car bomb kills 20 in Baghdad as the Islamic State of Iraq and the Levant claims it",
]
IS_THREAT_NEGATIVE = [
    "THE ECONOMY IS BOOMING, SAYS PRESIDENT",
    "GOP Is Sticking 'With Trump' Despite Election Day Rout",
    "Hamas militants attack Israeli border town",
    "Boko Haram kidnaps 100 students in Nigeria",
    "Taliban fighters clash with Pakistani forces at border",
    "Pakistani Taliban claim suicide attack on police station",
    "Mexican cartels should be treated like ISIS, senator says after kidnapping",
    "Pakistan's founders wanted an Islamic state, historian says",
    "Qatar Islamic Bank posts record profit as Islamic finance grows",
    "State of emergency declared after al-Shabab attack on hotel",
    "Temple of Isis reopens to visitors in Egypt",
    "al-Qaeda affiliate claims attack on army base in Mali",
]
DRUG_POSITIVE = [
    "Police seize 2 tonnes of cocaine hidden in banana shipment at Antwerp",
    "Mexican cartel boss extradited to the United States",
    "Fentanyl smuggling ring busted in Arizona",
    "Coast guard intercepts narco-sub carrying cocaine off Colombia",
    "Heroin worth $50m seized at Karachi port",
    "Taliban ban on opium poppy cultivation cuts production by 95%",
    "Captagon trade is a lifeline for Syria's economy",
    "County lines gang jailed for selling crack in Devon",
    "Meth lab found in rural farmhouse, two arrested",
    "Drug trafficker sentenced to 20 years in Florida",
    "Ecuador's ports have become a hub for cocaine smuggling to Europe",
    "Sinaloa cartel leader captured in Culiacan",
    "Police find cannabis factory in Birmingham house",
    "Seizures of fentanyl at the border doubled last year",
    "Police shut down darknet market that sold heroin and cocaine to thousands",
]
DRUG_NEGATIVE = [
    "FDA approves new weight-loss drug",
    "Medicare to negotiate lower prescription drug prices for 10 medicines",
    "Athlete banned for four years after failing drug test",
    "Germany's Federal Cartel Office fines sugar producers",
    "OPEC+ cartel agrees new output cuts",
    "Human trafficking ring busted in Spain, 20 women freed",
    "Germany legalises cannabis for recreational use from April",
    "Overdose deaths fell last year for the first time in years",
    "Customs officers seize ivory and rhino horn at airport",
    "Pfizer expands production of its cancer drug in Ireland",
    "Musician admits using cocaine before crash",
    "Drug shortages hit hospitals as supply chains falter",
    "Court rules police search for drugs breached Fourth Amendment ban on searches and "
    "seizures",
    "Coca-Cola's market share grows in Mexico",
]
RECOGNITION_POSITIVE = [
    "Armenia formally recognises the State of Palestine",
    "Somaliland seeks international recognition as an independent state",
    "Nauru switches diplomatic recognition from Taiwan to China",
    "US will not recognise the Taliban until women's rights are restored",
    "China becomes first country to accept Taliban ambassador's credentials",
    "Kosovo says Israel will recognize its independence",
    "Taliban push for UN seat as world withholds recognition",
    "Solomon Islands cuts ties with Taiwan, establishes diplomatic relations with Beijing",
    "Which countries recognise Palestine as a state?",
    "Russia becomes first country to recognise Taliban government",
    "US recognises Guaido as Venezuela's interim president",
]
RECOGNITION_NEGATIVE = [
    "Police facial recognition cameras to be rolled out in London",
    "Nurse recognised in King's Birthday Honours list",
    "Biden formally recognises Armenian genocide",
    "Germany recognises colonial-era genocide in Namibia",
    "Study finds dogs recognise their owners' voices",
    "Apple adds gesture recognition to Vision Pro headset",
    "Australia votes on recognising Indigenous people in constitution",
    "Company wins award in recognition of its sustainability work in Kenya",
    "Thailand's new law recognises same-sex marriage",
    "France and Germany recognise the need for more defence spending",
    "India recognises China's role in regional stability, minister says",
    "Saudi Arabia and Iran agree to restore diplomatic relations",
    "Afghanistan women's team representing a country that doesn't recognise them",
    "Spain's Sanchez recognises defeat in regional elections",
    "UK recognises China as 'epoch-defining challenge'",
    "Microsoft's assistant can now recognise your voice",
    "Lisbon recognised as Europe's leading city-break destination",
    "Lawmakers urged to recognise the Nakba in a parliamentary motion",
    "EU recognises Indian-made vaccine for travellers from Brazil",
    "Minister says Japan must recognise the realities of an ageing society",
]


def _cases(topic: str, positive: list[str], negative: list[str]) -> list[Any]:
    return ([pytest.param(topic, text, True, id=f"{topic}+{i}")
             for i, text in enumerate(positive)]
            + [pytest.param(topic, text, False, id=f"{topic}-{i}")
               for i, text in enumerate(negative)])


@pytest.mark.parametrize(
    ("topic", "headline", "expected"),
    _cases("is_threat", IS_THREAT_POSITIVE, IS_THREAT_NEGATIVE)
    + _cases("drug_trafficking", DRUG_POSITIVE, DRUG_NEGATIVE)
    + _cases("recognition", RECOGNITION_POSITIVE, RECOGNITION_NEGATIVE),
)
def test_headline(enricher: Enricher, topic: str, headline: str, expected: bool) -> None:
    assert (topic in hits(enricher, headline)) is expected


def test_seed_article_has_all_three_topics_with_evidence(enricher: Enricher) -> None:
    text = SEED_ARTICLE.read_text(encoding="utf-8")
    document = document_text("", content=text)
    analysis = enricher.analyse(document)
    found = {hit.topic: hit for hit in analysis.hits}
    assert set(found) == {"is_threat", "drug_trafficking", "recognition"}
    for hit in found.values():
        assert 0.0 < hit.score <= 1.0
        assert hit.evidence
        for span in hit.evidence:
            assert document.text[span.start:span.end] == span.phrase
            assert span.phrase in span.sentence
            assert span.sentence in document.text
            assert span.rule
    assert any("drug trafficking" in span.sentence for span in found["drug_trafficking"].evidence)
    assert any("recognition of the regime" in span.sentence
               for span in found["recognition"].evidence)


def test_evidence_in_the_title_weighs_more(enricher: Enricher) -> None:
    sentence = "Police seized heroin in a raid"
    as_title = enricher.analyse(document_text(sentence, content="Nothing else happened."))
    in_body = enricher.analyse(document_text("A quiet week", content=sentence + "."))
    assert as_title.scores["drug_trafficking"] > in_body.scores["drug_trafficking"] > 0


def test_repeated_phrase_adds_less_than_independent_evidence(enricher: Enricher) -> None:
    once = enricher.analyse(document_text("", content="A drug lord was arrested."))
    twice = enricher.analyse(document_text(
        "", content="A drug lord was arrested. Another drug lord fled."))
    varied = enricher.analyse(document_text(
        "", content="A drug lord was arrested. Police seized two tonnes of cocaine."))
    assert once.scores["drug_trafficking"] < twice.scores["drug_trafficking"]
    assert twice.scores["drug_trafficking"] < varied.scores["drug_trafficking"]


def test_a_comparison_is_not_an_actor(enricher: Enricher) -> None:
    analysis = enricher.analyse(document_text(
        "Cartels should be dealt with like ISIS after kidnapping, Barr says"))
    assert analysis.scores["is_threat"] < 0.5


@pytest.mark.parametrize("name", ["articles.jsonl", "extra.jsonl"])
def test_labelled_sets_reach_the_target_f1(enricher: Enricher, name: str) -> None:
    items = [Item(id=r["id"], title=r["title"], text=r["text"], labels=frozenset(r["labels"]))
             for r in labelled(name)]
    results = evaluate(enricher, items)
    assert {topic: round(result.f1, 3) for topic, result in results.items()
            if result.f1 < 0.9} == {}


# Recognition told without the word: UN membership and seats, who speaks for a state
# abroad, a bloc's seats and summits. Headlines of our own on events in no labelled set;
# each must give the named rule's evidence (the relevance layer then judges the article).
RECOGNITION_EVIDENCE = [
    ("General Assembly admits Montenegro as the 192nd member of the United Nations",
     "un_membership"),
    ("East Timor joins the United Nations after years of occupation", "un_membership"),
    ("Credentials committee to rule on rival claims to Libya's seat", "un_membership"),
    ("Vatican keeps observer status as Palestine seeks more rights", "un_membership"),
    ("Guinea's junta names a new UN ambassador after the coup", "envoys_and_embassies"),
    ("Kazakhstan hands over the Afghan embassy in Astana to Taliban diplomats",
     "envoys_and_embassies"),
    ("Taliban envoy presents credentials in Tashkent", "envoys_accredited"),
    ("Pakistan and the Taliban government exchange ambassadors", "envoys_and_embassies"),
    ("ECOWAS suspends Guinea after soldiers seize power", "bloc_seat"),
    ("Commonwealth readmits Fiji after elections end military rule", "bloc_seat"),
    ("ASEAN bars Myanmar's military leader from its summit again", "bloc_seat"),
]
# The same words where no state's recognition is in question: no evidence of the rule.
RECOGNITION_NO_EVIDENCE = [
    ("Ireland wins a seat on the Security Council in a close vote", "un_membership"),
    ("UN suspends Russia from the Human Rights Council", "bloc_seat"),
    ("Football club suspends its captain for two matches", "bloc_seat"),
    ("Embassy staff hand over aid to flood victims in the capital", "envoys_and_embassies"),
]


@pytest.mark.parametrize(("headline", "rule"), RECOGNITION_EVIDENCE)
def test_recognition_without_the_word_gives_evidence(
    enricher: Enricher, headline: str, rule: str
) -> None:
    assert rule in _recognition_rules(enricher, headline)


@pytest.mark.parametrize(("headline", "rule"), RECOGNITION_NO_EVIDENCE)
def test_seat_and_envoy_words_without_a_polity_give_no_evidence(
    enricher: Enricher, headline: str, rule: str
) -> None:
    assert rule not in _recognition_rules(enricher, headline)


# Ties, credentials, envoys and memberships count as strong evidence only beside a polity
# whose recognition is contested (TRAIN.md: ordinary agreements between states that already
# recognise each other are not recognition). Headlines of our own, in no labelled set.
CONTESTED_EVIDENCE = [
    ("Guatemala says it will never cut diplomatic ties with Taiwan", "diplomatic_ties"),
    ("Somaliland and Kenya to establish diplomatic relations, minister says",
     "diplomatic_ties"),
    ("Bahrain and Israel establish full diplomatic relations", "diplomatic_ties"),
    ("Morocco agrees to normalise relations with Israel", "normalisation"),
    ("Spain backs Morocco's autonomy plan for Western Sahara", "sovereignty_claim"),
    ("Uzbekistan accepts the credentials of a Taliban envoy", "envoys_accredited"),
    ("Myanmar junta's envoy presents credentials in Moscow", "envoys_accredited"),
    ("Kosovo applies for membership of Interpol", "contested_membership"),
    ("Abkhazia seeks admission to a Russian-led bloc", "contested_membership"),
    ("Pakistan and the Taliban government exchange ambassadors", "envoys_and_embassies"),
    ("Taliban diplomats take over the Afghan mission in Oslo", "envoys_and_embassies"),
]
# The same words between states that recognise each other: only a candidate (weight 0.05)
# the relevance model judges, never the strong rule.
ORDINARY_STATES = [
    ("Chile and Peru cut diplomatic ties after border row", "diplomatic_ties",
     "ties_between_states"),
    ("Japan's new ambassador presents credentials in Canberra", "envoys_accredited",
     "envoys_of_states"),
    ("Norway backs Finland's membership bid at the alliance summit", "contested_membership",
     None),
    ("Brazil and Paraguay upgrade ties and exchange ambassadors", "envoys_and_embassies",
     "envoys_of_states"),
]


# Ties cut with Israel are a protest by a state that goes on recognising it (TRAIN.md counts
# them out): not the strong ties rule, unlike ties cut with Taipei (above); at most a
# candidate the model judges (an ambassador expelled).
ISRAEL_RUPTURES = [
    "Mauritania breaks off diplomatic relations with Israel",
    "Bolivia severs diplomatic ties with Israel over the war in Gaza",
    "Turkey downgrades diplomatic relations with Israel and expels its ambassador",
]


@pytest.mark.parametrize("headline", ISRAEL_RUPTURES)
def test_ties_cut_with_israel_are_not_recognition_evidence(
    enricher: Enricher, headline: str
) -> None:
    assert "diplomatic_ties" not in _recognition_rules(enricher, headline)
    [analysis] = enricher.analyse_many([document_text(headline)])
    assert analysis.scores.get("recognition", 0.0) < 0.2


@pytest.mark.parametrize(("headline", "rule"), CONTESTED_EVIDENCE)
def test_ties_and_envoys_of_a_contested_polity_are_strong_evidence(
    enricher: Enricher, headline: str, rule: str
) -> None:
    assert rule in _recognition_rules(enricher, headline)


@pytest.mark.parametrize(("headline", "strong", "candidate"), ORDINARY_STATES)
def test_ties_and_envoys_between_ordinary_states_are_candidates_only(
    enricher: Enricher, headline: str, strong: str, candidate: str | None
) -> None:
    rules = _recognition_rules(enricher, headline)
    assert strong not in rules
    if candidate is not None:
        assert candidate in rules
    [analysis] = enricher.analyse_many([document_text(headline)])
    assert analysis.scores.get("recognition", 0.0) < 0.2


def _recognition_rules(enricher: Enricher, headline: str) -> set[str]:
    """The rules of recognition's candidate evidence in one headline."""
    from consumers.enrich.relevance import FeatureSpec

    [analysis] = enricher.analyse_many([document_text(headline)], features=FeatureSpec())
    candidate = analysis.candidates.get("recognition")
    return {span.rule.split(":")[0] for span in candidate.evidence} if candidate else set()


def _rules(enricher: Enricher, topic: str, text: str) -> set[str]:
    """The rules of ``topic``'s candidate evidence in one text."""
    from consumers.enrich.relevance import FeatureSpec

    [analysis] = enricher.analyse_many([document_text(text)], features=FeatureSpec())
    candidate = analysis.candidates.get(topic)
    return {span.rule.split(":")[0] for span in candidate.evidence} if candidate else set()


# First ties with a contested polity are normalisation; ties normalised again after a row
# between states that recognise each other (Turkey and Israel after the flotilla raid) are a
# restoration, which TRAIN.md counts out (eighth session).
FIRST_NORMALISATIONS = [
    "Sudan agrees to normalise relations with Israel",
    "Serbia and Kosovo agree to an EU plan to normalise ties",
]
RENEWED_NORMALISATIONS = [
    "Relations between Turkey and Israel were tense since the 2010 Gaza flotilla raid but "
    "ended last week when Turkey agreed to normalize ties in a diplomatic treaty.",
    "Turkey and Israel restore ambassadors and agree to normalise relations after six years",
    "Israel and Turkey agree to normalise ties again after a six-year rift",
]


@pytest.mark.parametrize("text", FIRST_NORMALISATIONS)
def test_first_normalisation_is_recognition_evidence(enricher: Enricher, text: str) -> None:
    assert "normalisation" in _rules(enricher, "recognition", text)


@pytest.mark.parametrize("text", RENEWED_NORMALISATIONS)
def test_normalisation_after_a_rift_is_no_recognition_evidence(
    enricher: Enricher, text: str
) -> None:
    assert "normalisation" not in _rules(enricher, "recognition", text)


# The Islamic State named only as what a truce or deal leaves out is a passing mention: no
# evidence beside it; the group as an actor in the same story still is.
def test_the_group_excluded_from_a_ceasefire_gives_no_evidence(enricher: Enricher) -> None:
    text = ("Putin says a ceasefire has been brokered between the Syrian government and "
            "rebels. The ceasefire would exclude terror organizations such as ISIL and "
            "al-Nusra.")
    [analysis] = enricher.analyse_many([document_text(text)])
    assert analysis.scores.get("is_threat", 0.0) < 0.15
    assert "violence_by_is" in _rules(
        enricher, "is_threat", "A ceasefire takes hold as Islamic State fighters attack "
        "a checkpoint near Raqqa.")


# A darknet market with a drug named beside it names the trade for the relevance floor;
# the same market selling stolen data or weapons does not (its score is unchanged).
def test_darknet_markets_name_the_topic_only_with_a_drug(enricher: Enricher) -> None:
    from consumers.enrich.enrich import named_outright, outright_rules

    topic = enricher.topics.topics.topics["drug_trafficking"]
    outright = outright_rules(topic)
    assert "darknet_drug_markets" in outright
    for text, named in [
        ("Darknet vendors who sold cocaine and heroin to thousands are jailed", True),
        ("The shutdown of the darknet markets where the drugs were sold is a model", True),
        ("Darknet vendor selling Bitcoin forum databases with 12m entries", False),
        ("Darknet market listings offer malware and stolen credit cards", False),
    ]:
        from consumers.enrich.relevance import FeatureSpec

        [analysis] = enricher.analyse_many([document_text(text)], features=FeatureSpec())
        candidate = analysis.candidates["drug_trafficking"]
        assert named_outright(candidate.evidence, text, outright) is named, text


# The second round of the eighth session: the kinds 2026i's errors showed. Each rule finds
# its evidence in the first list and none in the second (passing mentions, other actors).
ROUND_TWO_EVIDENCE = [
    ("is_threat", "Islamic State fighters take control of a border crossing", "territory_taken"),
    ("is_threat", "Activists say ISIL now controls half of the country", "territory_taken"),
    ("is_threat", "IS captures an oil field after government troops withdraw", "territory_taken"),
    ("drug_trafficking", "Mexico hands the drug boss over to US marshals", "trade_bosses"),
    ("drug_trafficking", "Police say the drugs boss ran the port from prison", "trade_bosses"),
    ("recognition", "Lawmakers vote against Palestinian statehood in a late-night session",
     "statehood_vote"),
    ("recognition", "MPs back a motion calling for a Palestinian state", "statehood_vote"),
    ("drug_trafficking", "Australian vendor busted by a new darknet taskforce", "vendor_busted"),
    ("drug_trafficking", "Swedish darknet group's leader faces 14 years", "darknet_markets"),
]
ROUND_TWO_NO_EVIDENCE = [
    ("is_threat", "Coalition troops take control of a port after driving out the Houthis",
     "territory_taken"),
    ("recognition", "Parliament votes on the budget as the state faces a deficit",
     "statehood_vote"),
    ("recognition", "Leaders discuss a future Palestinian state at the summit",
     "statehood_vote"),
    ("drug_trafficking", "Street food vendors welcome the new market hall", "vendor_busted"),
]


@pytest.mark.parametrize(("topic", "text", "rule"), ROUND_TWO_EVIDENCE)
def test_round_two_kinds_give_evidence(enricher: Enricher, topic: str, text: str,
                                       rule: str) -> None:
    assert rule in _rules(enricher, topic, text)


@pytest.mark.parametrize(("topic", "text", "rule"), ROUND_TWO_NO_EVIDENCE)
def test_round_two_rules_skip_other_actors_and_passing_mentions(
        enricher: Enricher, topic: str, text: str, rule: str) -> None:
    assert rule not in _rules(enricher, topic, text)


def _counted_gaps(node: Any) -> list[str]:
    """Every counted ``OP`` ("{n,m}", "{,m}", "{n}") anywhere in a parsed topics file."""
    if isinstance(node, dict):
        found = [op for key, op in node.items()
                 if key == "OP" and isinstance(op, str) and op.startswith("{")]
        return found + [gap for value in node.values() for gap in _counted_gaps(value)]
    if isinstance(node, list):
        return [gap for value in node for gap in _counted_gaps(value)]
    return []


def test_shipped_patterns_have_no_wide_counted_gap() -> None:
    """spaCy expands a counted gap {0,n} into n optional tokens and follows every partial
    path: one {0,20} in an exclusion cost ~45 ms per full-text article (NER is ~50). A gap
    wider than 10 tokens is written "*" (exclusions and sentence rules run per sentence)."""
    import yaml

    from consumers.enrich.topics import DEFAULT_TOPICS_PATH

    gaps = _counted_gaps(yaml.safe_load(DEFAULT_TOPICS_PATH.read_text(encoding="utf-8")))
    assert gaps, "the shipped topics use counted gaps: the walk must find them"
    widest = max(int(op.strip("{}").split(",")[-1] or 0) for op in gaps)
    assert widest <= 10, f"a counted gap of {widest} tokens in the shipped topics file"
