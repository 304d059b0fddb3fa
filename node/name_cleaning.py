"""Cleaning one answer item (a list item, line, table cell or JSON string) into a name.

Markup (bold, italics, links, code, citations ``[1]``) is removed; a leading bold / italic /
link span is the name, whole, and what follows its description; otherwise the description
starts at the first `` – ``, `` — ``, `` - ``, ``: `` or `` (`` — except in a JSON string,
whose quotes already bound the name ("Frankfurt (Oder)"). Wrapping quotes, emoji bullets and
trailing punctuation go (``D.C.`` and ``St.`` keep their dot); hyphens and inner commas stay.
Control and format characters (zero-width, bidirectional, tags) are dropped on input (``sanitize``);
HTML-like text stays as plain text (the web UI escapes it). An item is rejected when it is
empty, has no letter, is a URL, reads as a sentence, is mostly symbols or noise, or is longer
than ``MAX_ENTRY_CHARS`` (never truncated into a wrong name).

Noise is measured here too (``noise_chars``): tokens that no answer contains but random or
broken text does, which the line reader also uses to call a whole answer garbage.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "MAX_ENTRY_CHARS",
    "clean_name",
    "has_letter",
    "is_abbreviation",
    "noise_chars",
    "reads_as_sentence",
    "sanitize",
]

MAX_ENTRY_CHARS = 200  # longer items are dropped, never truncated (codec.MAX_TEXT_CHARS)

_MAX_NAME_WORDS = 16  # more words is prose, not a name
_MAX_WORD_CHARS = 64  # the longest real place name has 58 letters (Llanfair...gogogoch)
_MIN_NOISE_CHECK_CHARS = 12  # a shorter item may be noise-like and real ("R2-D2", "B2B")


# --- input sanitising --------------------------------------------------------------------

# Controls (tab and newline kept; CR dropped so CRLF split across chunks stays one break),
# every format character (Unicode category Cf: zero-width, bidirectional, BOM, and the
# invisible tag characters U+E0000–E007F that can smuggle hidden text into the names other
# nodes put in their prompts), lone surrogates, noncharacters.
_DROPPED_CHARS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891"
    "\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ufffe\uffff"
    "\ud800-\udfff\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e007f]"
)
_LINE_BREAKS = str.maketrans({"\u2028": "\n", "\u2029": "\n", "\x85": "\n"})


def sanitize(text: str) -> str:
    """``text`` without the characters no name holds; Unicode line separators become newlines."""
    if "\u2028" in text or "\u2029" in text or "\x85" in text:
        text = text.translate(_LINE_BREAKS)
    return _DROPPED_CHARS.sub("", text)


# --- cleaning one item into a name ------------------------------------------------------

_CITATION = re.compile(r"\[\d{1,3}\]")
_LEAD_SPANS = (
    re.compile(r"\*\*([^*]+)\*\*"),  # **bold**
    re.compile(r"__([^_]+)__"),  # __bold__
    re.compile(r"\[\[([^\[\]|]+)(?:\|[^\[\]]*)?\]\]"),  # [[wiki link]]
    re.compile(r"\[([^\[\]]+)\]\([^()]*\)"),  # [link](url)
    re.compile(r"\*(?!\s)([^*]+)\*"),  # *italic*
    re.compile(r"_(?!\s)([^_]+)_(?!\w)"),  # _italic_
    re.compile(r"`([^`]+)`"),  # `code`
)
_LINK = re.compile(r"\[\[([^\[\]|]*)(?:\|[^\[\]]*)?\]\]|\[([^\[\]]*)\]\([^()]*\)")
_DESCRIPTION_SEP = re.compile(r" (?:-{1,3}|[–—]) |—|: | \(| \| ")
_EDGE_LEAD = " *_`~#>|,;:•·-–—="
_EDGE_BEFORE_SPAN = " ~#>|,;:•·-–—="  # keeps the * _ ` [ that open a leading span
_EDGE_TRAIL = " *_`~|,;:•·-–—="
_QUOTE_PAIRS = {
    '"': '"',
    "'": "'",
    "“": "”",
    "”": "”",
    "„": "“",
    "«": "»",
    "»": "«",
    "‘": "’",
    "「": "」",
}
_OPENING_PAIRS = {"(": ")", "[": "]", "{": "}"}
_CLOSING_PAIRS = {")": "(", "]": "[", "}": "{"}
_ABBREVIATIONS = frozenset(
    {"st", "mt", "ft", "co", "inc", "ltd", "corp", "jr", "sr", "bros", "no", "dr"}
)
_ALNUM = re.compile(r"[^\W\d_]")  # letters, and numerals such as "½" that \d leaves out
# Words of letters and digits joined by single spaces, hyphens or apostrophes: "Saint-Étienne",
# "Musée d'Orsay". Such a text has no markup, description, edge or quote to clean.
_PLAIN_NAME = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*(?: [^\W_]+(?:[-'’][^\W_]+)*)*")
_LONG_TOKEN = re.compile(rf"\S{{{_MAX_WORD_CHARS + 1}}}")
_URL = re.compile(r"<?(?:[a-z][a-z0-9+.-]*://|www\.)\S*", re.IGNORECASE)
# Characters that do not occur in names; a name made of many of them is noise, not a name.
# "<" and ">" are allowed: HTML-like text stays as text, the web UI escapes it.
_ODD_CHAR = re.compile(r"[^\w\s\-'’‘.,&()/!?:+#\"“”«»„–—·<>]")


def has_letter(text: str) -> bool:
    """Whether ``text`` holds at least one letter (of any script)."""
    return any(match.group().isalpha() for match in _ALNUM.finditer(text))


def is_abbreviation(word: str) -> bool:
    """Whether a word's final dot marks an abbreviation ("St.", "D.C.") rather than an end."""
    stem = word.rstrip(".")
    return "." in stem or len(stem) == 1 or stem.casefold() in _ABBREVIATIONS


