"""Write consumers/enrich/country_aliases.yaml: every ISO 3166 country, the capitals that
matter to the default topics and the partially recognised states whose recognition is
news (Kosovo, Somaliland, Abkhazia...), with their names in the languages Newswatch reads.

    .venv/bin/pip install pycountry && .venv/bin/python scripts/country_aliases.py

Country names come from pycountry (the Debian iso-codes data and its translations,
maintained upstream): the short name and the common name, translated by the
``iso3166-1`` catalogues; a formal name such as "Syrien, Arabische Republik" keeps only
its part before the comma. Where the catalogue gives only a formal name ("Russische
Föderation") the everyday one is added from ``COMMON`` below, written by hand, as are the
capitals and the states ISO 3166 does not list (no maintained package translates them).
pycountry is needed only to regenerate the file; Newswatch reads the YAML.

Every entity is ``cased``: a country's names are found only where written with a capital
("Turkey", not "turkey"). The canonical name is the English common name, the one the
hand-written table (entity_aliases.yaml) uses for the countries it already lists.
"""

from __future__ import annotations

import gettext
import sys
from pathlib import Path
from typing import Any

import pycountry
import yaml

OUT = Path(__file__).resolve().parent.parent / "consumers" / "enrich" / "country_aliases.yaml"
LANGUAGES = ("en", "de", "fr", "es", "pt", "ru", "ar", "pl", "tr", "zh", "fa")
CATALOGUE = {"zh": "zh_CN"}
CANONICAL = {"RU": "Russia", "PS": "Palestine", "TR": "Turkey", "CZ": "Czech Republic",
             "CD": "Democratic Republic of the Congo", "CG": "Republic of the Congo",
             "VA": "Vatican City", "BN": "Brunei", "FM": "Micronesia", "KR": "South Korea",
             "KP": "North Korea"}
