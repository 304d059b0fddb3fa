"""Tests for node.normalize: the normal form and the entry id, on real names."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.normalize import entry_id, normal_form

SAME_ENTRY = [
    ("São Paulo", "Sao Paulo"),
    ("The Louvre", "Louvre"),
    ("Saint-Étienne", "Saint Etienne"),
    ("Łódź", "Lodz"),
    ("Zürich", "Zurich"),
    ("Málaga", "MALAGA"),
    ("L'Aquila", "Aquila"),
    ("l’Hospitalet de Llobregat", "Hospitalet de Llobregat"),
    ("Le Havre", "Havre"),
    ("La Coruña", "Coruna"),
    ("Côte d'Ivoire", "Cote d’Ivoire"),
    ("Straße", "Strasse"),
    ("Ørsted", "Orsted"),
    ("Tromsø", "Tromso"),
    ("ＦＵＬＬ width", "full width"),  # NFKC folds compatibility forms
    ("Musée  d'Orsay ", "musee d'orsay"),
    ("Bucureşti", "București"),  # cedilla vs comma below
    ("Washington, D.C.", "Washington DC"),
    ("McDonald's", "McDonalds"),
]

DIFFERENT_ENTRIES = [
    ("Kyiv", "Kiev"),  # a transliteration variant: fuzzy work, not identity
    ("Köln", "Cologne"),  # an exonym
    ("Niger", "Nigeria"),
    ("Austria", "Australia"),
    ("Slovenia", "Slovakia"),
    ("Saint Petersburg", "St. Petersburg"),  # abbreviation: fuzzy work
]


@pytest.mark.parametrize(("a", "b"), SAME_ENTRY)
def test_spellings_of_one_entry_share_normal_form_and_id(a: str, b: str) -> None:
    """Accents, case, punctuation, articles and width variants fold to one id."""
    assert normal_form(a) == normal_form(b)
    assert entry_id(a) == entry_id(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT_ENTRIES)
def test_different_words_are_not_folded(a: str, b: str) -> None:
    """Exonyms, transliterations, abbreviations and false friends keep distinct ids."""
    assert normal_form(a) != normal_form(b)
    assert entry_id(a) != entry_id(b)


def test_examples_of_the_normal_form() -> None:
    """The normal form is lower case, unaccented, single-spaced, without a leading article."""
    assert normal_form("  The   Hague ") == "hague"
    assert normal_form("Saint-Étienne") == "saint etienne"
    assert normal_form("Aix-en-Provence") == "aix en provence"
    assert normal_form("İstanbul") == "istanbul"


def test_an_article_alone_is_kept() -> None:
    """A name that is only an article keeps it, rather than becoming empty."""
    assert normal_form("The") == "the"
    assert normal_form("La") == "la"


def test_text_without_letters_or_digits_has_empty_normal_form() -> None:
    """Punctuation and whitespace alone are not a name."""
    assert normal_form(" -- !? ") == ""
    assert normal_form("\u200b\t") == ""


def test_entry_id_is_128_bits_of_hex() -> None:
    """The id is 32 lowercase hex digits."""
    ident = entry_id("Louvre")
    assert len(ident) == 32 and int(ident, 16) >= 0 and ident == ident.lower()


@given(st.text(max_size=60))
def test_normal_form_is_total_and_canonical(text: str) -> None:
    """Any text normalises without error to single-spaced, case-folded, unaccented words."""
    once = normal_form(text)
    assert "  " not in once and once == once.strip()
    assert once == once.casefold()
    assert not any(unicodedata.category(ch) == "Mn" for ch in once)
    assert not any(unicodedata.category(ch)[0] in "PSC" for ch in once)
