from __future__ import annotations

import json
import logging

import pytest
import structlog

from eri.logging import configure_logging, get_logger
from eri.settings import Settings

PLANTED = "Ximena Quetzal-Canary 4471"


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    err = capsys.readouterr().err
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


@pytest.fixture
def json_logging() -> None:
    configure_logging(Settings(log_format="json"), component="test")


@pytest.mark.usefixtures("json_logging")
def test_unlisted_keys_are_dropped_and_counted(capsys: pytest.CaptureFixture[str]) -> None:
    get_logger("t").info("case_opened", case_id="case_abc", victim_name=PLANTED, notes=PLANTED)
    (line,) = _lines(capsys)
    assert line["event"] == "case_opened"
    assert line["case_id"] == "case_abc"
    assert line["component"] == "test"
    assert line["dropped_keys"] == 2
    assert PLANTED not in json.dumps(line)


@pytest.mark.usefixtures("json_logging")
def test_exception_text_is_reduced_to_its_type(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise ValueError(f"bad passport for {PLANTED}")
    except ValueError:
        get_logger("t").exception("intake_failed")
    captured = capsys.readouterr().err
    assert PLANTED not in captured
    (line,) = [json.loads(x) for x in captured.splitlines() if x.startswith("{")]
    assert line["error_type"] == "ValueError"


@pytest.mark.usefixtures("json_logging")
def test_context_is_carried_on_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    with structlog.contextvars.bound_contextvars(request_id="req_1", workflow_id="case_9"):
        get_logger("t").info("step")
    (line,) = _lines(capsys)
    assert (line["request_id"], line["workflow_id"]) == ("req_1", "case_9")


@pytest.mark.usefixtures("json_logging")
def test_stdlib_log_arguments_are_never_rendered(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("thirdparty").warning("rejected value %s", PLANTED)
    err = capsys.readouterr().err
    assert "rejected value" in err
    assert PLANTED not in err
