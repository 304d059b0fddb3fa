"""Reading a verification answer: which of the asked items the model called real, and which not.

The prompt (``build_verify_prompt``) asks for ``{"verdicts": [{"item": ..., "real": true}]}``;
models also answer with a bare JSON list, fenced JSON, or lines such as "1. Oslo — yes" and
"Bergenovo: no, not a real city". Every verdict is tied back to an asked item — by the item's
normal form when the answer names it, else by its number or its position — and an item the
answer does not judge, or judges ambiguously, gets no verdict: garbage changes nothing. The
text is untrusted: its size is bounded and nothing here raises on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from node.normalize import normal_form

__all__ = ["MAX_VERDICT_ANSWER_CHARS", "parse_verdicts"]

MAX_VERDICT_ANSWER_CHARS = 200_000  # a longer answer is cut here (a 200-item answer is ~10 KB)
_MAX_JSON_TRIES = 8

_YES = {"true", "yes", "real", "valid", "correct", "exists", "y", "1"}
_NO = {"false", "no", "not real", "invalid", "fake", "invented", "fictional", "incorrect", "n", "0"}
_VERDICT_KEYS = ("real", "is_real", "valid", "exists", "verdict", "answer", "correct")
_ITEM_KEYS = ("item", "name", "entry", "title", "label")
_LINE_NUMBER = re.compile(r"^\s*(?:[-*•]\s*)?(\d{1,3})[.)]\s*")
_NO_WORDS = re.compile(r"\b(?:no|not real|not a real|false|invented|fictional|fake|does not exist|doesn't exist|"
                       r"not an? (?:actual|existing)|made[- ]up)\b", re.IGNORECASE)  # fmt: skip
_YES_WORDS = re.compile(r"\b(?:yes|real|true|exists|valid|correct)\b", re.IGNORECASE)


def _truth(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower().rstrip(".!")
        if text in _YES:
            return True
        if text in _NO:
            return False
    return None


def _json_values(text: str) -> list[Any]:
    """The JSON values in ``text`` (objects and arrays), first ones first, a bounded number of tries."""
    decoder = json.JSONDecoder()
    values: list[Any] = []
    position = 0
    for _ in range(_MAX_JSON_TRIES):
        starts = [i for i in (text.find("{", position), text.find("[", position)) if i != -1]
        if not starts:
            break
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            position = start + 1
            continue
        values.append(value)
        position = end
    return values


def _verdict_rows(value: Any) -> list[Any] | None:
    if isinstance(value, dict):
        for key in ("verdicts", "items", "results", "answers"):
            if isinstance(value.get(key), list):
                return list(value[key])
        return None
    return list(value) if isinstance(value, list) else None


def parse_verdicts(answer: str, items: Sequence[str]) -> dict[int, bool]:
    """Verdicts for the asked ``items``: index in ``items`` -> real or not."""
    text = answer[:MAX_VERDICT_ANSWER_CHARS]
    index_of: dict[str, int] = {}
    for index, item in enumerate(items):
        index_of.setdefault(normal_form(item), index)
    for value in _json_values(text):
        rows = _verdict_rows(value)
        if rows:
            found = _from_rows(rows, index_of, len(items))
            if found:
                return found
    return _from_lines(text, index_of, len(items))


def _from_rows(rows: list[Any], index_of: dict[str, int], count: int) -> dict[int, bool]:
    found: dict[int, bool] = {}
    for position, row in enumerate(rows[: count * 2]):
        if isinstance(row, dict):
            name = next((row[k] for k in _ITEM_KEYS if isinstance(row.get(k), str)), None)
            verdict = next((t for k in _VERDICT_KEYS if (t := _truth(row.get(k))) is not None), None)
        else:
            name, verdict = None, _truth(row)
        if verdict is None:
            continue
        index = index_of.get(normal_form(name)) if name is not None else None
        if index is None and name is None and position < count:
            index = position  # a bare list of booleans: in the order asked
        if index is not None:
            found.setdefault(index, verdict)
    return found


def _from_lines(text: str, index_of: dict[str, int], count: int) -> dict[int, bool]:
    found: dict[int, bool] = {}
    for line in text.splitlines()[: count * 4]:
        number = _LINE_NUMBER.match(line)
        body = line[number.end():] if number else line
        index = None
        for separator in (" — ", " – ", " - ", ":", "—", "–"):
            head, sep, _ = body.partition(separator)
            if sep and (index := index_of.get(normal_form(head.strip(" *`\"'")))) is not None:
                verdict_text = body[len(head) + len(sep):]
                break
        else:
            verdict_text = body
            if number and 1 <= int(number.group(1)) <= count:
                index = int(number.group(1)) - 1
        if index is None:
            continue
        no, yes = _NO_WORDS.search(verdict_text), _YES_WORDS.search(verdict_text)
        if no and (not yes or no.start() <= yes.start()):
            found.setdefault(index, False)
        elif yes:
            found.setdefault(index, True)
    return found
