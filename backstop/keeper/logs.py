"""The keeper's log formats (``--log-format text|json``; docs/keeper.md §"What it logs").

``text``: ``<time> <LEVEL> keeper <event> key=value ...``, one line per event.
``json``: one JSON object per line, ``{"ts", "level", "event", ...the event's fields}`` with the
same field names and the same human-unit values as the text line (``"equity": "98,934.54"``),
so a log pipeline needs no parsing of ``key=value``. A record that is not a keeper event (Ape's
or Silverback's own lines) becomes ``{"ts", "level", "logger", "message"}``.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds")
        out: dict[str, object] = {"ts": ts.replace("+00:00", "Z"), "level": record.levelname}
        event = getattr(record, "keeper_event", None)
        if event is not None:
            out["event"] = event
            for key, value in getattr(record, "keeper_fields", {}).items():
                out[key] = value if isinstance(value, bool | int | float | type(None)) else str(value)
        else:
            out["logger"] = record.name
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``--log-format`` (``text`` or ``json``)."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"log format: text or json expected, got {log_format!r}")


def emit(logger: logging.Logger, level: int, event: str, *, word: str | None = None, **fields: Any) -> None:
    """One structured line: ``keeper <event> [word] k=v k=v`` (values with spaces are quoted;
    ``word``, e.g. ``reached``, follows the event name); the fields ride along for
    :class:`JsonFormatter`."""
    parts = [word] if word else []
    for key, value in fields.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if not text or any(c.isspace() for c in text) or '"' in text:
            text = json.dumps(text)
        parts.append(f"{key}={text}")
    logger.log(
        level,
        "keeper %s %s",
        event,
        " ".join(parts),
        extra={"keeper_event": event, "keeper_fields": {"word": word, **fields} if word else fields},
    )
