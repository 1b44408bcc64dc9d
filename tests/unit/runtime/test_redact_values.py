"""Redaction reaches nested log values and exception text (README, Security model; fast tier)."""

from __future__ import annotations

import json
import sys

import structlog

from substratus_controller.runtime.logs import redact_event
from substratus_controller.runtime.redact import redact_value

URL = "http://127.0.0.1:8082/upload/x?md5=a&expires=1&sig=topsecret"


def test_nested_values_and_objects_are_redacted() -> None:
    value = {"request": {"urls": [URL, ("token=abc", 3)]}, "n": 1, "flag": True, "none": None}
    cleaned = redact_value(value)
    assert "topsecret" not in json.dumps(cleaned)
    assert "abc" not in json.dumps(cleaned)
    assert cleaned["n"] == 1
    assert cleaned["flag"] is True
    assert cleaned["none"] is None
    assert isinstance(cleaned["request"]["urls"][1], tuple)
    error = RuntimeError(f"PUT {URL} failed")
    assert "topsecret" not in str(redact_value(error))
    plain = RuntimeError("nothing secret")
    assert redact_value(plain) is plain


def test_a_log_line_never_holds_a_nested_secret_or_an_exceptions() -> None:
    """The pipeline's order (exceptions formatted, then every value redacted), as `configure` sets it up."""
    try:
        raise ValueError(f"upload to {URL} failed")
    except ValueError:
        event = {"event": "failed", "detail": {"url": URL}, "urls": [URL], "exc_info": sys.exc_info()}
    event = structlog.processors.format_exc_info(None, "error", event)
    assert "topsecret" in event["exception"]  # the traceback text holds it before redaction
    text = json.dumps(dict(redact_event(None, "error", event)))
    assert "topsecret" not in text
    assert text.count("REDACTED") >= 3, text
