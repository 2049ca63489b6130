"""Durable intake under stress: kill -9, a database outage, SIGTERM mid-request, and bad input.

The contract under test (DESIGN.md, HTTP contract): `POST /hooks/neolock/{secret}` answers 200 only
once the event is committed to ops.inbox, so an acknowledged event is never lost, and a resent one is
stored once. Everything here runs against real PostgreSQL and, where a crash or signal matters, a
real `syncd run` subprocess. Nothing inside syncd is patched.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from syncd.app import create_app
from syncd.db.pool import Database
from syncd.errors import DataRejected
from syncd.inbox.writer import GroupCommitter, InboxItem
from syncd.settings.core import Settings
from syncd.web import intake
from tests.conftest import free_port, pg_ctl, pg_start
from tests.waiting import wait_for

AiohttpClient = Callable[[web.Application], "asyncio.Future[TestClient[web.Request, web.Application]]"]
Client = TestClient[web.Request, web.Application]

HOOK_SECRET = "hook-secret-that-must-never-leak-7f3a9c"
PASSWORD = "neolock-password-never-in-logs-5d1e"
CLOSED_VENDOR = "http://127.0.0.1:9/api"  # nothing listens: the inbox worker just retries later
HOOK = f"/hooks/neolock/{HOOK_SECRET}"
DISABLED_JOBS = ("housekeeping", "neolock-subscription", "neolock-uploads", "neolock-devices")
JSON = {"Content-Type": "application/json"}


def push(event_id: str) -> bytes:
    """A NeoLock-shaped push naming one device."""
    return json.dumps({"id": event_id, "event": "device.locked", "deviceUid": f"uid-{event_id}",
                       "timestamp": "2025-01-01T00:00:00Z"}).encode()


def neolock_section() -> dict[str, Any]:
    """The [neolock] section: a configured hook secret and a vendor nobody answers for."""
    return {"base_url": CLOSED_VENDOR, "login": "shop", "password": PASSWORD,
            "webhook_secret": HOOK_SECRET}


def jobs_off() -> dict[str, dict[str, bool]]:
    """Every scheduled job disabled: only intake and the inbox worker touch the database."""
    return {name: {"enabled": False} for name in DISABLED_JOBS}


async def fetch_keys(dsn: str) -> list[str]:
    """Every dedupe_key in ops.inbox, duplicates included."""
    conn = await asyncpg.connect(dsn)
    try:
        return [r["dedupe_key"] for r in await conn.fetch("SELECT dedupe_key FROM ops.inbox")]
    finally:
        await conn.close()


# --- `syncd run` as a subprocess ------------------------------------------------------------------


@dataclasses.dataclass
class Daemon:
    """A running `syncd run` with its port and captured output."""

    proc: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    def url(self, path: str) -> str:
        """An absolute URL on this daemon."""
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def listening(self) -> bool:
        """True while the daemon accepts TCP connections."""
        with socket.socket() as s:
            s.settimeout(2)
            return s.connect_ex(("127.0.0.1", self.port)) == 0

    def round_trip(self) -> None:
        """GET /healthz on a new connection, answered. The daemon accepts connections in order
        and reads every ready one in the same loop turn, so by this answer it has also read what
        was sent before on connections opened earlier: their handlers are running."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as probe:
            probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert read_response(probe).startswith(b"HTTP/1.1 200")


