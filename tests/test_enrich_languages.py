"""Languages: detection with hints, a pipeline per language, topics and entities across
languages and scripts, and clean fallbacks for languages nothing is configured for."""

from __future__ import annotations

import gzip
import json
import logging
from collections import Counter
from pathlib import Path

import pytest

from consumers.enrich.enrich import Enricher, document_text
from consumers.enrich.language import (
    MARKER_LONGER_SAMPLES,
    MARKER_SAMPLE_CHARS,
    MAX_KEPT_TAGS,
    LanguageIdentifier,
    LanguageMarkers,
    confirmed,
    load_markers,
    primary_subtag,
    word_prefix,
)
from consumers.enrich.lemma_forms import arabic_forms, phrase_forms
from consumers.enrich.nlp import load_blank
from consumers.enrich.pipelines import Pipelines
from consumers.enrich.topics import DEFAULT_TOPICS_PATH
from newswatch.cli.enrich import (
    LanguageResults,
    evaluate,
    language_gaps,
    language_report,
    read_items,
)
from newswatch.errors import ConfigError
from schemas.topics_file import load_topics
from tests.enrich_fixtures import article

LABELLED = Path(__file__).parent / "data" / "labelled"


@pytest.fixture(scope="module")
def identify() -> LanguageIdentifier:
    return LanguageIdentifier()


# --- detection -----------------------------------------------------------------------------

LONG = {
    "de": "Die Polizei hat am Montag in Berlin drei Männer festgenommen, die einen Anschlag "
          "auf einen Weihnachtsmarkt geplant haben sollen. Die Ermittler fanden Sprengstoff.",
    "fr": "La police a interpellé lundi trois hommes soupçonnés de préparer un attentat "
          "contre un marché de Noël. Les enquêteurs ont retrouvé des explosifs.",
    "ru": "Полиция в понедельник задержала трёх мужчин, которые, по данным следствия, "
          "готовили теракт на рождественской ярмарке.",
    "ar": "اعتقلت الشرطة يوم الاثنين ثلاثة رجال يشتبه في أنهم كانوا يخططون لهجوم على سوق "
          "لعيد الميلاد، وعثر المحققون على متفجرات.",
    "pt": "A polícia prendeu na segunda-feira três homens suspeitos de planejar um atentado "
          "contra uma feira de Natal. Os investigadores encontraram explosivos.",
}


@pytest.mark.parametrize("language", sorted(LONG))
def test_a_long_text_is_detected_without_a_hint(identify: LanguageIdentifier,
                                                language: str) -> None:
    guess = identify.guess(LONG[language])
    assert (guess.language, guess.source) == (language, "detected")
    assert guess.confidence > 0.9


def test_short_titles_lean_on_the_declared_language(identify: LanguageIdentifier) -> None:
    # Short and ambiguous: alone it says little; the feed says German.
    title = "Street Parade in Zürich"
    assert identify.guess(title, declared="de-CH").language == "de-CH"
    assert identify.guess("Apple presenta el nuevo iPhone", declared="es").language == "es"
    # Without a hint, an unsure guess is no guess: the caller's default applies.
    assert identify.guess("US recognises Guaido as Venezuela's interim president").language \
        is None


def test_clear_text_overrides_a_wrong_declared_language(identify: LanguageIdentifier) -> None:
    # English wire copy in a German feed is English.
    wire = ("The Islamic State group claimed responsibility for the attack on Sunday, "
            "according to a statement released by its news agency.")
    guess = identify.guess(wire, declared="de")
    assert (guess.language, guess.source) == ("en", "detected")
    # When detection agrees, the declared tag keeps its region.
    assert identify.guess(LONG["pt"], declared="pt-BR").language == "pt-BR"


def test_cld2_confirms_a_declared_language_without_py3langid() -> None:
    fresh = LanguageIdentifier()
    for language, text in LONG.items():
        guess = fresh.guess(text, declared=f"{language}-XX")
        assert (guess.language, guess.source) == (f"{language}-XX", "detected")
        assert 0.5 < guess.confidence <= 1.0
    assert fresh._loaded is None  # py3langid's model was never needed
    # A wrong declared language is never confirmed: py3langid decides, and overrides it.
    guess = fresh.guess(LONG["pt"], declared="es")
    assert (guess.language, guess.source) == ("pt", "detected")
    assert fresh._loaded is not None


