"""Tests for node.parser: entry names out of whatever a model answered, whole or streamed."""

from __future__ import annotations

import json
import logging
import random
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain, pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.parser import (
    MAX_ANSWER_CHARS,
    MAX_ENTRIES_PER_ANSWER,
    MAX_ENTRY_CHARS,
    MAX_JSON_DEPTH,
    MAX_JSON_STRING_CHARS,
    MAX_LINE_CHARS,
    AnswerFormat,
    ParseResult,
    StreamingParser,
    parse_answer,
)
from tests.node.parser_cases import CASES, Case

# --- helpers ---------------------------------------------------------------------------


def stream(chunks: list[str]) -> tuple[list[str], ParseResult]:
    """Feed ``chunks`` to a new parser; what feed/close returned, and the result."""
    parser = StreamingParser()
    yielded: list[str] = []
    for chunk in chunks:
        yielded += parser.feed(chunk)
    yielded += parser.close()
    return yielded, parser.result()


def split_at(text: str, cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(cuts), len(text)]
    return [text[a:b] for a, b in pairwise(bounds)]


def fixed_size_chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def no_parser_errors_logged() -> Iterator[None]:
    """Fail if the parser's last-resort guard caught (and logged) an internal error."""
    recorder = _Recorder()
    logger = logging.getLogger("node.parser")
    logger.addHandler(recorder)
    try:
        yield
    finally:
        logger.removeHandler(recorder)
    assert not recorder.records, [r.getMessage() for r in recorder.records]


def assert_clean_entries(result: ParseResult) -> None:
    assert len(result.entries) <= MAX_ENTRIES_PER_ANSWER
    for entry in result.entries:
        assert entry == entry.strip() and entry
        assert len(entry) <= MAX_ENTRY_CHARS
        assert any(ch.isalpha() for ch in entry)
        assert "\n" not in entry
        assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in entry)
        assert not any(ch in "\u200b\u200c\u200d\u2060\ufeff\u202e" for ch in entry)


# --- the table of real answers ---------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_table_answer_gives_exactly_the_expected_entries(case: Case) -> None:
    result = parse_answer(case.answer)
    assert result.entries == case.entries
    assert result.format is case.format
    if case.dropped is not None:
        assert result.dropped == case.dropped
    assert result.failed == (not case.entries and case.format is not AnswerFormat.EMPTY_LIST)


@pytest.mark.parametrize("case", CASES, ids=[case.label for case in CASES])
def test_table_answer_streamed_in_any_chunking_gives_the_same_result(case: Case) -> None:
    whole = parse_answer(case.answer)
    rng = random.Random(case.label)
    chunkings = [fixed_size_chunks(case.answer, size) for size in (1, 2, 3, 7, 64)]
    for _ in range(20):
        cuts = [rng.randrange(len(case.answer) + 1) for _ in range(rng.randrange(12))]
        chunkings.append(split_at(case.answer, cuts))
    for chunks in chunkings:
        yielded, result = stream(chunks)
        assert result == whole
        assert tuple(yielded) == whole.entries


# --- streaming yields entries as they complete -----------------------------------------


def test_json_string_is_yielded_when_its_closing_quote_arrives() -> None:
    answer = '{"entries": ["Louvre", "Musée d\\"Orsay\\"", "Centre Pompidou"]}'
    parser = StreamingParser()
    yielded_at = {}
    for index, char in enumerate(answer):
        for entry in parser.feed(char):
            yielded_at[entry] = index
    assert parser.close() == []
    assert yielded_at == {
        "Louvre": answer.index('"Louvre"') + len('"Louvre"') - 1,
        'Musée d"Orsay"': answer.index('\\"",') + 2,
        "Centre Pompidou": answer.index('"Centre Pompidou"') + len('"Centre Pompidou"') - 1,
    }


def test_json_object_entry_is_yielded_when_its_name_completes() -> None:
    parser = StreamingParser()
    assert parser.feed('[{"name": "Louvre"') == ["Louvre"]
    assert parser.feed(', "description": "art"}, {"description": "sculpture", ') == []
    assert parser.feed('"museum": "Rodin"') == []  # not a name key: waits for the object to end
    assert parser.feed("}]") == ["Rodin"]
    assert parser.close() == []


