"""``--log-format text|json`` for every component, as Kubernetes' ``--logging-format``.

JSON lines carry what Kubernetes components' JSON logs carry that log
collectors key on: ``ts`` (seconds since the epoch, a float, as klog's JSON
does), ``level``, ``logger``, ``msg``, and ``exception`` with the traceback
when there is one. A handful of fields is one ``json.dumps``: the standard
library's Formatter is all it takes, so no logging library is added.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FORMATS = ("text", "json")


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def add_log_format_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text",
        help="text (the default) or json: one JSON object a line, as --logging-format=json",
    )


def configure_logging(level: str, log_format: str = "text", stream: TextIO | None = None) -> None:
    """Set up the root logger once, at a component's start."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