def test_german_tech_news_half_in_english_is_confirmed_without_py3langid() -> None:
    # Real heise headlines (multilingual-feeds.jsonl): CLD2 reads them as ~50% English and
    # will not call them reliable; its best guess still confirms the declared German, so
    # py3langid (~250 µs) is not asked. Declared English, the same text is not confirmed
    # on that weak evidence: py3langid decides.
    texts = [
        "Ruby Central: Neustart nach Sponsorenverlust und Community-Krise\n\nRuby Central hat "
        "nach Sponsorenverlust finanzielle Probleme. Dazu kommt ein heftiger Disput mit der "
        "Ruby-Community. Lösen will man beides durch Reformen.",
        "Twenty 2.0: Das Open-Source-CRM legt nach\n\nDas Open-Source-CRM Twenty erhält ein "
        "umfangreiches Update mit KI-Integration, Performance-Verbesserungen und "
        "Enterprise-Funktionen.",
    ]
    fresh = LanguageIdentifier()
    for text in texts:
        assert confirmed(text[:600]) == (None, 0.0)  # CLD2 alone is unsure
        guess = fresh.guess(text, declared="de")
        assert (guess.language, guess.source) == ("de", "detected")
    assert fresh._loaded is None
    english = LanguageIdentifier()
    assert english.guess(texts[1], declared="en").primary == "de"
    assert english._loaded is not None


def test_the_first_sample_is_cut_at_the_title_or_a_word() -> None:
    assert word_prefix("short", 56) == "short"
    title = "Imagen Video: KI übernimmt Farbkorrektur"
    assert word_prefix(f"{title}\n\nImagen Video korrigiert Farben", 56) == title
    cut = word_prefix("Samsung öffnet Galaxy-Connect-App für Windows-11-PCs und mehr", 56)
    assert cut == "Samsung öffnet Galaxy-Connect-App für Windows-11-PCs und"
    assert word_prefix("x" * 80, 56) == "x" * 56  # no space: a hard cut


def test_text_cld2_cannot_read_goes_to_py3langid(identify: LanguageIdentifier) -> None:
    # A lone surrogate is not UTF-8: CLD2 refuses it, py3langid still decides.
    text = "\ud800" + LONG["ru"]
    assert confirmed(text) == (None, 0.0)
    assert identify.guess(text, declared="ru").language == "ru"
    assert confirmed("") == (None, 0.0)


def test_the_fast_path_keeps_accuracy_on_the_labelled_items() -> None:
    # Every labelled item, long (title + text) and short (title): the declared language is
    # confirmed as often as py3langid alone confirms it, and a wrong declared language is
    # not taken much more often (bench/bench_language.py prints the figures).
    items = [(record.get("lang") or "en", record["title"],
              f"{record['title']}\n\n{record['text']}")
             for path in sorted(LABELLED.glob("*.jsonl"))
             for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
             for record in [json.loads(line)]]
    hints = ("en", "de", "fr", "es", "pt", "ru", "ar", "pl")
    fast, alone = LanguageIdentifier(), LanguageIdentifier(fast=False)
    for column in (1, 2):
        texts = [(item[0], item[column]) for item in items]
        for identifier in (fast, alone):
            assert all(primary_subtag(identifier.guess(text, lang).language) == lang
                       for lang, text in texts)
        taken = {name: sum(primary_subtag(identifier.guess(text, hint).language) == hint
                           for lang, text in texts for hint in hints if hint != lang)
                 for name, identifier in (("fast", fast), ("alone", alone))}
        assert taken["fast"] <= taken["alone"] + len(texts) // 100, taken


@pytest.fixture(scope="module")
def markers() -> LanguageMarkers:
    return load_markers()


def test_marker_words_confirm_the_declared_language_and_no_other(
        markers: LanguageMarkers) -> None:
    for language, text in LONG.items():
        assert markers.confirm(text, language), language
        assert not any(markers.confirm(text, other) for other in LONG if other != language)
    # Close neighbours share their common words, which mark neither: what is left must.
    assert not markers.confirm(LONG["pt"], "es")
    assert not markers.confirm(LONG["de"], "nl")
    wire = ("The Islamic State group claimed responsibility for the attack on Sunday, "
            "according to a statement released by its news agency.")
    assert not markers.confirm(wire, "de")
    assert markers.confirm(wire, "en")


def test_marker_words_settle_a_declared_language_before_any_identifier() -> None:
    fresh = LanguageIdentifier()
    guess = fresh.guess(LONG["de"], declared="de-AT")
    assert (guess.language, guess.source, guess.confidence) == ("de-AT", "detected", 1.0)
    assert fresh._loaded is None
    # English wire copy in a German feed: the marker words do not confirm German, and the
    # identifiers behind them find English.
    wire = ("The Islamic State group claimed responsibility for the attack on Sunday, "
            "according to a statement released by its news agency.")
    assert fresh.guess(wire, declared="de").language == "en"


