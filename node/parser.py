"""Answer parsing: the entry names in whatever a model answered, and nothing else.

The prompt asks for JSON, but models answer as they like: a JSON array or an object wrapping
a list (of strings, or of objects with a ``name``), fenced or not, after a preamble; a
numbered or bulleted list with descriptions after dashes, colons or parentheses, in markdown
bold or links, under sub-headings; a markdown table; bare lines; a comma-separated sentence;
with closing offers after all of these, and sometimes cut off mid-answer. The answer is
untrusted text: nothing here raises on it, and every bound is a named constant.

One pass over the text as it streams in, in three steps:

1. **Format detection.** A ``[`` or ``{`` followed by a string, bracket or brace opens a JSON
   value, anywhere in a line (after a preamble, inside a code fence). Everything else is read
   line by line: fences, headings, rules and table separators are structure; a list marker
   (``1.``, ``1)``, ``-``, ``*``, ``•``...) makes a list item, a ``|`` row a table row, and
   any other line is bare. Once an answer has a list or a table, its bare lines are
   commentary (preamble, sub-headings, closing offer) and are skipped; so is everything
   after a JSON list. Otherwise bare lines are the entries, minus the ones that read as
   commentary ("Here are...", "Let me know...", "I'm sorry..."); they are held until two
   lines and 80 characters have arrived (or the answer ends), because a lone line may be a
   sentence enumerating several names while many lines are one name each ("Washington,
   D.C." keeps its comma), and because bare text that reads as random (long tokens,
   letter/digit soup, mojibake, three scripts in a word) makes the answer garbage.
2. **Extraction.** JSON goes through an incremental, tolerant scanner of string literals
   (double or single quotes, escapes honoured) that tracks only nesting: every string element
   of a list is an entry; in a list of objects the ``name`` / ``title`` / ``entry`` /
   ``item`` field is the entry, else the object's first string field that is not a
   description, once the object closes; object keys, other fields and lists of sources are
   ignored. A truncated value yields its completed elements and drops the partial one. A
   list item or table row is one entry (the first cell with a letter); a bare line is one
   entry, or several when it reads as an enumeration ("Some cities are Paris, Lyon, and
   Marseille."). A nested list item under an entry is a detail of it when it reads as one
   ("Location: 1st arrondissement"); under a heading item ("- **Art museums:**") an entry.
3. **Cleaning.** Markup (bold, italics, links, code, citations ``[1]``) is removed; a
   leading bold / italic / link span is the name, whole, and what follows its description;
   otherwise the description starts at the first `` – ``, `` — ``, `` - ``, ``: `` or
   `` (`` — except in a JSON string, whose quotes already bound the name ("Frankfurt
   (Oder)"). Wrapping quotes, emoji bullets and trailing punctuation go (``D.C.`` and
   ``St.`` keep their dot); hyphens and inner commas stay. Control, zero-width and
   bidirectional characters are dropped on input; HTML-like text stays as plain text (the
   web UI escapes it). An item is dropped, and counted, when it is empty, has no letter, is a
   URL, reads as a sentence, is mostly symbols or noise, or is longer than
   ``MAX_ENTRY_CHARS`` (never truncated into a wrong name).

Streaming: ``StreamingParser.feed`` returns each entry as soon as its line, JSON string or
object completes; ``parse_answer`` is that parser fed the whole text at once, and every
decision depends only on the text, never on where chunks split, so any chunking gives the
same result. Work is linear in the input: scans resume where they stopped, lookahead is
bounded, bare lines are whitespace-collapsed before any pattern that could backtrack.

Limits: at most ``MAX_ANSWER_CHARS`` of input are read (a line cut there is dropped),
``MAX_ENTRIES_PER_ANSWER`` entries kept (the rest counted as dropped), lines beyond
``MAX_LINE_CHARS`` and JSON strings beyond ``MAX_JSON_STRING_CHARS`` dropped, JSON nesting
beyond ``MAX_JSON_DEPTH`` ignored. Known blind spots, all heuristics: a sub-heading written
as a plain list item ("1. **Art museums**" over an indented list) is taken as an entry; in
a plain list item or line, ": ", " - " and " (" always start a description ("Frankfurt
(Oder)" gives "Frankfurt", "Star Wars: A New Hope" gives "Star Wars"); a list item is
never split at commas, while a sentence is split at every comma ("Bonaire, Saint Eustatius
and Saba" gives two); JSON objects used as maps (``{"Louvre": "..."}``) yield nothing;
a last line cut mid-word by the model ("3. Chemn") is kept, as nothing tells it is partial.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, StrEnum, auto

__all__ = [
    "AnswerFormat",
    "ParseResult",
    "StreamingParser",
    "parse_answer",
    "MAX_ENTRY_CHARS",
    "MAX_ENTRIES_PER_ANSWER",
    "MAX_ANSWER_CHARS",
    "MAX_LINE_CHARS",
    "MAX_JSON_STRING_CHARS",
    "MAX_JSON_DEPTH",
]

log = logging.getLogger(__name__)

MAX_ENTRY_CHARS = 200  # longer items are dropped, never truncated (codec.MAX_TEXT_CHARS)
MAX_ENTRIES_PER_ANSWER = 500  # entries kept per answer; the rest are counted as dropped
MAX_ANSWER_CHARS = 1_000_000  # input characters read; the rest of the answer is ignored
MAX_LINE_CHARS = 20_000  # a longer line is dropped whole (a 500-name sentence still fits)
MAX_JSON_STRING_CHARS = 20_000  # a longer JSON string is skipped without being buffered
MAX_JSON_DEPTH = 64  # deeper JSON nesting is skipped (its brackets are only counted)

_MAX_NAME_WORDS = 16  # more words is prose, not a name
_MAX_WORD_CHARS = 64  # the longest real place name has 58 letters (Llanfair...gogogoch)
_MAX_PROSE_ITEM_WORDS = 8  # an item of a comma-separated sentence is short
_OPENER_LOOKAHEAD = 256  # characters after "[" or "{" inspected to recognise JSON
_MAX_NOISE_SHARE = 0.3  # bare lines with more than this share of noise tokens are garbage
_MIN_LINES_EVIDENCE_CHARS = 80  # bare text read before bare lines are trusted as entries
_MIN_NOISE_CHECK_CHARS = 12  # a shorter item may be noise-like and real ("R2-D2", "B2B")


class AnswerFormat(StrEnum):
    """How an answer gave its entries (the format that gave most of them)."""

    JSON = "json"
    LIST = "list"  # numbered or bulleted lines
    TABLE = "table"  # a markdown table, first named column
    LINES = "lines"  # one bare name per line
    PROSE = "prose"  # names enumerated in a sentence
    EMPTY_LIST = "empty_list"  # an explicitly empty JSON list: the model says none remain
    EMPTY = "empty"  # a blank answer
    GARBAGE = "garbage"  # text with nothing recognisable as a list of names


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What one answer contained."""

    entries: tuple[str, ...]  # cleaned display names in answer order, repeats kept
    dropped: int  # items rejected: not a name, too long, partial, over the count bound
    format: AnswerFormat

    @property
    def failed(self) -> bool:
        """No entries, and not because the model answered an explicitly empty list."""
        return not self.entries and self.format is not AnswerFormat.EMPTY_LIST


