"""The operator console and the admin listener: where each route answers, the token, the pages,
their headers and assets, and that no secret reaches a page. (The real browser: test_console_browser.)"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from syncd.db.console import RunPoint
from syncd.logs import REDACTED
from syncd.settings.core import Settings
from syncd.web.console import charts
from syncd.web.console.render import CSP
from tests import console_seed
from tests.conftest import free_port
from tests.served import ServeSyncd

SECRET = "console-hook-secret-0123456789abcdef"
TOKEN = "admin-token-0123456789abcdefghijklmnop"
PAGES = ("/ui/", "/ui/drift", "/ui/drift?status=all", "/ui/drift?status=resolved",
         "/ui/drift?status=suppressed", "/ui/alerts", "/ui/alerts?status=dead", "/ui/quota",
         "/ui/fleet")
CODELOCKS = {"base_url": "http://127.0.0.1:9", "api_key": "codelocks-api-key-secret-value-1",
             "access_keys": ["codelocks-access-key-secret-value-2"]}
K3_OFF = {name: {"enabled": False} for name in (
    "neolock-subscription", "neolock-uploads", "neolock-devices", "k3-locks", "k3-audit",
    "k3-clients", "reconcile")}


async def _get(session: aiohttp.ClientSession, port: int, path: str,
               headers: dict[str, str] | None = None) -> tuple[int, str, Any]:
    async with session.get(f"http://127.0.0.1:{port}{path}", headers=headers,
                           allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp.headers


async def test_console_and_status_answer_only_on_the_admin_listener(
        serve_syncd: ServeSyncd, session: aiohttp.ClientSession) -> None:
    """/ui/ and /api/v1/status answer on the admin listener and 404 on the public one (the same
    404 as a path that does not exist); the NeoLock hook and the registry answer only on the public
    one; health and /metrics (default admin.metrics = "both") on both; each listener's OpenAPI
    document lists only its own routes."""
    async with serve_syncd(SECRET) as served:
        admin, public = served.admin_port, served.port
        assert admin != public
        for path in ("/ui/", "/ui/drift", "/ui/static/console.css", "/api/v1/status"):
            assert (await _get(session, admin, path))[0] == 200, path
            status, body, _ = await _get(session, public, path)
            assert status == 404, path
            nowhere = await _get(session, public, "/no/such/path")
            assert (status, re.sub(r'"request_id": "\w+"', "", body)) == \
                (nowhere[0], re.sub(r'"request_id": "\w+"', "", nowhere[1]))
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert (await _get(session, admin, path))[0] == 200, path
            assert (await _get(session, public, path))[0] == 200, path
        assert (await _get(session, public, "/api/base/configs"))[0] == 200
        assert (await _get(session, admin, "/api/base/configs"))[0] == 404
        hook = f"/hooks/neolock/{SECRET}"
        async with session.post(f"http://127.0.0.1:{admin}{hook}", json={"x": 1}) as resp:
            assert resp.status == 404
        async with session.post(f"http://127.0.0.1:{public}{hook}", json={"x": 1}) as resp:
            assert resp.status == 200
        # Each listener's OpenAPI document names only what it serves.
        public_doc = json.loads((await _get(session, public, "/openapi.json"))[1])["paths"]
        admin_doc = json.loads((await _get(session, admin, "/openapi.json"))[1])["paths"]
        assert not [p for p in public_doc if p.startswith("/ui") or p == "/api/v1/status"]
        assert {"/hooks/neolock/{secret}", "/v2/device", "/metrics"} <= public_doc.keys()
        assert {"/ui/", "/ui/drift/{case_id}", "/api/v1/status", "/metrics"} <= admin_doc.keys()
        assert not {"/hooks/neolock/{secret}", "/v2/device"} & admin_doc.keys()


async def test_the_admin_token_opens_the_console_on_the_public_listener(
        serve_syncd: ServeSyncd, session: aiohttp.ClientSession, tmp_path: Path) -> None:
    """With admin.token_file, the public listener serves the console and status to a request
    bearing that token, and answers 404 to no token, a wrong one, a prefix of it, or another scheme."""
    token_file = tmp_path / "admin-token"
    token_file.write_text(TOKEN + "\n")
    async with serve_syncd(SECRET, sections={"admin": {"token_file": str(token_file)}}) as served:
        for path in ("/ui/", "/api/v1/status"):
            ok = await _get(session, served.port, path, {"Authorization": f"Bearer {TOKEN}"})
            assert ok[0] == 200, path
            for header in ({}, {"Authorization": "Bearer wrong-token-0123456789abcdefghij"},
                           {"Authorization": f"Bearer {TOKEN[:-1]}"},
                           {"Authorization": f"Basic {TOKEN}"}):
                assert (await _get(session, served.port, path, header))[0] == 404, header


async def test_metrics_only_on_the_admin_listener_when_configured(
        serve_syncd: ServeSyncd, session: aiohttp.ClientSession) -> None:
    """admin.metrics = "admin" takes /metrics off the public listener."""
    async with serve_syncd(SECRET, sections={"admin": {"metrics": "admin"}}) as served:
        assert (await _get(session, served.admin_port, "/metrics"))[0] == 200
        assert (await _get(session, served.port, "/metrics"))[0] == 404


def test_admin_settings_are_checked(make_settings: Any) -> None:
    """The admin port must differ from the public one, and a token must be long enough."""
    with pytest.raises(ValueError, match=r"port 8500 is server\.port too"):
        make_settings(server={"port": 8500}, admin={"port": 8500})
    with pytest.raises(ValueError, match="at least 22 characters"):
        make_settings(admin={"token": "short"})
    assert Settings().admin.host == "127.0.0.1" and Settings().admin.port == 8090


class _Refs(HTMLParser):
    """Every URL a page refers to (href, src, action) and every script element."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts = 0
        self.styled = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.styled += tag == "style" or any(name == "style" for name, _ in attrs)
        self.urls += [value or "" for name, value in attrs
                      if name in ("href", "src", "action", "xlink:href")
                      and not (tag == "svg" or value == "http://www.w3.org/2000/svg")]