def test_a_text_mixing_languages_is_left_to_the_identifiers(
        markers: LanguageMarkers) -> None:
    # A real heise headline, half English: "call" and "native" mark English as much as
    # "zum" marks German, so the words do not say; CLD2 and py3langid decide.
    text = "heise-Angebot: CloudLand 2026: Last Call zum Cloud Native Festival"
    assert not markers.confirm(text, "de")
    assert LanguageIdentifier().guess(text, declared="de").language == "de"


def test_too_few_marker_words_read_further() -> None:
    toy = LanguageMarkers({"aa": ["alfa", "bravo"], "bb": ["zulu"]})
    title = "alfa " + "x" * (MARKER_SAMPLE_CHARS - 10) + " y"
    assert not toy.confirm(title, "aa")  # one marker word, nothing more to read
    assert toy.confirm(title + " bravo", "aa")  # the second sample holds another
    assert toy.confirm("alfa bravo zulu", "bb") is False
    assert toy.confirm("alfa bravo zulu", "aa") is False  # 2 words against 1: mixed
    assert toy.confirm("alfa bravo alfa zulu", "aa") is False  # a word counts once: mixed
    assert toy.confirm("Alfa, BRAVO", "aa") is False  # punctuation left on "alfa,"
    assert toy.confirm("ALFA bravo", "aa")
    assert not toy.confirm("alfa bravo", "cc")
    # A sample ends at a space: the second word is "bravos", no marker.
    assert not toy.confirm("alfa " + "x" * (MARKER_SAMPLE_CHARS - 9) + " bravos", "aa")


def first_sample(words: str) -> str:
    """``words`` padded to exactly the first marker sample: what follows is read later."""
    return words + " " + "x" * (MARKER_SAMPLE_CHARS - len(words) - 1)


def test_a_lead_that_does_not_settle_it_reads_further() -> None:
    toy = LanguageMarkers({"aa": ["alfa", "bravo", "charlie"], "bb": ["zulu", "yankee"]})
    mixed = first_sample("alfa bravo zulu")  # 2 to 1: the declared language leads
    assert not toy.confirm(mixed, "aa")
    assert toy.confirm(mixed + " charlie alfa bravo", "aa")  # 5 to 1 in the longer sample
    assert not toy.confirm(mixed + " zulu yankee charlie", "aa")  # 3 to 3
    # Another language leads in the first sample: no longer sample can confirm it.
    assert not toy.confirm(first_sample("alfa zulu yankee") + " alfa bravo charlie alfa",
                           "aa")
    # The longest sample ends at MARKER_LONGER_SAMPLES[-1]: later words are not read.
    far = " " + "x" * MARKER_LONGER_SAMPLES[-1] + " alfa bravo charlie alfa"
    assert not toy.confirm(mixed + far, "aa")


def test_chinese_markers_are_characters(markers: LanguageMarkers) -> None:
    chinese = "伊斯兰国武装分子在叙利亚东部发动袭击，造成多人死亡。"
    japanese = "イスラム国の戦闘員がシリア東部で攻撃を行い、多数の死者が出た。"
    assert markers.confirm(chinese, "zh")
    assert not markers.confirm(chinese, "ja")
    assert markers.confirm(japanese, "ja")
    assert not markers.confirm(japanese, "zh")
    assert not markers.confirm(LONG["de"], "zh")


def test_a_malformed_markers_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "markers.json.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="not a language markers file"):
        load_markers(bad)
    bad.write_bytes(gzip.compress(json.dumps({"markers": {"de": "und"}}).encode()))
    with pytest.raises(ValueError, match=str(bad.name)):
        load_markers(bad)


def test_declared_tags_kept_are_bounded() -> None:
    # Feed content can declare any string: what the identifier remembers stays bounded.
    fresh = LanguageIdentifier()
    for i in range(MAX_KEPT_TAGS * 2):
        fresh.guess(LONG["de"], declared=f"de-x{i}")
    assert len(fresh._tags) <= MAX_KEPT_TAGS
    assert fresh.guess(LONG["de"], declared="de-x1").language == "de-x1"


def test_load_reads_the_models_before_the_first_article() -> None:
    fresh = LanguageIdentifier()
    assert fresh._loaded is None
    assert fresh._markers is None
    fresh.load()  # what Enricher.from_files does before the daemon reports ready
    assert fresh._loaded is not None
    assert fresh._markers is not None
    assert fresh.detect(LONG["ru"])[0] == "ru"


def test_enrichment_adds_up_the_time_detection_takes(enricher: Enricher) -> None:
    before = enricher.detection_seconds
    enricher.enrich_many([article(title, content=text) for title, text in (
        ("Anschlag in Berlin", LONG["de"]), ("Attentat déjoué", LONG["fr"]))])
    assert enricher.detection_seconds > before


