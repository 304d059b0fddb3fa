"""Tests for node.log_filters: an unparseable request is one warning line; other errors keep their traceback."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import BadHttpMessage

from node.log_filters import OneLineBadRequests, install


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException as raised:
        info = (type(raised), raised, raised.__traceback__)
    return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
                             ("127.0.0.1",), info)  # fmt: skip


def test_a_bad_request_becomes_one_warning_line_without_a_traceback() -> None:
    """The parser's complaint and the client stay; the traceback goes."""
    record = _record(BadHttpMessage("Invalid method encountered:\n\n  b'\\x16\\x03'"))
    assert OneLineBadRequests().filter(record)
    text = logging.Formatter("%(levelname)s %(message)s").format(record)
    assert record.exc_info is None and "\n" not in text and "Traceback" not in text
    assert text.startswith("WARNING Error handling request from 127.0.0.1: unparseable request refused with 400")
    assert "BadHttpMessage" in text


def test_other_exceptions_keep_their_traceback_and_install_is_idempotent() -> None:
    """A real server bug must stay loud."""
    record = _record(RuntimeError("boom"))
    assert OneLineBadRequests().filter(record) and record.exc_info is not None and record.levelno == logging.ERROR
    install()
    install()
    assert sum(isinstance(f, OneLineBadRequests) for f in logging.getLogger("aiohttp.server").filters) == 1
