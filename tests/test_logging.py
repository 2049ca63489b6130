"""Logging: JSON lines with context, and configured secrets never reach the output."""

from __future__ import annotations

import datetime
import io
import json
import logging
import re

import structlog

from syncd.logs import REDACTED, Redactor, configure
from syncd.settings.core import Settings

SECRET = "neo-Pa55word-that-must-not-leak"
HOOK_SECRET = "whsec_" + "c2VjcmV0LWhvb2sta2V5LTI0LWJ5dGVz"  # 24 bytes of key


def test_every_configured_secret_is_collected_for_redaction() -> None:
    """Settings.secrets() finds secrets in every section, nested lists included."""
    settings = Settings(
        database={"url": "postgresql://u:dbpass-123@h/db"},
        neolock={"base_url": "https://n/api", "login": "l", "password": SECRET},
        alerts={"hooks": [{"url": "https://h", "secret": HOOK_SECRET}]})
    assert set(settings.secrets()) >= {"postgresql://u:dbpass-123@h/db", SECRET, HOOK_SECRET}


def test_secrets_are_redacted_from_structlog_and_stdlib_output() -> None:
    """A secret in an event value, nested data, an exception or a library log line is replaced."""
    out = io.StringIO()
    configure("debug", "json", Redactor([SECRET]), stream=out)
    log = structlog.get_logger("test")
    log.info("login", password=SECRET, nested={"list": [f"x{SECRET}y"]})
    try:
        raise ValueError(f"server said: bad password {SECRET}")
    except ValueError:
        log.exception("failed")
    logging.getLogger("aiohttp.client").warning("retrying with %s", SECRET)
    text = out.getvalue()
    assert SECRET not in text
    assert text.count(REDACTED) >= 4
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["event"] == "login" and lines[0]["password"] == REDACTED


def test_context_vars_are_bound_into_each_line() -> None:
    """request_id/job bound through contextvars appear on every line logged meanwhile."""
    out = io.StringIO()
    configure("info", "json", Redactor(), stream=out)
    with structlog.contextvars.bound_contextvars(job="neolock-devices", request_id="r1"):
        structlog.get_logger("t").info("job.run", items=3)
    line = json.loads(out.getvalue())
    assert (line["job"], line["request_id"], line["items"]) == ("neolock-devices", "r1", 3)


def test_every_line_carries_a_utc_iso_timestamp_with_microseconds() -> None:
    """structlog's lines and the standard library's alike are stamped `YYYY-MM-DDTHH:MM:SS.ffffffZ`
    in UTC, the time they were logged (lines within one second share its date and time)."""
    out = io.StringIO()
    configure("info", "json", Redactor(), stream=out)
    before = datetime.datetime.now(datetime.UTC)
    structlog.get_logger("test").info("one")
    structlog.get_logger("test").info("two")
    logging.getLogger("aiohttp.client").warning("three")
    after = datetime.datetime.now(datetime.UTC)
    stamps = [json.loads(line)["timestamp"] for line in out.getvalue().splitlines()]
    assert len(stamps) == 3
    for stamp in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp), stamp
        when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert before - datetime.timedelta(microseconds=1) <= when <= after
    assert stamps == sorted(stamps)