def test_text_without_letters_has_no_language(identify: LanguageIdentifier) -> None:
    assert identify.guess("12:30 — 4:2 (3:1)").language is None
    assert identify.guess("", declared="fr").language == "fr"
    assert primary_subtag("pt_BR") == "pt"
    assert primary_subtag(None) is None


def test_a_mixed_feed_gets_a_language_and_pipeline_per_article(
        enricher: Enricher) -> None:
    articles = [
        article(LONG[code].split(".")[0], content=LONG[code], language="de",
                id=f"{code:x<16}"[:16]) for code in ("de", "fr", "ru", "ar")
    ] + [article("Taliban seek recognition at the United Nations",
                 content="The Taliban asked the United Nations to recognise their "
                         "government, officials said in Kabul.", language="de",
                 id="en" * 8)]
    repairs: Counter[str] = Counter()
    enriched = enricher.enrich_many(articles, repairs)
    assert [item.article.language for item in enriched] == ["de", "fr", "ru", "ar", "en"]
    # py3langid agrees with the German hint; the others are detected against it.
    assert {item.language_source for item in enriched} == {"detected"}
    assert [item.article.id for item in enriched] == [a.id for a in articles]  # order kept
    assert "recognition" in {hit.topic for hit in enriched[-1].topic_hits}
    assert repairs == Counter()
    assert set(enricher.pipelines.loaded()) >= {"en", "de", "fr", "ru", "ar"}
    assert enricher.pipelines.loaded()["fr"].has_ner
    assert not enricher.pipelines.loaded()["de"].has_ner


# --- topics per language: a positive and a hard negative per topic -----------------------