class Notify:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, directory: Path) -> None:
        self.path = str(directory / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.5)

    def wait_for(self, wanted: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
        """Receive until a message has the line `wanted`; fail if the process dies first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                if proc.poll() is not None:
                    pytest.fail(f"syncd exited with {proc.returncode} before {wanted}")
                continue
            if wanted in message.split("\n"):
                return
        pytest.fail(f"no {wanted} from syncd within {timeout}s")


class Daemons:
    """Starts `syncd run` subprocesses sharing one NOTIFY_SOCKET; kills any left running."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.notify = Notify(directory)
        self.started: list[Daemon] = []

    def start(self, db_url: str, shutdown_timeout: float = 5,
              preexec_fn: Callable[[], None] | None = None) -> Daemon:
        """Start `syncd run` on `db_url` with a free port, and wait for READY=1.

        `preexec_fn` runs in the child before syncd starts (e.g. to lower a resource limit).
        """
        n = len(self.started)
        port = free_port()
        cfg = self.directory / f"syncd-{n}.toml"
        cfg.write_text(
            f'data_dir = "{self.directory / "data"}"\n'
            f"[database]\nurl = {json.dumps(db_url)}\n"
            f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
            f'shutdown_timeout = {shutdown_timeout}\n'
            '[admin]\nport = 0\n[logging]\nformat = "json"\n'
            f'[neolock]\nbase_url = "{CLOSED_VENDOR}"\nlogin = "shop"\n'
            f'password = "{PASSWORD}"\nwebhook_secret = "{HOOK_SECRET}"\n'
            + "".join(f"[jobs.{name}]\nenabled = false\n" for name in DISABLED_JOBS))
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SYNCD_", "NOTIFY_SOCKET", "WATCHDOG_"))}
        env["NOTIFY_SOCKET"] = self.notify.path
        out, err = self.directory / f"stdout-{n}.log", self.directory / f"stderr-{n}.log"
        with out.open("wb") as fout, err.open("wb") as ferr:
            proc = subprocess.Popen([sys.executable, "-m", "syncd", "--config", str(cfg), "run"],
                                    stdout=fout, stderr=ferr, env=env, preexec_fn=preexec_fn)
        daemon = Daemon(proc, port, out, err)
        self.started.append(daemon)
        self.notify.wait_for("READY=1", proc)
        return daemon

    def close(self) -> None:
        """Kill whatever is still running."""
        for daemon in self.started:
            if daemon.proc.poll() is None:
                daemon.proc.kill()
                daemon.proc.wait()
        self.notify.sock.close()


@pytest.fixture
def daemons(short_dir: Path) -> Iterator[Daemons]:
    """A starter of `syncd run` subprocesses, cleaned up after the test."""
    starter = Daemons(short_dir)
    yield starter
    starter.close()


def request_head(port: int, length: int, path: str = HOOK) -> bytes:
    """Request line and headers of a push with a Content-Length of `length`."""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def read_response(sock: socket.socket, timeout: float = 20) -> bytes:
    """Read until the server closes the connection or a whole response has arrived."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(TimeoutError, ConnectionError):
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            if sep and found and len(body) >= int(found.group(1)):
                break
    return data


def body_of(response: bytes) -> Any:
    """The JSON body of a raw HTTP response."""
    return json.loads(response.partition(b"\r\n\r\n")[2])


def wait_until_closed(daemon: Daemon, timeout: float = 15) -> None:
    """Wait until the daemon stops accepting connections: it is draining."""
    deadline = time.monotonic() + timeout
    while daemon.listening():
        assert time.monotonic() < deadline, "syncd kept listening after SIGTERM"
        time.sleep(0.05)


def provoke_logs(daemon: Daemon) -> None:
    """Pushes that make syncd log about the request (its path holds the secret) and the body.

    A wrong secret (404), a body that is not JSON and carries the secret (400, quarantined), and a
    UTF-16 body carrying the vendor password (400, quarantined). None of them adds to ops.inbox.
    """
    for path, body in ((f"/hooks/neolock/{HOOK_SECRET[::-1]}", push("log-1")),
                       (HOOK, b"{not json " + HOOK_SECRET.encode()),
                       (HOOK, json.dumps({"id": "log-3", "note": PASSWORD}).encode("utf-16"))):
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
            sock.sendall(request_head(daemon.port, len(body), path) + body)
            assert read_response(sock).startswith(b"HTTP/1.1 "), path


def assert_no_secrets(daemon: Daemon) -> None:
    """Neither the hook secret nor the vendor password appears in the daemon's output."""
    output = daemon.output()
    assert '"event": "syncd.ready"' in output  # the logs were captured at all
    assert HOOK_SECRET not in output
    assert PASSWORD not in output


# --- 1. kill -9 during a push burst ---------------------------------------------------------------


@dataclasses.dataclass
class Burst:
    """What a burst of pushes got back: event id -> answered status ("stored"/"duplicate")."""

    acked: dict[str, str] = dataclasses.field(default_factory=dict)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)