def parse_answer(text: str) -> ParseResult:
    """The entries of a whole answer; never raises on any text."""
    parser = StreamingParser()
    parser.feed(text)
    parser.close()
    return parser.result()


# --- input sanitising --------------------------------------------------------------------

# Controls (tab and newline kept; CR dropped so CRLF split across chunks stays one break),
# zero-width and bidirectional formatting characters, BOM, lone surrogates, noncharacters.
_DROPPED_CHARS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\ufeff\ufff9-\ufffb\ufffe\uffff\ud800-\udfff]"
)
_LINE_BREAKS = str.maketrans({"\u2028": "\n", "\u2029": "\n", "\x85": "\n"})


def _sanitize(text: str) -> str:
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


def _has_letter(text: str) -> bool:
    return any(match.group().isalpha() for match in _ALNUM.finditer(text))


def _is_abbreviation(word: str) -> bool:
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
    return head if _has_letter(head) else text


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


def _reads_as_sentence(text: str) -> bool:
    words = text.split()
    if len(words) > _MAX_NAME_WORDS:
        return True
    if text[-1] in "!?":
        return len(words) >= 3
    return text[-1] == "." and len(words) >= 5 and not _is_abbreviation(words[-1])


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


def _noise_chars(text: str) -> int:
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
    if len(name) > MAX_ENTRY_CHARS or not _has_letter(name):
        return False
    if ("://" in name or "www." in name.casefold()) and _URL.fullmatch(name):
        return False
    if len(name) > _MAX_WORD_CHARS and _LONG_TOKEN.search(name):
        return False
    words = name.split()
    if len(words) >= 3 and len(set(words)) == 1:  # "the the the": a degenerate repetition
        return False
    if len(name) >= _MIN_NOISE_CHECK_CHARS and _noise_chars(name) * 2 > len(name):
        return False
    odd_chars = _ODD_CHAR.findall(name)
    if not odd_chars:
        return True
    odd = sum(
        1 for ch in odd_chars if unicodedata.category(ch)[0] != "M"
    )  # marks are letters' parts
    return odd * 5 <= len(name)


def _plain_name(text: str) -> str | None:
    """``_clean_name`` of a text that ``_PLAIN_NAME`` matches: only the bounds to check."""
    if len(text) > MAX_ENTRY_CHARS or not _has_letter(text):
        return None
    if len(text) > _MAX_WORD_CHARS and _LONG_TOKEN.search(text):
        return None
    words = text.split(" ")
    if len(words) > _MAX_NAME_WORDS or (len(words) >= 3 and len(set(words)) == 1):
        return None
    if len(text) >= _MIN_NOISE_CHECK_CHARS and _noise_chars(text) * 2 > len(text):
        return None
    return text


