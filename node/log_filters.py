"""Log hygiene for hostile input: a request aiohttp cannot parse is one log line, not a traceback.

aiohttp answers a malformed request (bad request line, bad bytes, oversized headers) itself
with a 400 and logs it through ``aiohttp.server`` with the whole traceback, at ERROR. Bad input
is expected on a listening port (issue #14: "any bad input gets a clear 4xx or one log line"),
so this filter keeps the record and the client's address but drops the traceback, names the
parser's complaint, and lowers the level to WARNING. Other exceptions keep their traceback.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["OneLineBadRequests", "install"]


class OneLineBadRequests(logging.Filter):
    """Turns aiohttp's "Error handling request" tracebacks for unparseable requests into one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            reason = str(exc.message if exc.message else exc).splitlines()[0][:200]
            record.msg = f"{record.getMessage()}: unparseable request refused with 400 ({type(exc).__name__}: {reason})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install() -> None:
    """Attach the filter to aiohttp's server logger (idempotent)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(existing, OneLineBadRequests) for existing in logger.filters):
        logger.addFilter(OneLineBadRequests())
