"""What the drill does and watches while it runs: push bursts to every replica at once, a probe of
/readyz and POST /v2/device on each live replica, and samples of the Codelocks quota ledger."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import asyncpg

from tests.drills.processes import Replica, Simulators

PROBE_TIMEOUT = 3.0  # an answer slower than this counts as no answer (the bound)
PROBE_EVERY = 1.0
POST_TIMEOUT = 5.0  # as long as the NeoLock simulator waits for an answer to its own pushes

Query = Callable[..., Awaitable[list[asyncpg.Record]]]


def sql(dsn: str) -> Query:
    """Run one statement on a fresh connection (survives a PostgreSQL restart); its rows."""

    async def run(statement: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            return list(await conn.fetch(statement, *args, timeout=10))
        finally:
            await conn.close()

    return run


@dataclasses.dataclass
class Pushed:
    """One event posted to every live replica at once."""

    event_id: str
    statuses: dict[str, int | str] = dataclasses.field(default_factory=dict)  # replica → answer

    @property
    def acknowledged(self) -> bool:
        """Some replica answered 200: the event must be stored and processed."""
        return any(s == 200 for s in self.statuses.values())


class PushBurst:
    """NeoLock events, each posted to every live replica concurrently (as a vendor retrying
    across a load balancer would), `parallel` events in flight at a time."""

    def __init__(self, http: aiohttp.ClientSession, replicas: Sequence[Replica], secret: str,
                 *, parallel: int = 25) -> None:
        self.http = http
        self.replicas = replicas
        self.secret = secret
        self.parallel = parallel
        self.pushed: list[Pushed] = []

    async def send(self, bodies: list[dict[str, Any]], rate: float | None = None,
                   within: float = 60.0) -> None:
        """Post every body to every replica alive at the time, starting at most `rate` events a
        second (None: as fast as `parallel` allows) and none after `within` seconds (replicas
        that time out must not stretch the drill); record each answer."""
        queue = list(reversed(bodies))
        began, started = time.monotonic(), itertools.count()

        async def worker() -> None:
            while queue and time.monotonic() - began < within:
                body = queue.pop()
                if rate:  # the burst's shape (it lasts len/rate seconds), not a synchronisation
                    await asyncio.sleep(max(began + next(started) / rate - time.monotonic(), 0))
                await self._one(body)

        await asyncio.gather(*(worker() for _ in range(self.parallel)))

    async def _one(self, body: dict[str, Any]) -> None:
        pushed = Pushed(str(body["id"]))
        self.pushed.append(pushed)
        raw = json.dumps(body).encode()
        live = [r for r in self.replicas if r.alive]
        answers = await asyncio.gather(*(self._post(r, raw) for r in live))
        pushed.statuses = {r.name: a for r, a in zip(live, answers, strict=True)}

    async def _post(self, replica: Replica, raw: bytes) -> int | str:
        try:
            async with self.http.post(f"{replica.url}/hooks/neolock/{self.secret}", data=raw,
                                      headers={"Content-Type": "application/json"},
                                      timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT)) as resp:
                return resp.status
        except (aiohttp.ClientError, TimeoutError) as err:
            return type(err).__name__


@dataclasses.dataclass(frozen=True)
class Sample:
    """One probe of one replica: when, what, whether it answered well in time."""

    replica: str
    at: float
    what: str  # "readyz" or "registry"
    ok: bool
    seconds: float
    answer: int | str


class ResponsivenessProbe:
    """Every second, GET /readyz and POST /v2/device on each live replica, concurrently."""

    def __init__(self, http: aiohttp.ClientSession, replicas: Sequence[Replica]) -> None:
        self.http = http
        self.replicas = replicas
        self.samples: list[Sample] = []
        self._macs = itertools.count(1)

    async def run(self, stop: asyncio.Event) -> None:
        """Probe until `stop` is set."""
        while not stop.is_set():
            tick = time.monotonic()
            live = [r for r in self.replicas if r.alive]
            await asyncio.gather(*(self._probe(r) for r in live))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(PROBE_EVERY - (time.monotonic() - tick), 0.05))

    async def _probe(self, replica: Replica) -> None:
        mac = f"D0{next(self._macs):010X}"
        device = {"mac_address": mac, "device_os": "Android", "device_version": "14",
                  "device_type": "Mobile", "app_version": "2.0", "app_name": "drill"}
        await asyncio.gather(
            self._timed(replica, "readyz", self.http.get(replica.url + "/readyz", timeout=_probe_timeout())),
            self._timed(replica, "registry", self.http.post(replica.url + "/v2/device", json=device,
                                                            timeout=_probe_timeout())))

    async def _timed(self, replica: Replica, what: str, request: Any) -> None:
        at, started = time.time(), time.monotonic()
        answer: int | str
        try:
            async with request as resp:
                await resp.read()
                answer = resp.status
        except (aiohttp.ClientError, TimeoutError) as err:
            answer = type(err).__name__
        if not replica.alive:  # killed meanwhile: not a sample of a live replica
            return
        seconds = time.monotonic() - started
        ok = isinstance(answer, int) and 200 <= answer < 300 and seconds <= PROBE_TIMEOUT
        self.samples.append(Sample(replica.name, at, what, ok, seconds, answer))


def _probe_timeout() -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=PROBE_TIMEOUT + 2)  # slower than the bound: still measured


@dataclasses.dataclass(frozen=True)
class LedgerSample:
    """The vendor's count of billed Codelocks utility calls, then syncd's ledger, read in that
    order: every call is counted in the ledger before it is sent, so ledger ≥ vendor always."""

    at: float
    vendor_billed: int
    calls: int
    quota: int | None  # None: no ledger row yet (no call counted this period)


class LedgerProbe:
    """Samples the Codelocks ledger (report.api_usage) against the vendor's own count."""

    def __init__(self, sims: Simulators, query: Query) -> None:
        self.sims = sims
        self.query = query
        self.samples: list[LedgerSample] = []
        self.failed_reads = 0

    async def sample(self) -> None:
        """Take one sample (skipped while the database is unreachable)."""
        vendor = await self.sims.call("GET", "/codelocks/quota/utility")
        try:
            rows = await self.query(
                "SELECT calls, quota FROM report.api_usage "
                "WHERE vendor = 'codelocks' AND category = 'utility' AND period = $1",
                vendor["period"])
        except (OSError, asyncpg.PostgresError, TimeoutError):
            self.failed_reads += 1
            return
        calls, quota = (rows[0]["calls"], rows[0]["quota"]) if rows else (0, None)
        self.samples.append(LedgerSample(time.time(), vendor["billed_requests"], calls, quota))

    async def run(self, stop: asyncio.Event) -> None:
        """Sample every second until `stop` is set."""
        while not stop.is_set():
            await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