async def fire(url: str, ids: list[str], *, connections: int = 48,
               on_ack: Callable[[int], None] = lambda n: None) -> Burst:
    """POST a push for every id over `connections` concurrent connections; record 200s and failures."""
    burst = Burst()
    queue = list(reversed(ids))
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def sender() -> None:
            while queue:
                event_id = queue.pop()
                try:
                    async with session.post(url, data=push(event_id), headers=JSON) as resp:
                        if resp.status != 200:
                            burst.failed[event_id] = f"HTTP {resp.status}"
                            continue
                        answer = await resp.json()
                except (aiohttp.ClientError, TimeoutError) as err:
                    burst.failed[event_id] = type(err).__name__
                    continue
                burst.acked[event_id] = answer["status"]
                on_ack(len(burst.acked))

        await asyncio.gather(*(sender() for _ in range(connections)))
    return burst


async def test_kill_9_during_a_push_burst_loses_no_acknowledged_event(
        daemons: Daemons, db_dsn: str) -> None:
    """Every push acked 200 before SIGKILL is in ops.inbox, once; resending the burst stores each once.

    2000 pushes with unique ids go out over 48 connections; syncd is killed with SIGKILL as soon as
    400 have been acknowledged, with the rest in flight. After a restart on the same database the
    whole burst is sent again: what was stored answers "duplicate", the rest "stored".
    """
    ids = [f"burst-{i:04d}" for i in range(2000)]
    daemon = daemons.start(db_dsn)

    def kill_at_400(acks: int) -> None:
        if acks == 400:
            daemon.proc.kill()  # synchronous: no further answer is read before the kill

    first = await fire(daemon.url(HOOK), ids, on_ack=kill_at_400)
    assert daemon.proc.wait(timeout=10) == -signal.SIGKILL
    assert len(first.acked) >= 400 and first.failed  # killed mid-burst, as intended
    assert set(first.acked.values()) == {"stored"}
    stored = await fetch_keys(db_dsn)
    assert len(stored) == len(set(stored)), "an event was stored twice"
    lost = {f"id:{i}" for i in first.acked} - set(stored)
    assert not lost, f"{len(lost)} acknowledged events are missing, e.g. {sorted(lost)[:5]}"
    assert_no_secrets(daemon)

    again = daemons.start(db_dsn)
    second = await fire(again.url(HOOK), ids)
    assert second.failed == {}
    expected = {i: "duplicate" if f"id:{i}" in stored else "stored" for i in ids}
    assert second.acked == expected
    final = await fetch_keys(db_dsn)
    assert sorted(final) == sorted(f"id:{i}" for i in ids)  # each event exactly once
    provoke_logs(again)
    again.proc.send_signal(signal.SIGTERM)
    assert again.proc.wait(timeout=20) == 0, again.output()
    assert_no_secrets(again)


# --- 2. the database stops during a burst, then comes back ----------------------------------------

BEFORE, STOPPING, DOWN, STARTING, UP = range(5)  # phases of the outage, in order


@dataclasses.dataclass
class Answer:
    """One push: the outage phase when it was sent and when it was answered, and the answer."""

    event_id: str
    sent: int
    answered: int
    status: int
    retry_after: str | None