def _clean_name(text: str, *, delimited: bool = False) -> str | None:
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
    if not name or _reads_as_sentence(name):
        return None
    if name.endswith(".") and (
        name.endswith("..") or not _is_abbreviation(name.rsplit(" ", 1)[-1])
    ):
        name = name.rstrip(". ")
    name = name.rstrip("…").rstrip()
    return name if name and _looks_like_name(name) else None


# --- lines -----------------------------------------------------------------------------

_BLANK_LINES = re.compile(r"(?:[ \t]*\n)+")
_FENCE = re.compile(r"(?:```|~~~)")
_RULE = re.compile(r"([-*_=])(?:[ \t]*\1){2,}[ \t]*$")
_HEADING = re.compile(r"#{1,6}(?:\s|$)")
_LIST_MARKER = re.compile(
    r"([ \t]*)"  # indentation
    r"(?:\d{1,4}[.)]|\(\d{1,4}\)|[-*+•·‣◦▪▫●○■□–—►▸▹▶➤➢→✓✔✅])[ \t\u00a0]+"  # 1. 1) (1) - * •
    r"(?:\[[ xX]\][ \t]+)?"  # a task list's checkbox
)
_MARKER_FIRST = "(-*+•·‣◦▪▫●○■□–—►▸▹▶➤➢→✓✔✅"
_EMPHASIS_ONLY = re.compile(r"(?:\*\*([^*]+)\*\*|__([^_]+)__|\*([^*]+)\*|_([^_]+)_)\s*(?::\s*)?$")
_LABEL_VALUE = re.compile(r"[*_]{0,2}[^:*_]{1,40}(?:[*_]{0,2}:|:[*_]{0,2})\s")
_TABLE_SEPARATOR_CELL = re.compile(r"\s*:?-{1,}:?\s*")
# Interjections (followed by punctuation) and phrases that open a model's own commentary.
_CHATTY = re.compile(
    r"(?:(?:sure|certainly|of course|absolutely|okay|ok|alright|great|yes|no problem|note)"
    r"\s*[!,.:—–-]"
    r"|(?:here(?:['’]s| is| are| you go| they are)|i(?:['’](?:m|ve|d|ll)|\s+(?:am|have|hope"
    r"|can|cannot|could|think|will|would|apologi[sz]e|found|do|did|was|believe"
    r"|(?:couldn|can|don|didn|wasn|won)['’]t))|you (?:can|could|might|may|should|will)"
    r"|let me|feel free|hope (?:this|that|you)|please (?:note|let)|if you|these (?:are|were)"
    r"|this (?:is|list)|would you|do you|as an ai|unfortunately|however|additionally"
    r"|alternatively|sorry|apologies|thank|enjoy|happy to|glad to|below (?:is|are)"
    r"|the following|in summary|in total)\b)",
    re.IGNORECASE,
)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?]) +")
_PART_SEPARATOR = re.compile(r"[,;]")
_PARENTHETICAL = re.compile(r"\s*\([^()]*\)")
_CONJUNCTION = re.compile(r"(?:and|or|&)\s+", re.IGNORECASE)
# "Some cities are Paris": the names start after the last linking verb of the first part.
_LEAD_IN = re.compile(
    r"(?:.*\s)?(?:are|is|include|includes|including|such as|namely|like|e\.g\.)\s+"
)
_TRAILING_CLAUSE = re.compile(r"\s+(?:are|is|were|was|which|that|all|both)\s.*$")


def _split_parts(text: str) -> list[str]:
    return [part for part in map(str.strip, _PART_SEPARATOR.split(text)) if part]


def _ends_sentence(text: str) -> bool:
    if text.endswith(("!", "?")):
        return True
    return text.endswith(".") and not _is_abbreviation(text.rsplit(" ", 1)[-1])


def _has_conjunction(parts: list[str], *, loose: bool = False) -> bool:
    """Whether the last part is joined by "and"/"or": "..., and Nice", or "..., Lyon and Nice".

    The second form needs three parts unless ``loose``: "Sarajevo, Bosnia and Herzegovina"
    is one name on a line of its own.
    """
    last = parts[-1]
    if _CONJUNCTION.match(last):
        return True
    return len(parts) >= (2 if loose else 3) and (" and " in last or " or " in last)


def _enumeration(text: str, *, sole: bool) -> list[str] | None:
    """The parts of a bare line that enumerates names, or None if it names one thing.

    Many bare lines are one name each, so only a line that reads as a sentence is split;
    a line that is the whole answer is split from three comma-separated parts.
    """
    if "," not in text and ";" not in text:
        return None
    parts = _split_parts(_PARENTHETICAL.sub("", text))
    if len(parts) < 2:
        return None
    lead = _LEAD_IN.match(parts[0])
    if (
        _has_conjunction(parts, loose=sole)
        or (lead is not None and lead.end() < len(parts[0]))
        or _ends_sentence(text)
        or len(parts) >= (3 if sole else 4)
    ):
        return parts
    return None