def test_list_item_is_yielded_when_its_line_ends() -> None:
    parser = StreamingParser()
    assert parser.feed("Here are more museums:\n\n1. **Louvre** – art") == []
    assert parser.feed(" museum\n2. Orsay") == ["Louvre"]
    assert parser.feed("\n") == ["Orsay"]
    assert parser.feed("3. Rodin") == []
    assert parser.close() == ["Rodin"]  # a final line without a newline
    assert parser.result().entries == ("Louvre", "Orsay", "Rodin")


def test_bare_lines_are_held_only_until_the_layout_is_known() -> None:
    parser = StreamingParser()
    names = [
        "Aix-en-Provence", "Clermont-Ferrand", "Saint-Étienne", "Boulogne-Billancourt",
        "Villeurbanne", "Montpellier", "Saint-Denis", "Argenteuil",
    ]  # fmt: skip
    yielded_by_feed = [parser.feed(name + "\n") for name in names]
    assert yielded_by_feed[0] == []  # one bare line might be a sentence of several names
    assert list(chain(*yielded_by_feed)) == names  # all before close, in order
    assert yielded_by_feed[-2:] == [[names[-2]], [names[-1]]]  # once known, each line at once
    assert parser.close() == []


def test_truncated_json_stream_drops_the_partial_element_at_close() -> None:
    parser = StreamingParser()
    assert parser.feed('["Bergen", "Tromsø", "Trond') == ["Bergen", "Tromsø"]
    assert parser.close() == []
    assert parser.result() == ParseResult(("Bergen", "Tromsø"), 1, AnswerFormat.JSON)


def test_result_before_close_shows_the_entries_so_far() -> None:
    parser = StreamingParser()
    parser.feed("- Graz\n- Linz\n- Salz")
    assert parser.result().entries == ("Graz", "Linz")
    parser.close()
    assert parser.result().entries == ("Graz", "Linz", "Salz")


def test_close_twice_is_harmless_and_feed_after_close_is_a_bug() -> None:
    parser = StreamingParser()
    parser.feed('["Bern"]')
    parser.close()
    assert parser.close() == []
    with pytest.raises(RuntimeError):
        parser.feed("more")


def test_repr_shows_the_parser_state() -> None:
    parser = StreamingParser()
    parser.feed('- Bern\n- Basel\n["Zug"')
    assert repr(parser) == "<StreamingParser json layout=list entries=3 dropped=0>"


# --- cleaning ---------------------------------------------------------------------------


def test_control_zero_width_and_bidi_characters_are_dropped() -> None:
    answer = '\ufeff["Lou\u200bvre", "\x00Or\u00adsay\x07", "\u202eRodin\u202c", "Gui\u2060met"]'
    assert parse_answer(answer).entries == ("Louvre", "Orsay", "Rodin", "Guimet")


def test_unicode_line_separators_break_lines() -> None:
    assert parse_answer("- Bern\u2028- Basel\u2029- Genève").entries == ("Bern", "Basel", "Genève")


def test_escaped_surrogate_pair_becomes_one_character() -> None:
    assert parse_answer('["Caf\\u00e9 \\ud83c\\udf70 Sacher"]').entries == ("Café 🍰 Sacher",)


def test_names_in_decomposed_unicode_are_composed() -> None:
    decomposed = unicodedata.normalize("NFD", "Saint-Étienne")
    assert parse_answer(f'["{decomposed}"]').entries == ("Saint-Étienne",)


@pytest.mark.parametrize(
    "name",
    [
        "Washington, D.C.",
        "Frankfurt (Oder)",
        "Sant Gervasi - Galvany",
        "Stratford-upon-Avon",
        "R2-D2",
        "C++",
        "AT&T",
        "Yahoo!",
        "'s-Hertogenbosch",
    ],
)
def test_json_strings_keep_what_belongs_to_the_name(name: str) -> None:
    assert parse_answer(json.dumps([name])).entries == (name,)


# --- bounds ----------------------------------------------------------------------------


