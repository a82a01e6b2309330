"""--log-format json: one JSON object a line, on every component's command line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from corral.logformat import configure_logging


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_ts_level_logger_msg_and_exception(restore_root_logger: None) -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    logging.getLogger("corral.test").info("hello %s\nsecond line", "world")
    logging.getLogger("corral.test").debug("not shown at info")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("corral.other").exception("it failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == "hello world\nsecond line"
    assert first["level"] == "info" and first["logger"] == "corral.test"
    assert isinstance(first["ts"], float) and first["ts"] > 1.6e9
    assert "exception" not in first
    assert second["level"] == "error"
    assert "RuntimeError: boom" in second["exception"]


def test_text_format_is_the_default(restore_root_logger: None) -> None:
    out = io.StringIO()
    configure_logging("warning", stream=out)
    logging.getLogger("corral.test").warning("plain")
    assert out.getvalue().rstrip().endswith("WARNING corral.test: plain")


@pytest.mark.parametrize(
    "module",
    [
        "controlplane.apiserver.main",
        "controlplane.controllers.main",
        "scheduler.main",
        "nodeagent.main",
    ],
)
def test_every_component_takes_log_format(module: str) -> None:
    import importlib

    parser = importlib.import_module(module).parser()
    action = next(a for a in parser._actions if "--log-format" in a.option_strings)
    assert action.choices == ("text", "json")
    assert action.default == "text"