async def test_every_page_is_self_contained_with_a_strict_csp(
        serve_syncd: ServeSyncd, session: aiohttp.ClientSession) -> None:
    """Each page is HTML with the strict CSP and nosniff/no-referrer/DENY headers, has no script
    and no inline style, and refers only to syncd's own paths; its assets are served by syncd."""
    async with serve_syncd(SECRET, sections={"codelocks": CODELOCKS, "jobs": K3_OFF}) as served:
        seeded = await console_seed.seed(served.app_db, dt.datetime.now(dt.UTC))
        pages = [*PAGES, *(f"/ui/drift/{i}" for i in seeded.case_ids)]
        for path in pages:
            status, body, headers = await _get(session, served.admin_port, path)
            assert status == 200, (path, body[:300])
            assert headers["Content-Type"].startswith("text/html")
            assert headers["Content-Security-Policy"] == CSP
            assert "script-src" not in CSP and "'unsafe-inline'" not in CSP
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["X-Frame-Options"] == "DENY"
            refs = _Refs()
            refs.feed(body)
            assert refs.scripts == 0 and refs.styled == 0, path
            assert refs.urls and all(u.startswith("/ui") for u in refs.urls), (path, refs.urls)
        for asset, ctype in (("console.css", "text/css"), ("favicon.svg", "image/svg+xml")):
            status, _, headers = await _get(session, served.admin_port, f"/ui/static/{asset}")
            assert status == 200 and headers["Content-Type"].startswith(ctype)
        assert (await _get(session, served.admin_port, "/ui/static/../settings.py"))[0] == 404
        assert (await _get(session, served.admin_port, "/ui/static/nothing.js"))[0] == 404
        status, body, _ = await _get(session, served.admin_port, "/ui/drift/999999")
        assert status == 404 and "There is no drift case 999999" in body
        status, _, headers = await _get(session, served.admin_port, "/ui")
        assert status == 302 and headers["Location"] == "/ui/"


async def test_every_page_renders_on_a_fresh_database(
        serve_syncd: ServeSyncd, session: aiohttp.ClientSession) -> None:
    """Before anything ran (no run, case, delivery, usage, phone or device), each page renders
    and says there is nothing yet, with and without Codelocks configured."""
    for sections in ({}, {"codelocks": CODELOCKS, "jobs": K3_OFF}):
        async with serve_syncd(SECRET, sections=sections) as served:
            for path in PAGES:
                status, body, _ = await _get(session, served.admin_port, path)
                assert status == 200, (path, body[:300])
            _, overview, _ = await _get(session, served.admin_port, "/ui/")
            assert "no finished run yet" in overview
            _, drift, _ = await _get(session, served.admin_port, "/ui/drift")
            assert "No case matches." in drift
            _, quota, _ = await _get(session, served.admin_port, "/ui/quota")
            assert ("Codelocks is not configured" in quota) == ("codelocks" not in sections)
            _, fleet, _ = await _get(session, served.admin_port, "/ui/fleet")
            assert "No phone is known yet" in fleet and "0 devices registered" in fleet