def _name_of_length(length: int) -> str:
    words = [f"Aberystwyth{letter * 5}" for letter in "abcdefghijklmnop"]
    name = " ".join(words)[:length]
    assert len(name) == length and not name.endswith(" ")
    return name


def test_entry_of_max_length_is_kept_and_a_longer_one_dropped_whole() -> None:
    longest, too_long = _name_of_length(MAX_ENTRY_CHARS), _name_of_length(MAX_ENTRY_CHARS + 1)
    result = parse_answer(json.dumps([longest, too_long, "Bern"]))
    assert result.entries == (longest, "Bern")
    assert result.dropped == 1
    result = parse_answer(f"- {too_long}\n- Bern")
    assert result.entries == ("Bern",) and result.dropped == 1


def test_entries_beyond_the_per_answer_bound_are_ignored_and_counted() -> None:
    names = [
        f"Town {chr(0x41 + i // 26)}{chr(0x61 + i % 26)}"
        for i in range(MAX_ENTRIES_PER_ANSWER + 100)
    ]
    answer = json.dumps({"entries": names})
    result = parse_answer(answer)
    assert result.entries == tuple(names[:MAX_ENTRIES_PER_ANSWER])
    assert result.dropped == 100
    yielded, streamed = stream(fixed_size_chunks(answer, 5))
    assert streamed == result and len(yielded) == MAX_ENTRIES_PER_ANSWER


def test_input_beyond_max_answer_chars_is_ignored() -> None:
    head = "- Louvre\n"
    answer = head + "\n" * (MAX_ANSWER_CHARS - len(head) - 3) + "- Orsay\n"
    result = parse_answer(answer)
    assert result.entries == ("Louvre",)  # only "- O" of the last line was read: partial
    assert result.dropped == 1
    assert stream(fixed_size_chunks(answer, 100_000))[1] == result


def test_over_long_line_is_dropped_and_the_next_lines_read() -> None:
    answer = "- Bern\n- " + "x" * MAX_LINE_CHARS + "\n- Basel\n"
    result = parse_answer(answer)
    assert result.entries == ("Bern", "Basel") and result.dropped == 1
    assert stream(fixed_size_chunks(answer, 997))[1] == result


def test_over_long_json_string_is_skipped_and_the_next_elements_read() -> None:
    answer = '["Bern", "' + "y" * (MAX_JSON_STRING_CHARS + 1) + '", "Basel"]'
    result = parse_answer(answer)
    assert result.entries == ("Bern", "Basel") and result.dropped == 1
    assert stream(fixed_size_chunks(answer, 997))[1] == result


def test_json_nested_beyond_max_depth_is_skipped() -> None:
    deep = "[" * (MAX_JSON_DEPTH + 1) + '"Deep"' + "]" * (MAX_JSON_DEPTH + 1)
    assert parse_answer(f'[{deep}, "Shallow"]').entries == ("Shallow",)
    nested = "[" * MAX_JSON_DEPTH + '"Nested"' + "]" * MAX_JSON_DEPTH
    assert parse_answer(nested).entries == ("Nested",)


def test_pathological_megabyte_inputs_are_parsed_in_linear_time() -> None:
    """Each of these would take minutes with quadratic scanning; together they take ~1 s."""
    for answer in (
        "[" * MAX_ANSWER_CHARS,
        "a" * MAX_ANSWER_CHARS,
        '["' + "\\" * MAX_ANSWER_CHARS,
        "[a](" * 250_000,
    ):
        assert parse_answer(answer).entries == ()


@pytest.mark.parametrize(
    "line",
    [
        "**Art**{gap}x",
        "Louvre{gap}Orsay, Rodin",
        "Paris (the capital), Lyon{gap}Nice",
        "A, B, C{gap}D",
    ],
)
def test_long_whitespace_runs_inside_a_line_cost_no_backtracking(line: str) -> None:
    """A run of spaces inside a line must not make any pattern quadratic (seconds, not ms)."""
    answer = line.format(gap=" " * (MAX_LINE_CHARS - 100))
    assert stream(fixed_size_chunks(answer, 4_096))[1] == parse_answer(answer)