def _enumerated_names(parts: list[str], *, loose: bool) -> list[str]:
    """The items of an enumeration, without its lead-in, conjunctions and trailing clause."""
    lead = _LEAD_IN.match(parts[0])
    if lead is not None and lead.end() < len(parts[0]):
        parts[0] = parts[0][lead.end() :]
    last = parts[-1]
    conjunction = _CONJUNCTION.match(last)
    if conjunction:
        parts[-1] = last[conjunction.end() :]
    elif len(parts) >= (2 if loose else 3):
        for word in (" and ", " or "):
            if word in last:
                parts[-1:] = last.split(word, 1)
                break
    last = _TRAILING_CLAUSE.sub("", parts[-1])
    parts[-1] = last.rstrip(".!?") if _ends_sentence(last) else last  # the sentence's full stop
    names = []
    for part in parts:
        part = _CONJUNCTION.sub("", part, count=1) if _CONJUNCTION.match(part) else part
        names.append(part.removeprefix("the "))
    return names


class _Bare(Enum):
    SKIP = auto()  # structure or commentary
    COLON_LIST = auto()  # "Here are some cities: Paris, Lyon, and Nice."
    CANDIDATE = auto()  # a name, or an enumeration of names


def _bare_kind(text: str) -> _Bare:
    if text.endswith(":") or _EMPHASIS_ONLY.match(text):
        return _Bare.SKIP  # a preamble ("Here are 20 more:") or a sub-heading ("**Art**")
    plain = text.lstrip("*_ ")
    colon = text.find(": ")
    if colon > 0:
        parts = _split_parts(text[colon + 2 :])
        if len(parts) >= 3 or (
            len(parts) == 2 and (_has_conjunction(parts) or _CHATTY.match(plain))
        ):
            return _Bare.COLON_LIST
    return _Bare.SKIP if _CHATTY.match(plain) else _Bare.CANDIDATE


def _without_commentary(text: str) -> list[str]:
    """The sentences of a bare line that are not the model's commentary, when it has some.

    "Sure! Other cities include Nice, Lyon, and Metz. Let me know if you need more." gives
    the middle sentence. A line without commentary stays whole: "Louvre – the largest
    museum. Home of the Mona Lisa." is one entry with a description, not two items.
    """
    if ". " not in text and "! " not in text and "? " not in text:
        return [text]
    sentences = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        before = text[start : match.start()]
        if before.endswith(".") and _is_abbreviation(before.rsplit(" ", 1)[-1]):
            continue  # "St. Louis", "Washington, D.C. and ..."
        sentences.append(before)
        start = match.end()
    sentences.append(text[start:])
    if len(sentences) == 1 or not any(_CHATTY.match(s.lstrip("*_ ")) for s in sentences):
        return [text]
    return [s for s in sentences if _bare_kind(s) is not _Bare.SKIP]


def _indent_width(indent: str) -> int:
    return len(indent.expandtabs(4))


# --- JSON --------------------------------------------------------------------------------

_ARRAY_OPEN = re.compile(r"\[\s*(?:\[\s*)*[\"'{\]]")
_ARRAY_OPEN_PREFIX = re.compile(r"\[[\s\[]*")
_EMPTY_ARRAY = re.compile(r"\[\s*\]")
_CHECKBOX_PREFIX = re.compile(r"[ \t]*(?:[-*+•]|\d{1,4}[.)])[ \t]+$")
_OBJECT_OPEN = re.compile(r"\{\s*[\"'}]")
_OBJECT_OPEN_PREFIX = re.compile(r"\{\s*")
_OPENING_BRACKET = re.compile(r"[\[{]")
_JSON_SPACE = re.compile(r"\s*")
_SCALAR = re.compile(r"[^\s,:\[\]{}\"']*")
_STRING_STOP = {'"': re.compile(r'["\\\n]'), "'": re.compile(r"['\\\n]")}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "", "b": "", "f": "", "0": ""}
_SURROGATE = re.compile("[\ud800-\udfff]")
_NAME_KEYS = frozenset({"name", "title", "entry", "item", "label"})
# Fields of an entry object that describe it; its name is in another field.
_DETAIL_KEYS = frozenset(
    {
        "description", "desc", "summary", "details", "detail", "note", "notes", "reason",
        "why", "about", "info", "comment", "comments", "explanation", "url", "link",
        "website", "source", "type", "category", "notability",
    }
)  # fmt: skip
_NON_ENTRY_KEYS = frozenset(
    {"sources", "references", "citations", "notes", "links", "urls", "tags"}
)


def _unescape(raw: str) -> str:
    if "\\" not in raw:
        return raw

    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if len(code) == 5:
            return chr(int(code[1:], 16))
        return _SIMPLE_ESCAPES.get(code, code)

    text = _ESCAPE.sub(replace, raw)
    if _SURROGATE.search(text):  # "\ud83d\ude00" is one character in two escapes
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _sanitize(text)


def _is_name_key(key: str) -> bool:
    key = key.strip().casefold()
    return key in _NAME_KEYS or key.endswith("name")


class _Role(Enum):
    LIST = auto()  # an array whose elements are entries
    ENTRY = auto()  # an object in a LIST: one entry, named by its name field
    WRAPPER = auto()  # an object around lists ({"entries": [...]})
    IGNORED = auto()  # inside an entry object, or a list of sources