CASES = [
    # is_threat
    ("de", "is_threat", True, "IS bekennt sich zu Anschlag in Kabul",
     "Die Terrormiliz Islamischer Staat hat sich zu dem Selbstmordanschlag bekannt, bei "
     "dem mindestens zwölf Menschen getötet wurden."),
    ("de", "is_threat", False, "Ausstellung über Mossul nach dem Krieg",
     "Die Ausstellung zeigt Fotos der Altstadt von Mossul, die Jahre nach dem Ende der "
     "Herrschaft des Islamischen Staates wieder aufgebaut wird. Der Eintritt ist frei."),
    ("fr", "is_threat", True, "L'État islamique revendique l'attentat de Moscou",
     "Le groupe État islamique a revendiqué l'attaque qui a fait des dizaines de morts "
     "dans une salle de concert."),
    ("fr", "is_threat", False, "Al-Qaïda au Maghreb islamique enlève deux touristes",
     "Les otages ont été enlevés dans le nord du Mali par des combattants liés à Al-Qaïda, "
     "selon les autorités locales."),
    ("ru", "is_threat", True, "ИГИЛ взяло на себя ответственность за теракт",
     "Террористическая группировка «Исламское государство» взяла на себя ответственность "
     "за взрыв на рынке, в результате которого погибли 20 человек."),
    ("ru", "is_threat", False, "В Москве открылась выставка о древней Пальмире",
     "Экспонаты рассказывают об истории города, памятники которого пострадали во время "
     "войны. Выставка продлится до марта."),
    ("ar", "is_threat", True, "داعش يتبنى الهجوم الانتحاري في بغداد",
     "أعلن تنظيم داعش مسؤوليته عن التفجير الانتحاري الذي أسفر عن مقتل 30 شخصا في سوق "
     "شعبي ببغداد."),
    ("ar", "is_threat", False, "معرض للآثار العراقية في باريس",
     "يعرض المتحف قطعا أثرية من الموصل ونينوى، ويستمر المعرض حتى نهاية العام الجاري."),
    # drug_trafficking
    ("de", "drug_trafficking", True, "Zoll stellt zwei Tonnen Kokain im Hamburger Hafen sicher",
     "Die Drogen waren in einem Container mit Bananen versteckt. Ermittler vermuten ein "
     "internationales Drogenkartell hinter der Lieferung."),
    ("de", "drug_trafficking", False, "Kartellamt verhängt Bußgeld gegen Pharmakonzerne",
     "Das Bundeskartellamt hat wegen Preisabsprachen bei Medikamenten ein Bußgeld von "
     "20 Millionen Euro verhängt."),
    ("fr", "drug_trafficking", True, "Saisie record de cocaïne au Havre",
     "Les douaniers ont saisi dix tonnes de cocaïne dans des conteneurs arrivés "
     "d'Amérique du Sud, un coup dur pour les trafiquants."),
    ("fr", "drug_trafficking", False, "La consommation de cannabis recule chez les jeunes",
     "Selon une étude, la consommation de drogue baisse au lycée, tandis que le débat sur "
     "la légalisation du cannabis thérapeutique continue."),
    ("ru", "drug_trafficking", True, "Таможенники изъяли крупную партию кокаина",
     "В порту Санкт-Петербурга в контейнере с бананами обнаружили 500 килограммов "
     "кокаина; задержаны члены международного наркокартеля."),
    ("ru", "drug_trafficking", False, "Врачи предупредили о передозировке лекарствами",
     "Употребление наркотиков и злоупотребление лекарствами остаются главной причиной "
     "отравлений, сообщил Минздрав."),
    ("ar", "drug_trafficking", True, "إحباط تهريب ملايين من حبوب الكبتاغون",
     "ضبطت الجمارك شحنة تحتوي على خمسة ملايين قرص من الكبتاغون مخبأة في شاحنة على "
     "الحدود، وألقت القبض على المهربين."),
    ("ar", "drug_trafficking", False, "حملة توعية بمخاطر إدمان المخدرات",
     "أطلقت وزارة الصحة حملة لعلاج الإدمان ومساعدة متعاطي المخدرات على التعافي."),
    # recognition
    ("de", "recognition", True, "Spanien erkennt Palästina als Staat an",
     "Die spanische Regierung will den palästinensischen Staat offiziell anerkennen, "
     "kündigte der Ministerpräsident an."),
    ("de", "recognition", False, "Pflegekräfte verdienen mehr Anerkennung",
     "Die Ministerin forderte mehr Anerkennung für die Arbeit in Krankenhäusern und "
     "Pflegeheimen."),
    ("fr", "recognition", True, "La France va reconnaître l'État de Palestine",
     "Le président a annoncé que la France reconnaîtra officiellement l'État de "
     "Palestine en septembre."),
    ("fr", "recognition", False, "Le suspect reconnu coupable de fraude",
     "Le tribunal a reconnu coupable l'ancien directeur, condamné à deux ans de prison."),
    ("ru", "recognition", True, "Россия признала правительство талибов",
     "Россия первой официально признала правительство талибов в Афганистане, сообщил "
     "МИД."),
    ("ru", "recognition", False, "Суд признал виновным бывшего чиновника",
     "Бывший чиновник признан виновным в получении взятки и приговорён к пяти годам."),
    ("ar", "recognition", True, "إسبانيا تعلن الاعتراف بدولة فلسطين",
     "أعلنت الحكومة الإسبانية الاعتراف بدولة فلسطين رسميا، في خطوة رحبت بها السلطة "
     "الفلسطينية."),
    ("ar", "recognition", False, "المتهم اعترف بارتكاب الجريمة",
     "قالت النيابة إن المتهم اعترف بارتكاب السرقة أمام المحكمة."),
    # Statehood at stake without a recognition word: independence declared, a UN seat
    # sought; a national holiday and central-bank independence are not recognition.
    ("es", "recognition", True, "Taiwán fracasa de nuevo ante la ONU",
     "Taiwán fracasó por decimotercera vez en su intento de reingresar en las Naciones "
     "Unidas, de donde fue expulsado en 1971."),
    ("es", "recognition", False, "México celebra el Día de la Independencia",
     "Miles de personas llenaron el Zócalo para el Grito; el gobierno recordó la "
     "declaración de independencia de 1810 durante el Día de la Independencia."),
    ("de", "recognition", True, "Kosovo vor der Unabhängigkeitserklärung",
     "Die Regierung in Pristina will die Unabhängigkeitserklärung noch im Februar "
     "verabschieden; Serbien lehnt sie ab."),
    ("de", "recognition", False, "Notenbank betont ihre Unabhängigkeit",
     "Die Europäische Zentralbank verteidigte ihre Unabhängigkeit gegen Kritik aus "
     "mehreren Regierungen."),
    # Chinese: characters are the tokens, phrases match as runs of characters.
    ("zh", "is_threat", True, "伊斯兰国宣称对喀布尔机场袭击负责",
     "极端组织伊斯兰国周四宣称对阿富汗首都喀布尔机场附近的自杀式炸弹袭击负责，袭击造成"
     "数十人死亡。"),
    ("zh", "is_threat", False, "伊斯兰金融在东南亚快速发展",
     "分析人士说，伊斯兰银行和伊斯兰债券市场规模持续扩大，吸引了更多投资者。"),
    ("zh", "drug_trafficking", True, "警方破获特大跨国贩毒案 缴获冰毒两吨",
     "警方破获一起特大跨国贩毒案，抓获犯罪嫌疑人12名，缴获冰毒两吨。该贩毒集团从境外"
     "走私毒品入境。"),
    ("zh", "drug_trafficking", False, "戒毒所推出新的康复计划",
     "当局表示，吸毒者将在戒毒所接受为期两年的康复治疗，医生将帮助他们摆脱毒瘾。"),
    ("zh", "recognition", True, "俄罗斯正式承认塔利班政府",
     "俄罗斯成为第一个正式承认阿富汗塔利班政权的国家，塔利班外长对此表示欢迎。"),
    ("zh", "recognition", False, "前官员在法庭上承认错误",
     "这名前官员在法庭上承认错误，并承认犯罪事实，法院将择日宣判。"),
    # Persian: forms written out (no lemma table), "به رسمیت شناختن" in its spellings.
    ("fa", "is_threat", True, "داعش مسئولیت حمله انتحاری در کابل را بر عهده گرفت",
     "گروه داعش اعلام کرد یکی از اعضایش حمله انتحاری در نزدیکی فرودگاه کابل را انجام "
     "داده است؛ دست‌کم ۶۰ نفر کشته شدند."),
    ("fa", "is_threat", False, "نمایشگاه آثار تاریخی موصل در تهران گشایش یافت",
     "این نمایشگاه اشیای باستانی عراق را به نمایش می‌گذارد و تا پایان ماه ادامه دارد."),
    ("fa", "drug_trafficking", True, "کشف ۳۰۰ کیلوگرم تریاک در سیستان و بلوچستان",
     "ماموران پلیس مبارزه با مواد مخدر در بازرسی از یک تریلی ۳۰۰ کیلوگرم تریاک کشف و "
     "دو قاچاقچی را دستگیر کردند."),
    ("fa", "drug_trafficking", False, "افتتاح کمپ ترک اعتیاد در مشهد",
     "مسئولان گفتند این مرکز به معتادان برای ترک اعتیاد و درمان مصرف مواد مخدر کمک "
     "می‌کند."),
    ("fa", "recognition", True, "چین حکومت طالبان را به‌رسمیت نمی‌شناسد",
     "سخنگوی وزارت خارجه چین گفت پکن هنوز تصمیمی برای به رسمیت شناختن حکومت طالبان "
     "نگرفته است."),
    ("fa", "recognition", False, "فرودگاه امام از سامانه تشخیص چهره استفاده می‌کند",
     "مسافران با سامانه تشخیص چهره از گیت عبور می‌کنند و نیازی به کارت پرواز ندارند."),
]