# Everyday names the catalogues lack (they translate the ISO short name, often formal).
COMMON: dict[str, dict[str, list[str]]] = {
    "RU": {"en": ["Russia"], "de": ["Russland"], "fr": ["Russie"], "es": ["Rusia"],
           "pt": ["Rússia"], "ru": ["Россия", "РФ"], "ar": ["روسيا"], "pl": ["Rosja"],
           "tr": ["Rusya"], "zh": ["俄罗斯"], "fa": ["روسیه"]},
    "US": {"de": ["USA", "Vereinigte Staaten von Amerika"], "fr": ["Amérique"],
           "es": ["EE. UU.", "EEUU", "EE.UU."], "pt": ["EUA", "EE.UU."], "ru": ["США"],
           "ar": ["أمريكا", "الولايات المتحدة الأمريكية", "الولايات المتحدة"],
           "pl": ["USA", "Ameryka"], "tr": ["ABD", "Amerika"], "zh": ["美国"],
           "fa": ["آمریکا", "ایالات متحده"]},
    "GB": {"en": ["Britain", "Great Britain"], "de": ["Großbritannien"],
           "fr": ["Grande-Bretagne"], "es": ["Gran Bretaña"], "pt": ["Grã-Bretanha"],
           "ru": ["Великобритания", "Британия"], "ar": ["بريطانيا"],
           "pl": ["Wielka Brytania"], "tr": ["İngiltere", "Birleşik Krallık"]},
    "SY": {"ru": ["Сирия"], "ar": ["سوريا", "سورية"], "pl": ["Syria"], "tr": ["Suriye"],
           "fa": ["سوریه"], "pt": ["Síria"], "es": ["Siria"], "fr": ["Syrie"], "de": ["Syrien"]},
    "IR": {"ru": ["Иран"], "ar": ["إيران"], "tr": ["İran"], "fa": ["ایران"]},
    "TR": {"en": ["Turkey", "Türkiye"], "de": ["Türkei"], "fr": ["Turquie"],
           "es": ["Turquía"], "pt": ["Turquia"], "ru": ["Турция"], "ar": ["تركيا"],
           "pl": ["Turcja"], "tr": ["Türkiye"]},
    "PS": {"en": ["Palestine"], "de": ["Palästina"], "fr": ["Palestine"],
           "es": ["Palestina"], "pt": ["Palestina"], "ru": ["Палестина"],
           "ar": ["فلسطين", "دولة فلسطين"], "pl": ["Palestyna"], "tr": ["Filistin"]},
    "TW": {"de": ["Taiwan"], "fr": ["Taïwan", "Taiwan"], "es": ["Taiwán"],
           "pt": ["Taiwan", "Formosa"], "ru": ["Тайвань"], "ar": ["تايوان"],
           "pl": ["Tajwan"], "tr": ["Tayvan"], "zh": ["台湾"]},
    "KR": {"de": ["Südkorea"], "fr": ["Corée du Sud"], "es": ["Corea del Sur"],
           "pt": ["Coreia do Sul"], "ru": ["Южная Корея"], "ar": ["كوريا الجنوبية"],
           "pl": ["Korea Południowa"], "tr": ["Güney Kore"], "zh": ["韩国"]},
    "KP": {"de": ["Nordkorea"], "fr": ["Corée du Nord"], "es": ["Corea del Norte"],
           "pt": ["Coreia do Norte"], "ru": ["КНДР", "Северная Корея"],
           "ar": ["كوريا الشمالية"], "pl": ["Korea Północna"], "tr": ["Kuzey Kore"],
           "zh": ["朝鲜"]},
    "AF": {"ar": ["أفغانستان"], "tr": ["Afganistan"]},
    "CN": {"ar": ["الصين"], "zh": ["中国"]},
    "SA": {"ar": ["السعودية"], "ru": ["Саудовская Аравия"]},
    "VE": {"es": ["Venezuela"], "pt": ["Venezuela"], "ru": ["Венесуэла"]},
    "BO": {"es": ["Bolivia"], "pt": ["Bolívia"]},
    "MX": {"es": ["México"], "pt": ["México"]},
    "CO": {"es": ["Colombia"], "pt": ["Colômbia"]},
    "IQ": {"ar": ["العراق"]},
    "BR": {"pt": ["Brasil"]},
    "UA": {"ru": ["Украина"], "pl": ["Ukraina"], "tr": ["Ukrayna"]},
}
CAPITALS: list[dict[str, Any]] = [
    {"name": "Kabul", "names": {"de": ["Kabul"], "fr": ["Kaboul"], "es": ["Kabul"],
     "pt": ["Cabul"], "ru": ["Кабул"], "ar": ["كابول"], "pl": ["Kabul"], "tr": ["Kabil"],
     "zh": ["喀布尔"]}},
    {"name": "Damascus", "names": {"de": ["Damaskus"], "fr": ["Damas"], "es": ["Damasco"],
     "pt": ["Damasco"], "ru": ["Дамаск"], "ar": ["دمشق"], "pl": ["Damaszek"],
     "tr": ["Şam"], "zh": ["大马士革"]}},
    {"name": "Baghdad", "names": {"de": ["Bagdad"], "fr": ["Bagdad"], "es": ["Bagdad"],
     "pt": ["Bagdá", "Bagdade"], "ru": ["Багдад"], "ar": ["بغداد"], "pl": ["Bagdad"],
     "tr": ["Bağdat"], "zh": ["巴格达"]}},
    {"name": "Moscow", "names": {"de": ["Moskau"], "fr": ["Moscou"], "es": ["Moscú"],
     "pt": ["Moscou", "Moscovo"], "ru": ["Москва"], "ar": ["موسكو"], "pl": ["Moskwa"],
     "tr": ["Moskova"], "zh": ["莫斯科"]}},
    {"name": "Washington", "names": {"de": ["Washington"], "fr": ["Washington"],
     "es": ["Washington"], "pt": ["Washington"], "ru": ["Вашингтон"], "ar": ["واشنطن"],
     "pl": ["Waszyngton"], "tr": ["Washington"], "zh": ["华盛顿"]}},
    {"name": "Beijing", "names": {"de": ["Peking"], "fr": ["Pékin"], "es": ["Pekín"],
     "pt": ["Pequim"], "ru": ["Пекин"], "ar": ["بكين"], "pl": ["Pekin"], "tr": ["Pekin"],
     "zh": ["北京"]}},
    {"name": "Taipei", "names": {"de": ["Taipeh"], "fr": ["Taipei"], "es": ["Taipéi"],
     "pt": ["Taipé"], "ru": ["Тайбэй"], "ar": ["تايبيه"], "pl": ["Tajpej"],
     "tr": ["Taipei"], "zh": ["台北"]}},
    {"name": "Tehran", "names": {"de": ["Teheran"], "fr": ["Téhéran"], "es": ["Teherán"],
     "pt": ["Teerã", "Teerão"], "ru": ["Тегеран"], "ar": ["طهران"], "pl": ["Teheran"],
     "tr": ["Tahran"], "zh": ["德黑兰"]}},
    {"name": "Kyiv", "names": {"de": ["Kiew"], "fr": ["Kiev", "Kyiv"], "es": ["Kiev"],
     "pt": ["Kiev", "Kyiv"], "ru": ["Киев"], "ar": ["كييف"], "pl": ["Kijów"],
     "tr": ["Kiev"], "zh": ["基辅"]}},
    {"name": "Paris", "names": {"de": ["Paris"], "fr": ["Paris"], "es": ["París"],
     "pt": ["Paris"], "ru": ["Париж"], "ar": ["باريس"], "pl": ["Paryż"], "tr": ["Paris"],
     "zh": ["巴黎"]}},
    {"name": "Berlin", "names": {"de": ["Berlin"], "fr": ["Berlin"], "es": ["Berlín"],
     "pt": ["Berlim"], "ru": ["Берлин"], "ar": ["برلين"], "pl": ["Berlin"],
     "tr": ["Berlin"], "zh": ["柏林"]}},
    {"name": "London", "names": {"de": ["London"], "fr": ["Londres"], "es": ["Londres"],
     "pt": ["Londres"], "ru": ["Лондон"], "ar": ["لندن"], "pl": ["Londyn"],
     "tr": ["Londra"], "zh": ["伦敦"]}},
    {"name": "Brussels", "names": {"de": ["Brüssel"], "fr": ["Bruxelles"],
     "es": ["Bruselas"], "pt": ["Bruxelas"], "ru": ["Брюссель"], "ar": ["بروكسل"],
     "pl": ["Bruksela"], "tr": ["Brüksel"], "zh": ["布鲁塞尔"]}},
    {"name": "Vienna", "names": {"de": ["Wien"], "es": ["Viena"], "pt": ["Viena"],
     "ru": ["Вена"], "ar": ["فيينا"], "pl": ["Wiedeń"], "tr": ["Viyana"], "zh": ["维也纳"]}},
    {"name": "Warsaw", "names": {"de": ["Warschau"], "fr": ["Varsovie"],
     "es": ["Varsovia"], "pt": ["Varsóvia"], "ru": ["Варшава"], "ar": ["وارسو"],
     "pl": ["Warszawa"], "tr": ["Varşova"], "zh": ["华沙"]}},
    {"name": "Ankara", "names": {"de": ["Ankara"], "fr": ["Ankara"], "es": ["Ankara"],
     "pt": ["Ancara"], "ru": ["Анкара"], "ar": ["أنقرة"], "pl": ["Ankara"],
     "tr": ["Ankara"], "zh": ["安卡拉"]}},
    {"name": "Istanbul", "names": {"de": ["Istanbul"], "fr": ["Istanbul"],
     "es": ["Estambul"], "pt": ["Istambul"], "ru": ["Стамбул"], "ar": ["إسطنبول"],
     "pl": ["Stambuł"], "tr": ["İstanbul"], "zh": ["伊斯坦布尔"]}},
    {"name": "Jerusalem", "names": {"de": ["Jerusalem"], "fr": ["Jérusalem"],
     "es": ["Jerusalén"], "pt": ["Jerusalém"], "ru": ["Иерусалим"], "ar": ["القدس"],
     "pl": ["Jerozolima"], "tr": ["Kudüs"], "zh": ["耶路撒冷"]}},
    {"name": "Riyadh", "names": {"de": ["Riad"], "fr": ["Riyad"], "es": ["Riad"],
     "pt": ["Riade"], "ru": ["Эр-Рияд"], "ar": ["الرياض"], "pl": ["Rijad"],
     "tr": ["Riyad"], "zh": ["利雅得"]}},
    {"name": "Cairo", "names": {"de": ["Kairo"], "fr": ["Le Caire"], "es": ["El Cairo"],
     "pt": ["Cairo"], "ru": ["Каир"], "ar": ["القاهرة"], "pl": ["Kair"], "tr": ["Kahire"],
     "zh": ["开罗"]}},
    {"name": "Islamabad", "names": {"de": ["Islamabad"], "fr": ["Islamabad"],
     "es": ["Islamabad"], "pt": ["Islamabad"], "ru": ["Исламабад"], "ar": ["إسلام آباد"],
     "pl": ["Islamabad"], "tr": ["İslamabad"], "zh": ["伊斯兰堡"]}},
    {"name": "Mogadishu", "names": {"de": ["Mogadischu"], "fr": ["Mogadiscio"],
     "es": ["Mogadiscio"], "pt": ["Mogadíscio"], "ru": ["Могадишо"], "ar": ["مقديشو"],
     "pl": ["Mogadiszu"], "tr": ["Mogadişu"], "zh": ["摩加迪沙"]}},
    {"name": "Bogotá", "names": {"de": ["Bogotá"], "fr": ["Bogota"], "es": ["Bogotá"],
     "pt": ["Bogotá"], "ru": ["Богота"], "ar": ["بوغوتا"], "pl": ["Bogota"],
     "tr": ["Bogota"], "zh": ["波哥大"]}},
    {"name": "Mexico City", "names": {"de": ["Mexiko-Stadt"], "es": ["Ciudad de México"],
     "pt": ["Cidade do México"], "ru": ["Мехико"], "pl": ["Meksyk"], "zh": ["墨西哥城"]}},
    {"name": "Lisbon", "names": {"de": ["Lissabon"], "fr": ["Lisbonne"], "es": ["Lisboa"],
     "pt": ["Lisboa"], "ru": ["Лиссабон"], "ar": ["لشبونة"], "pl": ["Lizbona"],
     "tr": ["Lizbon"], "zh": ["里斯本"]}},
    {"name": "Madrid", "names": {"de": ["Madrid"], "fr": ["Madrid"], "es": ["Madrid"],
     "pt": ["Madri", "Madrid"], "ru": ["Мадрид"], "ar": ["مدريد"], "pl": ["Madryt"],
     "tr": ["Madrid"], "zh": ["马德里"]}},
    {"name": "Brasília", "names": {"de": ["Brasília"], "fr": ["Brasilia"],
     "es": ["Brasilia"], "pt": ["Brasília"], "ru": ["Бразилиа"], "pl": ["Brasília"],
     "zh": ["巴西利亚"]}},
]