class _Frame:
    __slots__ = ("expect_key", "fallback", "is_object", "key", "named", "role")

    def __init__(self, role: _Role, is_object: bool) -> None:
        self.role = role
        self.is_object = is_object
        self.expect_key = is_object
        self.key: str | None = None
        self.named = False  # an ENTRY whose name field has been given
        self.fallback: str | None = None  # an ENTRY's first string value


class _JsonScanner:
    """Tolerant incremental scanner of one JSON value: tracks nesting, reports entries.

    Tokens are consumed only once complete (a string at its closing quote, a scalar at the
    character after it), so where the input is split never changes what is reported.
    """

    def __init__(self, offer: Callable[[str | None], None]) -> None:
        self._offer = offer  # an entry's text, or None for an item that is dropped
        self._stack: list[_Frame] = []
        self._excess_depth = 0  # open brackets beyond MAX_JSON_DEPTH
        self._quote = ""  # the quote of the string being read, "" outside strings
        self._string_scanned = 0  # characters of that string already searched
        self._string_skipped = False  # that string outgrew MAX_JSON_STRING_CHARS
        self._in_scalar = False
        self.saw_items = False  # a list element or entry object was seen
        self.saw_empty_list = False  # a list closed without any element

    def scan(self, buf: str, pos: int) -> tuple[int, bool]:
        """Consume ``buf`` from ``pos``; the position reached and whether the value closed."""
        end = len(buf)
        while pos < end:
            if self._quote:
                pos = self._scan_string(buf, pos)
                if self._quote:
                    return pos, False
                continue
            if self._in_scalar:
                pos = _SCALAR.match(buf, pos).end()  # type: ignore[union-attr]  # matches ""
                if pos == end:
                    return pos, False
                self._in_scalar = False
                continue
            pos = _JSON_SPACE.match(buf, pos).end()  # type: ignore[union-attr]  # matches ""
            if pos == end:
                break
            char = buf[pos]
            pos += 1
            if char == '"' or char == "'":
                self._quote, self._string_scanned, self._string_skipped = char, 0, False
            elif char == "[" or char == "{":
                self._open(is_object=char == "{")
            elif char == "]" or char == "}":
                if self._close():
                    return pos, True
            elif char == "," or char == ":":
                if not self._excess_depth and self._stack[-1].is_object:
                    self._stack[-1].expect_key = char == ","
            else:
                self._scalar()
                self._in_scalar = True
                pos -= 1
        return pos, False

    def finish(self) -> None:
        """The answer ended inside the value: drop the partial element."""
        if self._excess_depth == 0 and self._stack:
            top = self._stack[-1]
            if self._quote and top.role is _Role.LIST:
                self._item(None)
        for frame in self._stack:
            if frame.role is _Role.ENTRY and not frame.named:
                self._item(None)

    def _item(self, text: str | None) -> None:
        self.saw_items = True
        self._offer(text)

    def _scan_string(self, buf: str, pos: int) -> int:
        """Read the open string from ``pos`` (its content start); the new position."""
        stop = _STRING_STOP[self._quote]
        end = len(buf)
        cursor = pos + self._string_scanned
        while True:
            match = stop.search(buf, cursor)
            if match is None:
                cursor = end
                break
            at = match.start()
            if buf[at] == "\\":
                if at + 1 < end:
                    cursor = at + 2
                    continue
                cursor = at  # the escaped character has not arrived yet
                break
            # A closing quote, or a raw line break: a malformed string ends there.
            complete = buf[at] == self._quote
            too_long = self._string_skipped or at - pos > MAX_JSON_STRING_CHARS
            self._quote = ""
            self._on_string(buf[pos:at] if complete and not too_long else None)
            return at + 1
        if self._string_skipped or cursor - pos > MAX_JSON_STRING_CHARS:
            self._string_skipped = True  # stop buffering it: only its end is still needed
            self._string_scanned = 0
            return cursor
        self._string_scanned = cursor - pos
        return pos

    def _on_string(self, raw: str | None) -> None:
        """A complete string (its text between the quotes), or None for a malformed one."""
        if self._excess_depth:
            return
        frame = self._stack[-1]
        text = None if raw is None else _unescape(raw) if "\\" in raw else raw
        if frame.is_object:
            if frame.expect_key:
                frame.key, frame.expect_key = text, False
                return
            frame.expect_key = True  # a value: a key comes next, even without a comma
        if frame.role is _Role.LIST:
            self._item(text)
        elif frame.role is _Role.ENTRY and not frame.named:
            if frame.key is not None and _is_name_key(frame.key):
                frame.named = True
                self._item(text)
            elif (
                frame.fallback is None and (frame.key or "").strip().casefold() not in _DETAIL_KEYS
            ):
                frame.fallback = text

    def _scalar(self) -> None:
        if self._excess_depth:
            return
        frame = self._stack[-1]
        if frame.is_object:
            if frame.expect_key:
                frame.key = None  # a bare word key ({name: ...}): unknown
            frame.expect_key = not frame.expect_key
        elif frame.role is _Role.LIST:
            self._item(None)  # a number or literal where a name belongs

    def _open(self, *, is_object: bool) -> None:
        if self._excess_depth or len(self._stack) >= MAX_JSON_DEPTH:
            self._excess_depth += 1
            return
        parent = self._stack[-1] if self._stack else None
        if parent is None:
            role = _Role.WRAPPER if is_object else _Role.LIST
        elif parent.role is _Role.LIST:
            role = _Role.ENTRY if is_object else _Role.LIST
        elif parent.role is _Role.WRAPPER and not parent.expect_key:
            if is_object:
                role = _Role.WRAPPER
            elif (parent.key or "").strip().casefold() in _NON_ENTRY_KEYS:
                role = _Role.IGNORED
            else:
                role = _Role.LIST
        else:
            role = _Role.IGNORED
        self._stack.append(_Frame(role, is_object))

    def _close(self) -> bool:
        if self._excess_depth:
            self._excess_depth -= 1
            return False
        frame = self._stack.pop()
        if frame.role is _Role.ENTRY:
            self.saw_items = True
            if not frame.named:
                self._item(frame.fallback)
        elif frame.role is _Role.LIST and not self.saw_items:
            self.saw_empty_list = True
        if not self._stack:
            return True
        if self._stack[-1].is_object:
            self._stack[-1].expect_key = True
        return False