@pytest.mark.parametrize(("language", "topic", "expected", "title", "text"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{'pos' if c[2] else 'neg'}" for c in CASES])
def test_topics_in_other_languages(enricher: Enricher, language: str,
                                   topic: str, expected: bool, title: str, text: str) -> None:
    analysis = enricher.analyse(document_text(title, content=text))
    assert primary_subtag(analysis.language) == language
    assert (topic in {hit.topic for hit in analysis.hits}) is expected, analysis.scores
    if expected:
        evidence = next(hit for hit in analysis.hits if hit.topic == topic).evidence
        full = document_text(title, content=text).text
        assert all(full[span.start:span.end] == span.phrase for span in evidence)


# Another armed group named in the title or lead, and the Islamic State only later: the
# story is that group's (a Polish held-out item, mlh3-040, was such a report). Named up
# front, or with no other group in the lead, the Islamic State still makes the topic.
ANOTHER_GROUPS_STORY = [
    ("pl", False, "Afganistan: talibowie zaatakowali posterunek wojska",
     "Co najmniej ośmiu żołnierzy zginęło w nocnym ataku talibów na posterunek w prowincji "
     "Kunar. W prowincji działają zarówno talibowie, jak i bojownicy Państwa Islamskiego."),
    ("pl", True, "Zamach pod Moskwą: rośnie liczba ofiar",
     "Liczba ofiar ataku na salę koncertową wzrosła do 140. Do zamachu przyznało się "
     "Państwo Islamskie."),
    ("pl", True, "Państwo Islamskie zaatakowało talibów w Dżalalabadzie",
     "Bojownicy Państwa Islamskiego zabili pięciu talibów na punkcie kontrolnym."),
    ("de", False, "Taliban greifen Armeeposten in Kundus an",
     "Bei dem Angriff der Taliban wurden zehn Soldaten getötet. In der Region sind auch "
     "Kämpfer des Islamischen Staates aktiv."),
    ("en", False, "Al-Shabab fighters storm army base in Somalia",
     "Al-Shabab militants attacked the base at dawn, killing twelve soldiers. The group "
     "has also clashed with Islamic State fighters in Puntland."),
    ("en", True, "ISIS-K claims attack on Taliban checkpoint in Kabul",
     "The Taliban said five guards were killed when Islamic State gunmen opened fire."),
]


@pytest.mark.parametrize(("language", "expected", "title", "text"), ANOTHER_GROUPS_STORY,
                         ids=[f"{c[0]}-{'pos' if c[1] else 'neg'}-{i}"
                              for i, c in enumerate(ANOTHER_GROUPS_STORY)])
def test_another_groups_story_is_not_the_islamic_states(
        enricher: Enricher, language: str, expected: bool, title: str, text: str) -> None:
    analysis = enricher.analyse(document_text(title, content=text))
    assert primary_subtag(analysis.language) == language
    assert ("is_threat" in {hit.topic for hit in analysis.hits}) is expected, analysis.scores


# --- entities across languages and scripts ------------------------------------------------

def test_one_canonical_name_across_languages_and_scripts(enricher: Enricher
                                                         ) -> None:
    texts = {
        "en": "ISIS fighters attacked the town. The Islamic State's propaganda spread fast.",
        "de": "Kämpfer des Islamischen Staates griffen die Stadt an, berichtete die "
              "Polizei aus Russland und Deutschland.",
        "ru": "Боевики ИГИЛ атаковали город. Представители Исламского государства в России "
              "задержаны полицией.",
        "ar": "هاجم مسلحون تابعون لداعش المدينة، وقالت الشرطة في العراق إن عناصر الدولة "
              "الإسلامية فروا.",
        "tr": "IŞİD'in militanları kente saldırdı, Rusya ve Türkiye polisi açıklama yaptı.",
        "fr": "Des combattants de l'État islamique ont attaqué la ville, a indiqué la police "
              "en Russie.",
        "zh": "伊斯兰国武装分子袭击了这座城市，俄罗斯警方和联合国官员表示。",
    }
    for language, text in texts.items():
        analysis = enricher.analyse(document_text("", content=text))
        assert primary_subtag(analysis.language) == language
        names = {entity.name: entity for entity in analysis.entities}
        assert "Islamic State" in names, (language, names)
        assert names["Islamic State"].label == "ORG"
        if language in ("de", "ru", "tr", "fr", "zh"):
            assert names["Russia"].label == "GPE", (language, names)
    chinese = enricher.analyse(document_text("", content=texts["zh"]))
    assert {e.name for e in chinese.entities} == {"Islamic State", "Russia", "United Nations"}
    german = enricher.analyse(document_text("", content=texts["de"]))
    assert {e.name for e in german.entities} >= {"Islamic State", "Russia", "Germany"}
    assert not {e.name for e in german.entities} & {"Polizei", "Stadt"}  # no junk "entities"


def test_lower_case_words_are_not_countries(enricher: Enricher) -> None:
    # Portuguese "peru" is a turkey; "Peru" the country.
    analysis = enricher.analyse(document_text(
        "", content="O peru de Natal ficou mais caro este ano, disse a associação. O Peru "
                    "exporta cobre para a China."))
    assert [e.name for e in analysis.entities if e.name == "Peru"] == ["Peru"]
    assert next(e for e in analysis.entities if e.name == "Peru").count == 1


# --- fallbacks -----------------------------------------------------------------------------

def test_a_language_without_a_tokenizer_falls_back_logged_and_counted(
        enricher: Enricher, caplog: pytest.LogCaptureFixture) -> None:
    japanese = article("東京で国際会議が開かれた",
                       content="日本の首相は東京で各国の代表と会談した。会議は三日間続く予定だ。",
                       id="j" * 16)
    italian = article("Il governo italiano approva la legge di bilancio",
                      content="Il Consiglio dei ministri ha approvato la manovra economica "
                              "per il prossimo anno, con nuove misure per le famiglie.",
                      id="i" * 16)
    numbers = article("2:1", id="n" * 16)
    repairs: Counter[str] = Counter()
    with caplog.at_level(logging.INFO, logger="consumers.enrich"):
        enriched = enricher.enrich_many([japanese, italian, numbers], repairs)
    assert [item.article.language for item in enriched] == ["ja", "it", None]
    assert repairs == Counter({"language_generic_language": 2, "language_no_language": 1})
    reasons = {getattr(record, "reason", None) for record in caplog.records}
    assert {"generic_language", "no_language"} <= reasons
    assert all(item.topic_hits == () for item in enriched)


def test_a_configured_language_spacy_cannot_tokenize_uses_the_generic_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "topics.yaml").write_text(
        "topics:\n  t:\n    description: d\n    rules:\n      - {name: r, weight: 0.9, "
        "phrases: [x]}\n    languages:\n      ja:\n        rules: {r: [会議]}\n",
        encoding="utf-8")
    pipelines = Pipelines(load_topics(tmp_path / "topics.yaml"), models={})
    with caplog.at_level(logging.WARNING, logger="consumers.enrich"):
        choice = pipelines.get("ja")
        again = pipelines.get("ja")
    assert (choice.pipeline.language, choice.fallback) == ("xx", "unsupported_language")
    assert again.fallback == "unsupported_language"
    assert [r.message for r in caplog.records].count(
        "no tokenizer for this language: using the multi-language one") == 1


def test_load_blank_refuses_a_language_spacy_cannot_tokenize() -> None:
    with pytest.raises(ConfigError, match="cannot tokenize language 'ja'"):
        load_blank("ja")
    with pytest.raises(ConfigError):
        load_blank("qq")


def test_blank_tokenizers_split_names_out_of_compounds_and_suffixes() -> None:
    assert [t.text for t in load_blank("tr").make_doc("IŞİD'in saldırısı")] == [
        "IŞİD", "'in", "saldırısı"]
    assert [t.text for t in load_blank("de").make_doc("IS-Kämpfer")] == ["IS", "-", "Kämpfer"]


# --- word forms ----------------------------------------------------------------------------

def test_lemma_tables_give_inflected_forms() -> None:
    assert {"anschläge", "anschlägen", "anschlags"} <= phrase_forms("de", ["Anschlag"])
    assert {"исламского государства", "исламским государством"} <= phrase_forms(
        "ru", ["Исламское государство"])
    assert {"reconnu", "reconnaissent"} <= phrase_forms("fr", ["reconnaître"])
    assert phrase_forms("de", ["Anschlag"], "none") == {"anschlag"}
    # A word the table does not know is kept as written.
    assert phrase_forms("de", ["Xyzzyquux"]) == {"xyzzyquux"}
    # A phrase with more combinations of forms than are kept still has itself.
    assert "ingreso en las naciones unidas" in phrase_forms(
        "es", ["ingreso en las Naciones Unidas"])


def test_arabic_forms_add_proclitics_and_bare_alef() -> None:
    forms = arabic_forms(["الإرهاب"])
    assert {"الإرهاب", "والإرهاب", "بالإرهاب", "للإرهاب", "الارهاب"} <= forms
    assert "لالإرهاب" not in forms  # ل + ال is written لل
    assert {"لداعش", "وداعش"} <= arabic_forms(["داعش"])


# --- topics file ---------------------------------------------------------------------------

def test_topics_check_reports_languages_without_phrases() -> None:
    loaded = load_topics(DEFAULT_TOPICS_PATH)
    gaps = language_gaps(loaded, frozenset({"en", "fr"}))
    for topic in ("is_threat", "drug_trafficking", "recognition"):
        covered, missing = gaps[topic]
        assert {"en", "de", "fr", "es", "pt", "ru", "ar", "pl", "tr", "zh"} <= set(covered)
        assert missing == []
    # A language with a model (or names) but no phrases is reported, not scored zero.
    gaps = language_gaps(loaded, frozenset({"en", "fr", "it"}))
    assert {topic: missing for topic, (_, missing) in gaps.items()} == {
        "is_threat": ["it"], "drug_trafficking": ["it"], "recognition": ["it"]}


def test_a_language_block_must_name_parts_of_its_topic(tmp_path: Path) -> None:
    (tmp_path / "topics.yaml").write_text(
        "topics:\n  t:\n    description: d\n    rules:\n      - {name: r, weight: 0.5, "
        "phrases: [x]}\n    languages:\n      de:\n        rules: {nope: [y]}\n",
        encoding="utf-8")
    with pytest.raises(ConfigError, match="no rule named 'nope'"):
        load_topics(tmp_path / "topics.yaml")
    (tmp_path / "topics.yaml").write_text(
        "topics:\n  t:\n    description: d\n    rules:\n      - {name: r, weight: 0.5, "
        "phrases: [x]}\n    languages:\n      German:\n        rules: {r: [y]}\n",
        encoding="utf-8")
    with pytest.raises(ConfigError, match="lower-case ISO 639"):
        load_topics(tmp_path / "topics.yaml")


def test_eval_reports_per_language(enricher: Enricher) -> None:
    records = [
        {"id": 1, "lang": "de", "title": CASES[0][3], "text": CASES[0][4],
         "labels": ["is_threat"]},
        {"id": 2, "lang": "fr", "title": CASES[3][3], "text": CASES[3][4], "labels": []},
        {"id": 3, "lang": "en", "title": "ISIS claims deadly bombing in Kabul",
         "text": "The Islamic State claimed the suicide bombing.", "labels": ["is_threat"]},
    ]
    items = list(read_items([json.dumps(r) for r in records], "test", labelled=True))
    languages = LanguageResults()
    evaluate(enricher, items, languages)
    text = language_report(languages)
    lines = text.splitlines()
    assert "per language:" in text
    assert any(line.startswith("de ") and "is_threat" in line and "1.000" in line
               for line in lines)
    assert any(line.startswith("non-en ") and "is_threat" in line for line in lines)
    assert "language detected as labelled: 3 of 3" in text