# States whose recognition is itself the news (the English recognition constraint names
# them): not in ISO 3166, so written by hand.
POLITIES: list[dict[str, Any]] = [
    {"name": "Kosovo", "names": {"de": ["Kosovo"], "fr": ["Kosovo"], "es": ["Kosovo"],
     "pt": ["Kosovo"], "ru": ["Косово"], "ar": ["كوسوفو"], "pl": ["Kosowo"],
     "tr": ["Kosova"], "zh": ["科索沃"]}},
    {"name": "Somaliland", "names": {"de": ["Somaliland"], "fr": ["Somaliland"],
     "es": ["Somalilandia"], "pt": ["Somalilândia"], "ru": ["Сомалиленд"],
     "ar": ["أرض الصومال"], "pl": ["Somaliland"], "tr": ["Somaliland"], "zh": ["索马里兰"]}},
    {"name": "Abkhazia", "names": {"de": ["Abchasien"], "fr": ["Abkhazie"], "es": ["Abjasia"],
     "pt": ["Abecásia", "Abkhazia"], "ru": ["Абхазия"], "ar": ["أبخازيا"], "pl": ["Abchazja"],
     "tr": ["Abhazya"], "zh": ["阿布哈兹"]}},
    {"name": "South Ossetia", "names": {"de": ["Südossetien"], "fr": ["Ossétie du Sud"],
     "es": ["Osetia del Sur"], "pt": ["Ossétia do Sul"], "ru": ["Южная Осетия"],
     "ar": ["أوسيتيا الجنوبية"], "pl": ["Osetia Południowa"], "tr": ["Güney Osetya"],
     "zh": ["南奥塞梯"]}},
    {"name": "Northern Cyprus", "names": {"de": ["Nordzypern"], "fr": ["Chypre du Nord"],
     "es": ["Chipre del Norte"], "pt": ["Chipre do Norte"], "ru": ["Северный Кипр"],
     "ar": ["شمال قبرص"], "pl": ["Cypr Północny"], "tr": ["Kuzey Kıbrıs"],
     "zh": ["北塞浦路斯"]}},
    {"name": "Transnistria", "names": {"de": ["Transnistrien"], "fr": ["Transnistrie"],
     "es": ["Transnistria"], "pt": ["Transnístria"], "ru": ["Приднестровье"],
     "ar": ["ترانسنيستريا"], "pl": ["Naddniestrze"], "tr": ["Transdinyester"],
     "zh": ["德涅斯特河沿岸"]}},
]