class Pusher:
    """Keeps pushing unique events from a few concurrent senders, tagging each with the phase."""

    def __init__(self, client: Client, senders: int = 12) -> None:
        self.client = client
        self.phase = BEFORE
        self.answers: list[Answer] = []
        self._next = 0
        self._stop = False
        self._tasks = [asyncio.create_task(self._send()) for _ in range(senders)]

    async def _send(self) -> None:
        while not self._stop:
            self._next += 1
            event_id, sent = f"outage-{self._next:05d}", self.phase
            resp = await self.client.post(HOOK, data=push(event_id), headers=JSON)
            await resp.read()
            self.answers.append(Answer(event_id, sent, self.phase, resp.status,
                                       resp.headers.get("Retry-After")))
            if resp.status != 200:
                await asyncio.sleep(0.05)  # a vendor backs off too; don't spin the loaded CPU

    def count(self, status: int, sent: int) -> int:
        """Answers with `status` to pushes sent in phase `sent`."""
        return sum(a.status == status and a.sent == sent for a in self.answers)

    async def until(self, what: Callable[[], bool], timeout: float, label: str) -> None:
        """Wait (bounded) until `what()` holds."""
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, f"timed out waiting for {label}"
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Let every sender finish its current push."""
        self._stop = True
        await asyncio.gather(*self._tasks)


async def test_database_outage_during_a_burst_gives_503_then_recovers_without_restart(
        short_dir: Path, aiohttp_client: AiohttpClient) -> None:
    """While the database is down pushes get 503 + Retry-After, never 200; afterwards 200 again.

    syncd runs on its embedded PostgreSQL; the test stops that server with pg_ctl in the middle of
    a burst of pushes and starts it again. The same app (no restart) must answer 200 again within a
    bounded wait, /readyz must say ready, and every push acknowledged before, during or after the
    outage must be in ops.inbox.
    """
    settings = Settings(data_dir=short_dir, server={"port": 0, "shutdown_timeout": 5},
                        neolock=neolock_section(), jobs=jobs_off())
    client = await aiohttp_client(create_app(settings))
    pgdata = short_dir / "postgres"
    pusher = Pusher(client)
    try:
        await pusher.until(lambda: pusher.count(200, BEFORE) >= 200, 30, "200 acks before the stop")
        pusher.phase = STOPPING
        await asyncio.to_thread(pg_ctl, pgdata, "-w", "-m", "fast", "stop")
        pusher.phase = DOWN
        await pusher.until(lambda: pusher.count(503, DOWN) >= 50, 30, "503s during the outage")
        pusher.phase = STARTING
        await asyncio.to_thread(pg_start, pgdata)
        pusher.phase = UP
        await pusher.until(lambda: pusher.count(200, UP) >= 100, 30, "200s after the restart")
    finally:
        await pusher.stop()

    answers = pusher.answers
    assert {a.status for a in answers} <= {200, 503}
    during = [a for a in answers if a.sent == DOWN and a.answered == DOWN]
    assert during and all(a.status == 503 for a in during), "a push was acked with the database down"
    for a in answers:
        if a.status == 503:
            assert a.retry_after is not None and int(a.retry_after) > 0, a
    ready = await client.get("/readyz")
    assert ready.status == 200, await ready.text()

    acked = {f"id:{a.event_id}" for a in answers if a.status == 200}
    stored = await fetch_keys(f"postgresql://postgres:@/postgres?host={pgdata}")
    assert len(stored) == len(set(stored))
    assert acked - set(stored) == set(), "acknowledged events were lost in the outage"


# --- 3. SIGTERM while a push is in flight ---------------------------------------------------------


async def test_sigterm_while_a_push_body_is_arriving_still_answers_200(
        daemons: Daemons, db_dsn: str) -> None:
    """A push whose headers arrived before SIGTERM and whose body arrives after is stored and acked.

    The drain (server.shutdown_timeout, 3 s here) is far longer than the body takes to arrive.
    """
    daemon = daemons.start(db_dsn, shutdown_timeout=3)
    body = push("sigterm-partial")
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
        sock.sendall(request_head(daemon.port, len(body)) + body[:10])
        daemon.round_trip()  # the server has parsed our headers; the handler waits for the body
        daemon.proc.send_signal(signal.SIGTERM)
        daemons.notify.wait_for("STOPPING=1", daemon.proc)
        wait_until_closed(daemon)  # the drain has begun: the rest of the body arrives during it
        sock.sendall(body[10:])
        response = read_response(sock)
    assert daemon.proc.wait(timeout=20) == 0, daemon.output()
    assert response.startswith(b"HTTP/1.1 200"), response
    assert body_of(response) == {"status": "stored"}
    assert await fetch_keys(db_dsn) == ["id:sigterm-partial"]
    assert_no_secrets(daemon)


async def test_sigterm_while_a_push_waits_for_its_commit_still_answers_200(
        daemons: Daemons, db_dsn: str) -> None:
    """A push whose commit is held up when SIGTERM arrives is committed, acked 200, then syncd exits 0.

    A transaction in the test holds ops.inbox locked, so the handler is provably mid-request (its
    INSERT waits on the lock in pg_stat_activity) when the signal arrives; the lock is released only
    once syncd has stopped listening, i.e. while it drains.
    """
    daemon = daemons.start(db_dsn)
    provoke_logs(daemon)
    body = push("sigterm-commit")
    holder, observer = await asyncpg.connect(db_dsn), await asyncpg.connect(db_dsn)
    try:
        locked = holder.transaction()
        await locked.start()
        await holder.execute("LOCK TABLE ops.inbox IN EXCLUSIVE MODE")
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as sock:
            sock.sendall(request_head(daemon.port, len(body)) + body)
            for _ in range(300):  # outside a transaction: pg_stat_activity is not a snapshot
                waiting = await observer.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query ILIKE '%INSERT INTO ops.inbox%'")
                if waiting:
                    break
                await asyncio.sleep(0.05)
            assert waiting, "the push never reached its INSERT"
            daemon.proc.send_signal(signal.SIGTERM)
            daemons.notify.wait_for("STOPPING=1", daemon.proc)
            wait_until_closed(daemon)
            await locked.rollback()
            response = read_response(sock)
    finally:
        await holder.close()
        await observer.close()
    assert daemon.proc.wait(timeout=20) == 0, daemon.output()
    assert response.startswith(b"HTTP/1.1 200"), response
    assert body_of(response) == {"status": "stored"}
    assert await fetch_keys(db_dsn) == ["id:sigterm-commit"]
    assert_no_secrets(daemon)


# --- 4. bad input ---------------------------------------------------------------------------------

MAX_BODY = 4096


@pytest.fixture
async def hook(make_settings: Callable[..., Settings], aiohttp_client: AiohttpClient) -> Client:
    """syncd's app on a fresh migrated database, with a configured hook secret and small bodies."""
    settings = make_settings(neolock=neolock_section(), jobs=jobs_off(),
                             server={"max_body_bytes": MAX_BODY})
    return await aiohttp_client(create_app(settings))