# --- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "fmt"),
    [
        ("", AnswerFormat.EMPTY),
        ("\n \t\n", AnswerFormat.EMPTY),
        ("I'm sorry, but I can't help with that request.", AnswerFormat.GARBAGE),
        ("Unfortunately, I cannot provide more items.", AnswerFormat.GARBAGE),
        ('{"error": "rate limited"}', AnswerFormat.GARBAGE),
        ("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", AnswerFormat.LINES),
        ("1. 1889\n2. 1900\n3. 1937", AnswerFormat.LIST),
    ],
)
def test_answer_without_entries_is_a_failure(answer: str, fmt: AnswerFormat) -> None:
    result = parse_answer(answer)
    assert result.entries == ()
    assert result.format is fmt
    assert result.failed


@pytest.mark.parametrize("answer", ["[]", '{"entries": []}', '```json\n{"entries": [ ]}\n```'])
def test_explicitly_empty_list_is_not_a_failure(answer: str) -> None:
    result = parse_answer(answer)
    assert result == ParseResult((), 0, AnswerFormat.EMPTY_LIST)
    assert not result.failed


@pytest.mark.parametrize("encoding", ["latin-1", "utf-8", "utf-16-le", "cp1252"])
@pytest.mark.parametrize("seed", range(12))
def test_random_bytes_give_no_entries_and_a_failure(encoding: str, seed: int) -> None:
    rng = random.Random(seed)
    raw = rng.randbytes(rng.choice([300, 2_000, 8_000]))
    answer = raw.decode(encoding, errors="replace" if encoding != "utf-8" or seed % 2 else "ignore")
    result = parse_answer(answer)
    assert result.entries == ()
    assert result.failed
    assert stream(fixed_size_chunks(answer, 13))[1] == result


def test_dropped_counts_items_rejected_in_every_format() -> None:
    assert parse_answer('["Bern", "", "   ", "12345", "https://bern.ch", "Basel"]').dropped == 4
    assert parse_answer("- Bern\n- ---\n- 1291\n- www.basel.ch").dropped == 2  # "- ---" is a rule
    assert parse_answer("| City |\n|---|\n| Bern |\n| 42 |").dropped == 1


# --- properties: never raise, chunking never matters -----------------------------------

_TOKENS = [
    "[", "]", "{", "}", '"', "'", "\\", ",", ":", " ", "\n", "\n\n", "\t", "\r\n",
    "- ", "* ", "• ", "1. ", "2) ", "  - ", "**", "*", "_", "`", "```", "```json\n", "|", "|---|",
    "### ", "> ", "Louvre", "Saint-Étienne", "Washington, D.C.", "Łódź", "São Paulo", "東京",
    " – ", " - ", "—", ": ", " (", ")", "and ", "or ", "the ", "Here are", "Sure!", "Let me know.",
    "I'm sorry", ".", "!", "?", "name", '"name": ', '"entries": ', "\\u00e9", "\\ud83c", "\\n",
    "\u200b", "\ufeff", "\x00", "é", "https://x.fr", "[1]", "[x](y)", "12", "null", "<b>",
]  # fmt: skip
_structured_text = st.lists(st.sampled_from(_TOKENS), max_size=60).map("".join)
_case_mutations = st.builds(
    lambda case, cut, insert, at: (case.answer[:at] + insert + case.answer[at:])[:cut],
    st.sampled_from(CASES),
    st.integers(0, 2_000),
    st.sampled_from(_TOKENS),
    st.integers(0, 2_000),
)
_answers = st.one_of(st.text(max_size=300), _structured_text, _case_mutations)
_settings = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(_answers)
def test_any_text_parses_without_raising_into_clean_entries(answer: str) -> None:
    with no_parser_errors_logged():
        result = parse_answer(answer)
    assert_clean_entries(result)
    assert result.failed == (not result.entries and result.format is not AnswerFormat.EMPTY_LIST)


@_settings
@given(_answers, st.lists(st.integers(0, 400), max_size=25))
def test_any_chunking_of_any_text_gives_the_whole_text_result(answer: str, cuts: list[int]) -> None:
    with no_parser_errors_logged():
        whole = parse_answer(answer)
        yielded, streamed = stream(split_at(answer, [min(cut, len(answer)) for cut in cuts]))
    assert streamed == whole
    assert tuple(yielded) == whole.entries