def _leading_span(text: str) -> str | None:
    """The content of a bold / italic / link / code span that opens ``text``, if any."""
    if not text or text[0] not in "*_[`":
        return None
    for pattern in _LEAD_SPANS:
        match = pattern.match(text)
        if match:
            return match.group(1)
    return None


def _strip_markup(text: str) -> str:
    if "[" in text:
        text = _LINK.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2), text)
    return text.replace("**", "").replace("__", "").replace("`", "")


def _description_head(text: str) -> str:
    match = _DESCRIPTION_SEP.search(text)
    if match is None:
        return text
    head = text[: match.start()]
    # "2001: A Space Odyssey": a head without letters is not the name, the whole is.
    return head if has_letter(head) else text


def _strip_edges(text: str) -> str:
    """Without the punctuation, emoji, wrapping quotes and unpaired brackets around a name."""
    for _ in range(3):  # '["Louvre",' needs the bracket, then the comma, then the quotes
        before = text
        text = text.lstrip(_EDGE_LEAD).rstrip(_EDGE_TRAIL)
        while text and (unicodedata.category(text[0]) == "So" or text[0] == "\ufe0f"):
            text = text[1:].lstrip(_EDGE_LEAD)  # leading emoji used as a bullet
        while text and (unicodedata.category(text[-1]) == "So" or text[-1] == "\ufe0f"):
            text = text[:-1].rstrip(_EDGE_TRAIL)
        if text and text[0] in _OPENING_PAIRS and _OPENING_PAIRS[text[0]] not in text:
            text = text[1:]
        if text and text[-1] in _CLOSING_PAIRS and _CLOSING_PAIRS[text[-1]] not in text:
            text = text[:-1]
        if len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
            text = text[1:-1]
        if text == before:
            break
    return text


def reads_as_sentence(text: str) -> bool:
    """Whether a non-empty ``text`` is prose rather than a name: long, or ending like a sentence."""
    words = text.split()
    if len(words) > _MAX_NAME_WORDS:
        return True
    if text[-1] in "!?":
        return len(words) >= 3
    return text[-1] == "." and len(words) >= 5 and not is_abbreviation(words[-1])