@pytest.fixture
async def pg(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test database, to look at what syncd stored."""
    conn = await asyncpg.connect(db_dsn)
    yield conn
    await conn.close()


async def counts(pg: asyncpg.Connection) -> tuple[int, int]:
    """Rows in (ops.inbox, ops.quarantine)."""
    row = await pg.fetchrow("SELECT (SELECT count(*) FROM ops.inbox) AS i, "
                            "(SELECT count(*) FROM ops.quarantine) AS q")
    assert row is not None
    return int(row["i"]), int(row["q"])


async def quarantined(pg: asyncpg.Connection) -> list[bytes]:
    """Raw bodies in ops.quarantine, oldest first."""
    return [bytes(r["body"]) for r in await pg.fetch("SELECT body FROM ops.quarantine ORDER BY id")]


async def test_wrong_secret_is_404_and_stores_nothing(hook: Client, pg: asyncpg.Connection) -> None:
    """A push to any other secret is 404 (JSON error) and leaves ops.inbox and ops.quarantine alone."""
    for secret in ("wrong-secret-of-a-plausible-length", HOOK_SECRET[:-1], HOOK_SECRET + "x",
                   HOOK_SECRET.upper(), "x"):
        for body in (push("wrong-secret"), b"not json at all"):
            resp = await hook.post(f"/hooks/neolock/{secret}", data=body, headers=JSON)
            assert resp.status == 404, secret
            assert (await resp.json())["status"] == 404
    assert await counts(pg) == (0, 0)


async def test_invalid_json_is_400_and_kept_raw_in_quarantine(
        hook: Client, pg: asyncpg.Connection) -> None:
    """Not-JSON (or not-UTF-8, or NaN/Infinity) is 400, and its exact bytes are kept in ops.quarantine."""
    bodies = [b'{"id": "cut", "event":', b"not json", b"", b"NaN", b'{"id": "x", "n": Infinity}',
              b'{"id": "\xff\xfe"}']
    for body in bodies:
        resp = await hook.post(HOOK, data=body, headers=JSON)
        assert resp.status == 400, body
        assert (await resp.json())["status"] == 400
    assert await counts(pg) == (0, len(bodies))
    assert await quarantined(pg) == bodies


async def test_json_postgres_cannot_store_is_400_and_quarantined(
        hook: Client, pg: asyncpg.Connection) -> None:
    """Valid JSON that jsonb refuses (NUL characters, unpaired surrogates) is 400 and quarantined raw."""
    bodies = [
        b'{"id": "nul", "note": "a\\u0000b"}',        # NUL in a value, as a JSON escape
        b'{"id": "nul-key", "a\\u0000": 1}',          # NUL in a key
        b'{"id": "lone", "note": "\\ud800"}',         # lone high surrogate, as a JSON escape
        b'{"id": "lone-low", "note": ["\\udc00"]}',   # lone low surrogate, nested
        b'{"id": "raw", "note": "\xed\xa0\x80"}',     # a surrogate encoded straight into UTF-8
    ]
    for body in bodies:
        resp = await hook.post(HOOK, data=body, headers=JSON)
        assert resp.status == 400, body
    assert await counts(pg) == (0, len(bodies))
    assert await quarantined(pg) == bodies


async def test_body_over_max_body_bytes_is_413_with_a_json_error(
        hook: Client, pg: asyncpg.Connection) -> None:
    """A push over server.max_body_bytes is 413 with a JSON error body, and nothing is stored."""
    body = json.dumps({"id": "big", "pad": "x" * MAX_BODY}).encode()
    resp = await hook.post(HOOK, data=body, headers=JSON)
    assert resp.status == 413
    error = await resp.json()
    assert error["status"] == 413 and error["error"] and error["request_id"]
    assert await counts(pg) == (0, 0)


async def test_duplicate_pushes_are_stored_once(hook: Client, pg: asyncpg.Connection) -> None:
    """The same event id, or the same id-less body, pushed twice is stored once; the second is "duplicate"."""
    by_id = [push("dup-1"), json.dumps({"id": "dup-1", "event": "device.unlocked"}).encode()]
    no_id = json.dumps({"event": "device.locked", "deviceUid": "uid-no-id"}).encode()
    answers = []
    for body in [*by_id, no_id, no_id]:
        resp = await hook.post(HOOK, data=body, headers=JSON)
        assert resp.status == 200
        answers.append((await resp.json())["status"])
    assert answers == ["stored", "duplicate", "stored", "duplicate"]
    keys = sorted(r["dedupe_key"] for r in await pg.fetch("SELECT dedupe_key FROM ops.inbox"))
    assert keys[0] == "id:dup-1" and keys[1].startswith("sha256:") and len(keys) == 2


async def test_push_of_unknown_shape_is_stored_then_marked_unparsed_and_counted(
        hook: Client, pg: asyncpg.Connection) -> None:
    """Valid JSON naming no device is acked 200, then the inbox worker marks it 'unparsed' and counts it."""
    resp = await hook.post(HOOK, data=b'{"hello": ["world", 1, null]}', headers=JSON)
    assert resp.status == 200 and (await resp.json()) == {"status": "stored"}
    status = None
    for _ in range(200):
        status = await pg.fetchval("SELECT status FROM ops.inbox")
        if status != "pending":
            break
        await asyncio.sleep(0.05)
    assert status == "unparsed"
    counted = 'syncd_events_total{outcome="unparsed",source="neolock"} 1.0'
    for _ in range(100):  # the worker counts just after its UPDATE returns
        metrics = await (await hook.get("/metrics")).text()
        if counted in metrics:
            break
        await asyncio.sleep(0.05)
    assert counted in metrics


async def test_concurrent_pushes_are_group_committed(hook: Client, pg: asyncpg.Connection) -> None:
    """200 concurrent pushes are all stored, in fewer commits than pushes."""

    async def one(i: int) -> int:
        resp = await hook.post(HOOK, data=push(f"group-{i}"), headers=JSON)
        await resp.read()
        return resp.status

    statuses = await asyncio.gather(*(one(i) for i in range(200)))
    assert statuses == [200] * 200
    assert await counts(pg) == (200, 0)
    committer = hook.app[intake.INTAKE].committer
    assert committer.rows == 200
    assert committer.batches < 200


# --- bad input that Python's json module accepts but PostgreSQL's jsonb would refuse ---------------


@pytest.mark.parametrize("body", [
    pytest.param(b'\xef\xbb\xbf{"id": "bom", "deviceUid": "u1"}', id="utf8-bom"),
    pytest.param(b'{"id": "huge", "n": 1e1000000}', id="number-out-of-range"),
    pytest.param('{"id": "utf16"}'.encode("utf-16"), id="utf-16"),
    pytest.param(b'{"id": "deep", "a": ' + b"[" * 1500 + b"]" * 1500 + b"}", id="deep-nesting"),
])
async def test_json_that_python_accepts_but_jsonb_refuses_is_400_and_quarantined(
        hook: Client, pg: asyncpg.Connection, body: bytes) -> None:
    """A body Python's json parser accepts but syncd cannot store as jsonb is 400 and quarantined raw."""
    resp = await hook.post(HOOK, data=body, headers=JSON)
    assert resp.status == 400, await resp.text()
    assert await counts(pg) == (0, 1)
    assert await quarantined(pg) == [body]


async def test_one_refused_row_does_not_fail_the_rows_committed_with_it(
        db: Database, pg: asyncpg.Connection, db_dsn: str) -> None:
    """If PostgreSQL refuses one row of a group commit, only that push fails; the others are stored.

    Intake already refuses every body it knows jsonb would reject, so the committer is driven
    directly with one body that is not JSON at all. A lock held by the test stalls the first
    commit, so the bad row and 20 good ones queue up together and go into the next batch.
    """
    committer = GroupCommitter(db)
    holder = await asyncpg.connect(db_dsn)
    try:
        locked = holder.transaction()
        await locked.start()
        await holder.execute("LOCK TABLE ops.inbox IN EXCLUSIVE MODE")
        first = committer.submit(item("first"))
        for _ in range(200):  # the first batch is now waiting on the lock
            if await pg.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                                 "'Lock' AND query ILIKE '%INSERT INTO ops.inbox%'"):
                break
            await asyncio.sleep(0.05)
        bad = committer.submit(InboxItem("neolock", "id:bad", None, None, '{"not json'))
        good = [committer.submit(item(f"good-{i}")) for i in range(20)]
        await wait_for(lambda: pg.fetchval(
            "SELECT count(*) = 2 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query ILIKE '%INSERT INTO ops.inbox%'"), what="the second batch on the lock too")
        await locked.rollback()
        assert await first is True
        with pytest.raises(DataRejected):
            await bad
        assert [await g for g in good] == [True] * 20
    finally:
        await holder.close()
    assert await counts(pg) == (21, 0)