def main() -> int:
    catalogues = {code: gettext.translation("iso3166-1", pycountry.LOCALES_DIR,
                                            languages=[CATALOGUE.get(code, code)])
                  for code in LANGUAGES if code != "en"}
    entities: list[dict[str, Any]] = []
    for country in sorted(pycountry.countries, key=lambda c: c.alpha_2):
        common = getattr(country, "common_name", None)
        canonical = CANONICAL.get(country.alpha_2) or common or _short(country.name)
        names: dict[str, list[str]] = {}
        for code in LANGUAGES:
            found = [country.name, *([common] if common else [])]
            if code != "en":
                found = [catalogues[code].gettext(name) for name in found]
            found += COMMON.get(country.alpha_2, {}).get(code, [])
            found = [_short(name) for name in found]
            if code == "ar":
                found = [_no_diacritics(name) for name in found]
            kept = [name for name in dict.fromkeys(found) if name and name != canonical]
            if kept:
                names[code] = kept
        entities.append({"name": canonical, "label": "GPE", "cased": True, "names": names})
    for capital in [*CAPITALS, *POLITIES]:
        entities.append({"name": capital["name"], "label": "GPE", "cased": True,
                         "names": {code: [n for n in found if n != capital["name"]]
                                   for code, found in capital["names"].items()
                                   if [n for n in found if n != capital["name"]]}})
    header = ("# Generated by scripts/country_aliases.py from pycountry "
              f"{_version()} (ISO 3166 names and\n# their iso-codes translations) and the "
              "hand-written common names and capitals in\n# that script. Do not edit: "
              "change the script and run it again.\n")
    body = yaml.safe_dump({"entities": entities}, allow_unicode=True, sort_keys=False,
                          width=100)
    OUT.write_text(header + body, encoding="utf-8")
    print(f"wrote {OUT} ({len(entities)} entities)")
    return 0


def _short(name: str) -> str:
    """'Syrien, Arabische Republik' -> 'Syrien'; other names as they are."""
    return name.split(",", 1)[0].strip()


def _no_diacritics(text: str) -> str:
    """Arabic without short vowels and shadda: news copy rarely writes them."""
    return "".join(char for char in text if not "\u064b" <= char <= "\u0652")


def _version() -> str:
    from importlib.metadata import version

    return version("pycountry")


if __name__ == "__main__":
    sys.exit(main())
