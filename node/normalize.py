"""Normal form and identity of an entry: two spellings with one normal form are one entry.

The normal form folds away what a model varies without meaning a different thing:
Unicode compatibility forms (NFKC), case (casefold), accents and special Latin letters
(São Paulo = Sao Paulo, Łódź = Lodz), punctuation (Saint-Étienne = Saint Etienne, D.C. = DC), one leading
article ("The Louvre" = "Louvre", "L'Aquila" = "Aquila") and runs of whitespace.
It deliberately does *not* equate different words: Kyiv / Kiev or Köln / Cologne are fuzzy
or alias matches, which is the dedup stage's work, not identity.

An entry's id is the 128-bit BLAKE2b hash of its normal form, hex encoded. BLAKE2b (stdlib)
rather than a faster non-cryptographic hash because ids are also the keys of the replicated
set: a model's or peer's text must not be able to forge a collision. Its ~0.4 µs per id is
small beside the normalisation itself.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

__all__ = ["EntryId", "normal_form", "entry_id", "ID_BYTES"]

EntryId = str
"""An entry id: 32 lowercase hex digits (128 bits)."""

ID_BYTES = 16

# Latin letters that NFKD does not decompose into base letter + combining mark.
_SPECIAL_LETTERS = str.maketrans(
    {
        "ø": "o",
        "æ": "ae",
        "œ": "oe",
        "ł": "l",
        "đ": "d",
        "ð": "d",
        "þ": "th",
        "ı": "i",
        "ħ": "h",
        "ŧ": "t",
        "ŋ": "n",
        "ĸ": "k",
        "ſ": "s",
    }
)

# Apostrophes join what they separate ("McDonald's" = "McDonalds"), other punctuation splits.
_APOSTROPHES = re.compile("['\u2019\u2018\u02bc\u02bb`\u00b4]")
# "L'Aquila", "l’Hospitalet": an elided French/Italian/Catalan article before a vowel or h.
_ELIDED_ARTICLE = re.compile("^(?:l|d)['\u2019\u02bc](?=[^\\W\\d_])")
# Initialisms lose their dots so "D.C." = "DC" and "U.S.A." = "USA".
_INITIALISM = re.compile(r"\b(?:[^\W\d_]\.){2,}")
_LEADING_ARTICLES = frozenset(
    {
        # English, French, Spanish, Italian, German: the articles that begin names in those
        # languages ("The Hague", "Le Havre", "La Coruña", "Il Gesù", "Die Brücke").
        "the", "a", "an",
        "le", "la", "les",
        "el", "los", "las",
        "il", "lo", "gli",
        "der", "die", "das",
    }
)  # fmt: skip


def _fold_char(ch: str) -> str:
    category = unicodedata.category(ch)
    if category == "Mn":  # combining mark left by NFKD: an accent
        return ""
    if category[0] in "PSZC":  # punctuation, symbols, separators, controls
        return " "
    return ch


def normal_form(text: str) -> str:
    """The normal form of ``text``: what two spellings of one entry have in common.

    Returns ``""`` for text with no letters or digits (such text is not an entry).
    """
    folded = unicodedata.normalize("NFKC", text).casefold().strip()
    folded = _ELIDED_ARTICLE.sub("", folded)
    folded = _APOSTROPHES.sub("", folded)
    folded = _INITIALISM.sub(lambda match: match.group(0).replace(".", ""), folded)
    folded = unicodedata.normalize("NFKD", folded).translate(_SPECIAL_LETTERS)
    words = "".join(_fold_char(ch) for ch in folded).split()
    if len(words) > 1 and words[0] in _LEADING_ARTICLES:
        words = words[1:]
    return " ".join(words)


def entry_id(text: str) -> EntryId:
    """The id of the entry ``text`` names: BLAKE2b-128 of its normal form, as 32 hex digits."""
    return hashlib.blake2b(normal_form(text).encode("utf-8"), digest_size=ID_BYTES).hexdigest()