def item(event_id: str) -> InboxItem:
    """An inbox item as intake would build it for push(event_id)."""
    return InboxItem("neolock", f"id:{event_id}", "KG_DEVICE_LOCKED", None,
                     push(event_id).decode())


async def test_pushes_while_database_connections_are_terminated_get_503_never_500(
        hook: Client, pg: asyncpg.Connection) -> None:
    """While syncd's database connections keep being terminated, pushes get 200 or 503, never 500.

    Terminating a backend is what a PostgreSQL shutdown, failover or idle-session reaper does to
    every connection. Every 503 carries Retry-After and every acknowledged push is stored.
    """
    pusher = Pusher(hook)
    try:
        await pusher.until(lambda: pusher.count(200, BEFORE) >= 50, 30, "acks before the terminations")
        for _ in range(40):
            await pg.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE application_name = 'syncd' AND datname = current_database()")
            await asyncio.sleep(0.02)  # the scenario: terminations spread while pushes go on
        pusher.phase = UP
        await pusher.until(lambda: pusher.count(200, UP) >= 20, 30, "acks after the terminations")
    finally:
        await pusher.stop()
    statuses = collections.Counter(a.status for a in pusher.answers)
    assert set(statuses) <= {200, 503}, statuses
    assert all(a.retry_after for a in pusher.answers if a.status == 503)
    stored = {r["dedupe_key"] for r in await pg.fetch("SELECT dedupe_key FROM ops.inbox")}
    assert {f"id:{a.event_id}" for a in pusher.answers if a.status == 200} <= stored


async def test_a_push_that_is_a_bare_json_string_is_stored_and_marked_unparsed(
        hook: Client, pg: asyncpg.Connection) -> None:
    """Valid JSON that is not an object (here a string) is acked, stored, and settled as unparsed."""
    resp = await hook.post(HOOK, data=b'"just a string"', headers=JSON)
    assert resp.status == 200
    for _ in range(100):
        status = await pg.fetchval("SELECT status FROM ops.inbox")
        if status != "pending":
            break
        await asyncio.sleep(0.05)
    assert status == "unparsed"