# --- the parser --------------------------------------------------------------------------


class _Mode(Enum):
    LINES = auto()  # reading lines
    JSON = auto()  # inside a JSON value
    SKIP_LINE = auto()  # discarding the rest of an over-long line


class _Layout(Enum):
    UNDECIDED = auto()  # no list, table or second bare line yet
    LINES = auto()  # bare lines are the entries
    LIST = auto()  # list items / table rows are the entries; bare lines are commentary
    GARBAGE = auto()  # bare lines read as random text


_FORMAT_PRIORITY = (
    AnswerFormat.JSON,
    AnswerFormat.LIST,
    AnswerFormat.TABLE,
    AnswerFormat.LINES,
    AnswerFormat.PROSE,
)


class StreamingParser:
    """Parses an answer as it streams: ``feed`` chunks, then ``close``, then ``result``.

    ``feed`` and ``close`` return the entries their text completed, in answer order; all
    of them together are ``result().entries``. Not thread-safe; one parser per answer.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._pos = 0  # start of the unconsumed text in _buf
        self._scan = 0  # in LINES mode: where the search for a line end or JSON resumes
        self._mode = _Mode.LINES
        self._layout = _Layout.UNDECIDED
        self._json: _JsonScanner | None = None
        self._after_json = False  # a JSON list was read: later lines are commentary
        self._saw_empty_list = False
        self._pending: list[tuple[str, _Bare]] = []  # bare lines held until the layout is known
        self._bare_chars = 0
        self._bare_noise = 0
        self._prev_table_row = False
        self._line_refuses_json = False  # the current line's first JSON opener followed noise
        self._entry_item_indent: int | None = None  # indent of the last list item taken
        self._entries: list[str] = []
        self._dropped = 0
        self._format_entries: Counter[AnswerFormat] = Counter()
        self._format_items: Counter[AnswerFormat] = Counter()
        self._received = 0
        self._input_cut = False  # the answer was longer than MAX_ANSWER_CHARS
        self._saw_text = False
        self._closed = False
        self._broken = False  # an internal error stopped parsing (logged; never raised)
        self._out: list[str] = []

    def __repr__(self) -> str:
        return (
            f"<StreamingParser {self._mode.name.lower()} layout={self._layout.name.lower()} "
            f"entries={len(self._entries)} dropped={self._dropped}"
            f"{' closed' if self._closed else ''}>"
        )

    def feed(self, chunk: str) -> list[str]:
        """Take the next piece of the answer; the entries it completed."""
        if self._closed:
            raise RuntimeError("StreamingParser.feed() after close()")
        room = MAX_ANSWER_CHARS - self._received
        if len(chunk) > room:
            if not self._input_cut:
                log.warning(
                    "answer longer than %d characters: the rest is ignored", MAX_ANSWER_CHARS
                )
            self._input_cut = True
            chunk = chunk[: max(room, 0)]
        self._received += len(chunk)
        if not chunk or self._broken:
            return []
        text = _sanitize(chunk)
        if not self._saw_text and not text.isspace():
            self._saw_text = bool(text)
        self._buf = self._buf[self._pos :] + text
        self._scan -= self._pos
        self._pos = 0
        return self._run(final=False)

    def close(self) -> list[str]:
        """The answer is complete: the entries still held (a last line, a pending line)."""
        if self._closed:
            return []
        self._closed = True
        out = self._run(final=True)
        log.debug(
            "answer parsed: %d entries, %d dropped, format %s",
            len(self._entries),
            self._dropped,
            self._format(),
        )
        return out

    def result(self) -> ParseResult:
        """What the answer contained (so far, if called before ``close``)."""
        return ParseResult(tuple(self._entries), self._dropped, self._format())

    # -- driving ------------------------------------------------------------------------

    def _run(self, *, final: bool) -> list[str]:
        self._out = []
        if self._broken:
            return []
        try:
            self._advance(final=final)
            if final:
                self._finish()
        except Exception:  # the producer must never die on an answer: log the bug, stop
            log.exception("answer parser failed; ignoring the rest of this answer")
            self._broken = True
        return self._out

    def _advance(self, *, final: bool) -> None:
        while self._pos < len(self._buf):
            if self._mode is _Mode.JSON:
                assert self._json is not None
                self._pos, closed = self._json.scan(self._buf, self._pos)
                if not closed:
                    return
                self._end_json()
            elif self._mode is _Mode.SKIP_LINE:
                newline = self._buf.find("\n", self._pos)
                if newline < 0:
                    self._pos = len(self._buf)
                    return
                self._next_line(newline + 1)
                self._mode = _Mode.LINES
            elif not self._line_step(final=final):
                return

    def _finish(self) -> None:
        if self._mode is _Mode.JSON:
            assert self._json is not None
            self._json.finish()
            self._end_json()
        if self._pending:
            pending, self._pending = self._pending, []
            if self._is_noisy():
                self._layout = _Layout.GARBAGE
            else:
                for held, held_kind in pending:
                    self._emit_bare(held, held_kind, sole=len(pending) == 1)

    def _line_step(self, *, final: bool) -> bool:
        """Handle the next line or JSON opener; False when more input is needed."""
        buf, start = self._buf, self._pos
        if buf[start] in " \t\n":
            blank = _BLANK_LINES.match(buf, start)
            if blank:  # a run of blank lines in one step: they only end a table
                self._next_line(blank.end())
                self._prev_table_row = False
                return True
        newline = buf.find("\n", self._scan)
        line_end = newline if newline >= 0 else len(buf)
        region_end = min(line_end, start + MAX_LINE_CHARS)
        cursor = self._scan
        while True:
            match = _OPENING_BRACKET.search(buf, cursor, region_end)
            if match is None:
                break
            at = match.start()
            window = buf[at : at + _OPENER_LOOKAHEAD]
            is_array = window[0] == "["
            if is_array and _EMPTY_ARRAY.match(window) and _CHECKBOX_PREFIX.match(buf, start, at):
                cursor = at + 1  # "- [ ] Bern": a task list's checkbox, not an empty array
                continue
            if (_ARRAY_OPEN if is_array else _OBJECT_OPEN).match(window):
                # Random text holds '["' too: not JSON after noise. Once a line's first
                # opener is refused, so are the others (and the noise is measured once).
                self._line_refuses_json = self._line_refuses_json or self._is_noisy(buf[start:at])
                if not self._line_refuses_json:
                    self._start_json(at)
                    return True
                cursor = at + 1
                continue
            prefix = _ARRAY_OPEN_PREFIX if is_array else _OBJECT_OPEN_PREFIX
            if not final and len(window) < _OPENER_LOOKAHEAD and prefix.fullmatch(window):
                self._scan = at  # undecided until the next non-blank character arrives
                return False
            cursor = at + 1
        if newline < 0:
            if len(buf) - start > MAX_LINE_CHARS:
                self._drop_long_line()
                self._mode = _Mode.SKIP_LINE
                self._next_line(len(buf))
                return False
            if not final:
                self._scan = len(buf)
                return False
            self._next_line(len(buf))
            if not self._input_cut:
                self._line(buf[start:])
            elif buf[start:].strip() and not self._after_json:
                self._dropped += 1  # we cut this line at MAX_ANSWER_CHARS: it is partial
            return False
        self._next_line(newline + 1)
        if newline - start > MAX_LINE_CHARS:
            self._drop_long_line()
        else:
            self._line(buf[start:newline])
        return True

    def _next_line(self, pos: int) -> None:
        self._pos = self._scan = pos
        self._line_refuses_json = False

    def _drop_long_line(self) -> None:
        if not self._after_json:
            self._dropped += 1

    def _start_json(self, at: int) -> None:
        self._line_refuses_json = False
        self._mode = _Mode.JSON
        self._pos = at
        self._json = _JsonScanner(self._offer_json)
        self._prev_table_row = False

    def _end_json(self) -> None:
        assert self._json is not None
        if self._json.saw_items:
            self._after_json = True
            self._pending.clear()
        elif self._json.saw_empty_list:
            self._saw_empty_list = True
        self._json = None
        self._mode = _Mode.LINES
        self._scan = self._pos

    def _offer_json(self, text: str | None) -> None:
        self._pending.clear()  # what came before the JSON was its preamble
        self._offer(text, AnswerFormat.JSON)

    # -- lines --------------------------------------------------------------------------

    def _line(self, line: str) -> None:
        stripped = line.strip()
        while stripped.startswith(">"):  # a blockquote
            stripped = stripped[1:].lstrip()
        table_row = stripped.startswith("|")
        if not table_row:
            self._prev_table_row = False
        if not stripped or self._after_json:
            return
        first = stripped[0]  # cheap dispatch before the regular expressions
        if first in "`~" and _FENCE.match(stripped):
            return
        if (first in "-*_=" and _RULE.match(stripped)) or (
            first == "#" and _HEADING.match(stripped)
        ):
            self._entry_item_indent = None
            return
        if table_row:
            self._table_row(stripped)
            return
        marker = _LIST_MARKER.match(line) if first in _MARKER_FIRST or first.isdigit() else None
        if marker is not None:
            self._list_item(line[marker.end() :].strip(), _indent_width(marker.group(1)))
        elif self._layout is not _Layout.LIST:
            self._bare_line(stripped)

    def _list_item(self, text: str, indent: int) -> None:
        self._layout = _Layout.LIST
        self._pending.clear()  # bare lines before a list were its preamble
        parent = self._entry_item_indent
        nested = parent is not None and indent > parent
        if nested and (_LABEL_VALUE.match(text) or _reads_as_sentence(text or ".")):
            return  # a detail of the entry above ("Location: 1st arrondissement")
        if not text or text.rstrip("*_ ").endswith(":"):
            self._entry_item_indent = None  # a heading item: its sub-items are the entries
            return
        if not nested:
            self._entry_item_indent = indent
        self._offer(text, AnswerFormat.LIST)

    def _table_row(self, row: str) -> None:
        first_row = not self._prev_table_row
        self._prev_table_row = True
        self._layout = _Layout.LIST
        self._pending.clear()
        if first_row:
            return  # a markdown table's first row is its header
        cells = row.strip("|").split("|")
        if all(_TABLE_SEPARATOR_CELL.fullmatch(cell) for cell in cells):
            return
        named = next((cell for cell in cells if _has_letter(cell)), None)
        self._offer(named, AnswerFormat.TABLE)

    def _bare_line(self, text: str) -> None:
        if self._layout is _Layout.GARBAGE:
            return
        # One space between words: the patterns below then never backtrack over a long run.
        text = " ".join(text.split())
        self._bare_chars += len(text)
        self._bare_noise += _noise_chars(text)
        for piece in _without_commentary(text):
            self._bare_piece(piece)

    def _bare_piece(self, text: str) -> None:
        kind = _bare_kind(text)
        if kind is _Bare.SKIP:
            return
        if self._layout is _Layout.UNDECIDED:
            self._pending.append((text, kind))
            if len(self._pending) < 2 or self._bare_chars < _MIN_LINES_EVIDENCE_CHARS:
                return
            self._layout = _Layout.LINES
            pending, self._pending = self._pending, []
            if self._is_noisy():
                self._layout = _Layout.GARBAGE
                return
            for held, held_kind in pending:
                self._emit_bare(held, held_kind, sole=False)
            return
        if self._is_noisy():
            self._layout = _Layout.GARBAGE
            return
        self._emit_bare(text, kind, sole=False)

    def _is_noisy(self, more: str = "") -> bool:
        """Whether the bare text so far (and ``more``) reads as random text."""
        noise = self._bare_noise + (_noise_chars(more) if more else 0)
        return noise > _MAX_NOISE_SHARE * (self._bare_chars + len(more))

    def _emit_bare(self, text: str, kind: _Bare, *, sole: bool) -> None:
        if kind is _Bare.COLON_LIST:
            parts: list[str] | None = _split_parts(
                _PARENTHETICAL.sub("", text[text.find(": ") + 2 :])
            )
        else:
            parts = _enumeration(text, sole=sole)
        if not parts:
            lead = _LEAD_IN.match(text) if sole and _ends_sentence(text) else None
            if lead is not None and lead.end() < len(text):  # "One more is Galdakao."
                self._offer(text[lead.end() :].rstrip(".!?"), AnswerFormat.PROSE)
            else:
                self._offer(text, AnswerFormat.LINES)
            return
        for name in _enumerated_names(parts, loose=sole or kind is _Bare.COLON_LIST):
            if len(name.split()) > _MAX_PROSE_ITEM_WORDS:
                self._offer(None, AnswerFormat.PROSE)
            else:
                self._offer(name, AnswerFormat.PROSE)

    # -- entries ------------------------------------------------------------------------

    def _offer(self, text: str | None, fmt: AnswerFormat) -> None:
        self._format_items[fmt] += 1
        name = None if text is None else _clean_name(text, delimited=fmt is AnswerFormat.JSON)
        if name is None or len(self._entries) >= MAX_ENTRIES_PER_ANSWER:
            self._dropped += 1
            return
        self._entries.append(name)
        self._format_entries[fmt] += 1
        self._out.append(name)

    def _format(self) -> AnswerFormat:
        for counts in (self._format_entries, self._format_items):
            if counts:
                best = max(counts.values())
                return next(fmt for fmt in _FORMAT_PRIORITY if counts[fmt] == best)
        if self._saw_empty_list:
            return AnswerFormat.EMPTY_LIST
        return AnswerFormat.GARBAGE if self._saw_text else AnswerFormat.EMPTY
