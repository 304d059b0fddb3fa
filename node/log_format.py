"""How a node's log lines look: text for people, or one JSON object per line for collectors.

``--log-format json`` writes every record as a single line ``{"time", "level", "logger",
"message"}`` (plus ``"exception"`` with the traceback when there is one): messages holding
newlines or quotes stay one valid JSON line, so a collector never has to guess where a
record ends. Time is UTC, ISO 8601 with milliseconds.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["JsonLogFormatter", "TEXT_FORMAT", "configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        # ASCII escapes: a message holding undecodable bytes (lone surrogates) still writes.
        return json.dumps(fields, default=str)


def configure_logging(level: str, log_format: str, stream: TextIO | None = None) -> None:
    """Send every logger's records at ``level`` or above to ``stream`` (stderr) as ``log_format``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLogFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