async def test_no_secret_reaches_any_page(serve_syncd: ServeSyncd,
                                          session: aiohttp.ClientSession, tmp_path: Path) -> None:
    """With every kind of secret configured (vendor passwords and keys, hook signing secrets, the
    admin token) and each planted in the data the pages print (run and delivery errors, case
    values and subjects, action details), no page shows any of them, raw or HTML-escaped."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    hook_secret = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci1ob29rcw=="
    sections = {
        "admin": {"token_file": str(token_file)}, "codelocks": CODELOCKS, "jobs": K3_OFF,
        "alerts": {"hooks": [{"url": "http://127.0.0.1:9/T0/secret-path-token-123456",
                              "secret": hook_secret, "name": "ops-webhook"}]}}
    async with serve_syncd(SECRET, sections=sections) as served:
        settings = served.app_settings
        secrets = settings.secrets()
        assert {SECRET, TOKEN, hook_secret, CODELOCKS["api_key"]} <= set(secrets)
        seeded = await console_seed.seed(served.app_db, dt.datetime.now(dt.UTC),
                                         leak=" ".join(secrets))
        pages = [*PAGES, *(f"/ui/drift/{i}" for i in seeded.case_ids)]
        shown = 0
        for path in pages:
            status, body, _ = await _get(session, served.admin_port, path)
            assert status == 200, path
            for secret in secrets:
                assert secret not in body and html.escape(secret) not in body, (path, secret[:6])
            assert "secret-path-token" not in body
            shown += body.count(REDACTED)
        assert shown > len(pages)  # the planted secrets were on the pages, redacted


async def test_drift_page_filters_by_query_string(serve_syncd: ServeSyncd,
                                                  session: aiohttp.ClientSession) -> None:
    """?status, ?kind and ?severity select the cases shown; an unknown kind means any kind."""
    async with serve_syncd(SECRET) as served:
        await console_seed.seed(served.app_db, dt.datetime.now(dt.UTC))

        def rows(body: str) -> list[tuple[str, str, str]]:
            return re.findall(r'<tr class="case" data-kind="(\w+)" data-severity="(\w+)" '
                              r'data-status="(\w+)">', body)

        def expected(kind: str | None, severity: str | None,
                     status: str | None) -> list[tuple[str, str, str]]:
            return sorted((k, s, st) for k, s, st in console_seed.CASES
                          if kind in (None, k) and severity in (None, s) and status in (None, st))

        port = served.admin_port
        for query, want in (
                ("", expected(None, None, "open")),
                ("?status=all", expected(None, None, None)),
                ("?status=all&kind=terminal_offline", expected("terminal_offline", None, None)),
                ("?status=open&severity=critical", expected(None, "critical", "open")),
                ("?status=resolved&kind=phone_not_locked&severity=warning",
                 expected("phone_not_locked", "warning", "resolved")),
                ("?status=suppressed", expected(None, None, "suppressed")),
                ("?status=all&kind=no_such_kind", expected(None, None, None))):
            _, body, _ = await _get(session, port, "/ui/drift" + query)
            assert sorted(rows(body)) == want, query


def test_duration_chart_has_one_point_per_run_and_labelled_axes() -> None:
    """The duration chart draws a point per run (failed ones marked) and names both axes."""
    now = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    runs = [RunPoint(now + dt.timedelta(minutes=i), 1.0 + i, "failed" if i == 3 else "ok", i, 2)
            for i in range(7)]
    svg = str(charts.duration_chart("neolock-devices", runs))
    assert svg.count('<circle class="pt ') == 7
    assert svg.count('class="pt failed"') == 1
    assert ">seconds<" in svg and "run (oldest → newest, last 7)" in svg
    assert charts.nice_ticks(0) == [0.0, 1.0]
    assert charts.nice_ticks(87, 4) == [0, 50, 100]
    assert charts.nice_ticks(6000, 4) == [0, 2000, 4000, 6000]
    assert charts.nice_ticks(2, 4, whole=True) == [0, 1, 2]



def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:  # noqa: S310 - loopback
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_syncd_run_serves_the_console_on_its_admin_listener(db_dsn: str, tmp_path: Path) -> None:
    """`syncd run` opens both listeners, logs the admin port in syncd.ready, serves /ui/ on the
    admin one and 404 on the public one, and stops cleanly on SIGTERM."""
    port, admin = free_port(), free_port()
    cfg = tmp_path / "syncd.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{db_dsn}"\n'
                   f'[server]\nport = {port}\nshutdown_timeout = 5\n'
                   f'[admin]\nport = {admin}\n[logging]\nformat = "json"\n'
                   '[jobs.housekeeping]\nenabled = false\n')
    proc = subprocess.Popen([sys.executable, "-m", "syncd", "--config", str(cfg), "run"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if '"syncd.ready"' in line:
                ready = json.loads(line)
                break
        else:
            raise AssertionError("syncd run stopped before it was ready")
        assert (ready["port"], ready["admin_host"], ready["admin_port"]) == \
            (port, "127.0.0.1", admin)
        assert _status(f"http://127.0.0.1:{admin}/ui/") == 200
        assert _status(f"http://127.0.0.1:{admin}/api/v1/status") == 200
        assert _status(f"http://127.0.0.1:{port}/ui/") == 404
        assert _status(f"http://127.0.0.1:{port}/healthz") == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_syncd_run_names_the_admin_listener_it_cannot_open(db_dsn: str, tmp_path: Path) -> None:
    """An admin port already taken stops `syncd run` with exit 1 and one line naming it."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        cfg = tmp_path / "syncd.toml"
        cfg.write_text(f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{db_dsn}"\n'
                       f'[server]\nport = {free_port()}\n[admin]\nport = {busy}\n'
                       '[jobs.housekeeping]\nenabled = false\n')
        proc = subprocess.run([sys.executable, "-m", "syncd", "--config", str(cfg), "run"],
                              capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{busy} (admin listener)" in proc.stderr