# Noise: tokens that no answer contains but random or broken text does — symbols and
# mojibake, letter/digit/case soup ("aK3xQ9"), letters of three scripts in one word.
_NOISE_CHAR = re.compile(
    "[\ufffd=@\\\\^{}~\u00d7\u00f7\ue000-\uf8ff"  # replacement char, symbols, private use
    "\u00a1-\u00a9\u00ab-\u00b4\u00b6-\u00b9\u00bb-\u00bf]"  # Latin-1 symbols: mojibake
)
_SHAPE_SWITCH = re.compile(r"[a-z][A-Z]|[A-Za-z][0-9]|[0-9][A-Za-z]")
_FIRST_NON_LATIN = "\u0250"  # below: ASCII, Latin-1 and Latin Extended-A/B
_SCRIPT_ALIASES = {
    "HIRAGANA": "CJK",
    "KATAKANA": "CJK",
    "KATAKANA-HIRAGANA": "CJK",
}  # one script: Japanese


def _mixes_scripts(token: str) -> bool:
    scripts: set[str] = set()
    for char in token:
        if char.isalpha():
            script = unicodedata.name(char, "?").split(" ", 1)[0]
            scripts.add(_SCRIPT_ALIASES.get(script, script))
            if len(scripts) > 2:
                return True
    return False


def noise_chars(text: str) -> int:
    """Characters of ``text`` in tokens that read as random or broken text."""
    latin_only = text.isascii() or max(text) < _FIRST_NON_LATIN  # then no script can mix
    if latin_only and not (
        _NOISE_CHAR.search(text) or _SHAPE_SWITCH.search(text) or _LONG_TOKEN.search(text)
    ):
        return 0
    noise = 0
    for token in text.split():
        if (
            len(token) > _MAX_WORD_CHARS
            or _NOISE_CHAR.search(token)
            or len(_SHAPE_SWITCH.findall(token)) >= 2
            or (not latin_only and max(token) >= _FIRST_NON_LATIN and _mixes_scripts(token))
        ):
            noise += len(token)
    return noise


def _looks_like_name(name: str) -> bool:
    if len(name) > MAX_ENTRY_CHARS or not has_letter(name):
        return False
    if ("://" in name or "www." in name.casefold()) and _URL.fullmatch(name):
        return False
    if len(name) > _MAX_WORD_CHARS and _LONG_TOKEN.search(name):
        return False
    words = name.split()
    if len(words) >= 3 and len(set(words)) == 1:  # "the the the": a degenerate repetition
        return False
    if len(name) >= _MIN_NOISE_CHECK_CHARS and noise_chars(name) * 2 > len(name):
        return False
    odd_chars = _ODD_CHAR.findall(name)
    if not odd_chars:
        return True
    odd = sum(
        1 for ch in odd_chars if unicodedata.category(ch)[0] != "M"
    )  # marks are letters' parts
    return odd * 5 <= len(name)


def _plain_name(text: str) -> str | None:
    """``clean_name`` of a text that ``_PLAIN_NAME`` matches: only the bounds to check."""
    if len(text) > MAX_ENTRY_CHARS or not has_letter(text):
        return None
    if len(text) > _MAX_WORD_CHARS and _LONG_TOKEN.search(text):
        return None
    words = text.split(" ")
    if len(words) > _MAX_NAME_WORDS or (len(words) >= 3 and len(set(words)) == 1):
        return None
    if len(text) >= _MIN_NOISE_CHECK_CHARS and noise_chars(text) * 2 > len(text):
        return None
    return text


def clean_name(text: str, *, delimited: bool = False) -> str | None:
    """The display name in one item (list item, line, table cell, JSON string), or None.

    ``delimited``: the item's bounds are the name's (a JSON string), so a parenthesis or a
    dash in it is part of the name: "Frankfurt (Oder)", "Sants - Badal". So is everything
    in a leading bold or link span.
    """
    text = " ".join(unicodedata.normalize("NFC", text).split())
    if _PLAIN_NAME.fullmatch(text):  # most names: nothing to clean
        return _plain_name(text)
    if "[" in text:
        text = _CITATION.sub("", text)
    text = text.lstrip(_EDGE_BEFORE_SPAN)
    span = _leading_span(text)
    if span is not None:
        text = span.strip()
        if _PLAIN_NAME.fullmatch(text):
            return _plain_name(text)
    text = _strip_markup(text).strip()
    name = _strip_edges(text if delimited or span is not None else _description_head(text))
    if not name or reads_as_sentence(name):
        return None
    if name.endswith(".") and (name.endswith("..") or not is_abbreviation(name.rsplit(" ", 1)[-1])):
        name = name.rstrip(". ")
    name = name.rstrip("…").rstrip()
    return name if name and _looks_like_name(name) else None
