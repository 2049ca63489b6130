"""The drill's timeline: start everything as production runs it, inject the faults, let it settle,
judge the invariants. `SHORT` runs inside `make test`; `LONG` is `make drill`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg

from syncd.devtools.simulators.alert_receiver import AlertReceiver, create_app
from syncd.devtools.simulators.common import serve
from tests.drills import invariants as judge
from tests.drills.configs import JOB_INTERVALS, Hook, replica_config, whsec
from tests.drills.invariants import Observed, Row
from tests.drills.postgres import Postgres
from tests.drills.probes import LedgerProbe, PushBurst, Query, ResponsivenessProbe, sql
from tests.drills.processes import Replica, Simulators, free_port, syncd

VENDORS = ("neolock", "knoxguard", "codelocks", "biotime")
STORMED = ("neolock", "knoxguard", "biotime")  # a Codelocks 429 means its quota: done apart
SLOW = 1.0  # seconds every vendor takes to answer while the drill runs
JOBS = (*JOB_INTERVALS, "neolock-subscription", "k3-locks", "k3-audit", "k3-clients")
MISSING_PHONES = 8  # contracts naming phones no vendor holds: drift cases, hence alerts
STATUS_DOWN_WINDOW = 60.0  # DESIGN.md / issue 20: status says down within a minute
ALONE = 30.0  # seconds the hookless replica gets to queue its drift alerts before the others start
MID_RUN = 20.0  # seconds to wait for the victim to be mid-run before killing it anyway


@dataclasses.dataclass(frozen=True)
class Plan:
    """How big and how long a drill is."""

    name: str
    devices: int  # phones in each of the NeoLock and Knox Guard fleets
    bursts: tuple[int, int]  # events pushed during the kill, and after the PostgreSQL restart
    burst_rate: float  # events a second in the first burst (the kill lands inside it)
    storm_seconds: float  # length of each 5xx burst and each 429 storm
    storms: int  # rounds of (5xx burst, 429 storm)
    settle_after_kill: float  # leases and abandoned runs of the killed replica must clear by then
    settle_min: float  # at least this long after the last burst for the inbox to drain
    status_down: bool  # kill the last replica and wait for `syncd status` to say down
    rejoin: bool  # start the killed replica again after the PostgreSQL restart


SHORT = Plan("short", devices=20, bursts=(150, 50), burst_rate=20.0, storm_seconds=4.0, storms=1,
             settle_after_kill=80.0, settle_min=30.0, status_down=False, rejoin=False)
LONG = Plan("long", devices=50, bursts=(1500, 500), burst_rate=100.0, storm_seconds=15.0, storms=3,
            settle_after_kill=90.0, settle_min=180.0, status_down=True, rejoin=True)


@dataclasses.dataclass
class Report:
    """The outcome: the table's rows, where the logs are, and the drill's own notes."""

    plan: Plan
    rows: list[Row]
    logs: Path
    notes: list[str]

    def row(self, key: str) -> Row:
        """The row with this key."""
        return next(r for r in self.rows if r.key == key)

    def table(self) -> str:
        """The table as text."""
        return judge.render(self.rows, f"drill ({self.plan.name}); logs in {self.logs}")


async def until(check: Callable[[], Awaitable[bool]], deadline: float, every: float = 0.5) -> bool:
    """Poll `check` until it is true or `deadline` (monotonic) passes."""
    while True:
        with contextlib.suppress(OSError, TimeoutError, asyncpg.PostgresError,
                                 asyncpg.InterfaceError):
            if await check():
                return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)


class Drill:
    """One drill run: its processes, probes and observations."""

    def __init__(self, plan: Plan, root: Path, stack: contextlib.AsyncExitStack) -> None:
        self.plan = plan
        self.root = root
        self.stack = stack
        self.pg = Postgres(root)
        self.sims = Simulators(root / "simulate.log")
        self.secret = "drill-" + secrets.token_hex(16)  # a URL path segment: hex only
        self.seen = Observed(replicas=[])
        self.notes: list[str] = []
        self.query: Query = sql("")
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        # The probe's own session: its requests never queue behind a burst's for a connection.
        self.probe_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self.hooks: list[Hook] = []
        self.unsettled: list[str] = ["not checked yet"]

    @property
    def live(self) -> list[Replica]:
        """Replicas neither killed nor stopped."""
        return [r for r in self.seen.replicas if r.alive]

    async def setup(self) -> None:
        """PostgreSQL, simulators, two alert receivers, migrations, drift; then the hookless
        replica C alone until its drift cases are in the outbox (the issue's "B without hooks
        opens drift cases, then A with the hook starts"); then vendors slow, and A and B."""
        self.stack.push_async_callback(self.http.close)
        self.stack.push_async_callback(self.probe_http.close)
        await self.pg.start()
        self.stack.callback(self.pg.stop)
        self.query = sql(self.pg.dsn)
        await self.sims.start(self.plan.devices)
        self.stack.push_async_callback(self.sims.stop)
        for name in ("hook-1", "hook-2"):
            receiver = AlertReceiver(secret=whsec())
            running = await self.stack.enter_async_context(serve(create_app(receiver)))
            self.seen.receivers[name] = receiver
            self.hooks.append(Hook(name, f"{running.url}/{name}", receiver.secret))
        for name, hooks in (("A", self.hooks), ("B", self.hooks), ("C", [])):
            self.seen.replicas.append(self.new_replica(name, hooks))
        code, out = await syncd("migrate", "--config", str(self.seen.replicas[0].config))
        assert code == 0, f"syncd migrate failed: {out}"
        await self.query("INSERT INTO local.phone_contracts (device_uid, desired_state, contract_ref)"
                         " SELECT 'drill-missing-' || n, 'locked', 'drill' "
                         "FROM generate_series(1, $1) AS n", MISSING_PHONES)
        self.stack.push_async_callback(self._stop_all)
        self.seen.started_at = time.time()
        hookless = self.seen.replicas[2]
        await self.start_replicas([hookless])

        async def cases_queued() -> bool:
            rows = await self.query("SELECT count(*) AS n FROM ops.outbox")
            return bool(rows[0]["n"] >= MISSING_PHONES)

        queued = await until(cases_queued, time.monotonic() + ALONE)
        self.note(f"hookless C alone: {'alerts queued' if queued else f'no alerts queued in {ALONE:g}s'}")
        for vendor in VENDORS:
            await self.sims.fault(vendor, latency=SLOW)
        await self.start_replicas(self.seen.replicas[:2])
        self.note("A and B listening; every vendor 1s slow")

    def note(self, text: str) -> None:
        """Add a line to the drill's notes (and drill.log, to follow it live), stamped with the
        time since the first replica started."""
        line = f"t+{time.time() - self.seen.started_at:.0f}s {text}"
        self.notes.append(line)
        with (self.root / "drill.log").open("a") as log:
            print(line, file=log)

    async def start_replicas(self, replicas: list[Replica]) -> None:
        """Start `replicas` together and wait (up to a minute) until each one listens."""
        await asyncio.gather(*(r.start() for r in replicas))
        deadline = time.monotonic() + 60
        up = await asyncio.gather(*(r.wait_listening(self.http, deadline) for r in replicas))
        assert all(up), "a replica never listened:\n" + "\n".join(
            f"{r.name}: {r.log_tail()}" for r, ok in zip(replicas, up, strict=True) if not ok)

    def new_replica(self, name: str, hooks: list[Hook], port: int | None = None) -> Replica:
        """A replica (not started yet) with its own directory, port and config file (0600)."""
        port = port or free_port()
        directory = self.root / name
        directory.mkdir(exist_ok=True)
        config = directory / "syncd.toml"
        config.write_text(replica_config(
            data_dir=directory / "data", dsn=self.pg.dsn, port=port,
            vendors=self.sims.sections, webhook_secret=self.secret, hooks=hooks))
        config.chmod(0o600)
        return Replica(name, config, port, directory / "syncd.log")

    async def _stop_all(self) -> None:
        await asyncio.gather(*(r.stop(10.0) for r in self.seen.replicas))

    async def _running_runs(self, replica: Replica) -> list[str]:
        rows = await self.query("SELECT job FROM ops.sync_runs WHERE status = 'running' "
                                "AND runner LIKE '%:' || $1::text", str(replica.pid))
        return [r["job"] for r in rows]

    async def burst_with_kill(self, burst: PushBurst, victim: Replica) -> None:
        """Push to every replica at once; kill -9 `victim` mid-burst while it runs a job."""
        bodies = await self.sims.call("POST", "/neolock/events",
                                      params={"count": str(self.plan.bursts[0])})
        sending = asyncio.create_task(burst.send(
            bodies, self.plan.burst_rate, within=2 * len(bodies) / self.plan.burst_rate + 30))
        jobs: list[str] = []

        async def mid_run() -> bool:
            if len(burst.pushed) < len(bodies) // 3:
                return False
            jobs[:] = await self._running_runs(victim)
            return bool(jobs)

        found = await until(mid_run, time.monotonic() + MID_RUN, every=0.2)
        await victim.kill9()
        self.note(f"kill -9 {victim.name} after {len(burst.pushed)}/{len(bodies)} pushes, "
                  + (f"mid-run of {', '.join(jobs)}" if found else "while running no job"))
        await sending
        self.note(f"first burst: {len(burst.pushed)} of {len(bodies)} events posted")

    async def storms(self) -> None:
        """5xx bursts, then 429 storms, on NeoLock, Knox Guard and BioTime (vendors stay slow)."""
        for _ in range(self.plan.storms):
            for spec in ({"error_rate": 0.5}, {"throttle_rate": 0.7}):
                for vendor in STORMED:
                    await self.sims.fault(vendor, latency=SLOW, **spec)
                await asyncio.sleep(self.plan.storm_seconds)  # the storm's length, not a wait
            for vendor in STORMED:
                await self.sims.fault(vendor, latency=SLOW)
        self.note(f"{self.plan.storms} round(s) of a 5xx burst and a 429 storm over "
                  f"({self.plan.storm_seconds:g}s each) on {', '.join(STORMED)}")

    async def quota_exhaustion(self) -> Row:
        """The Codelocks quota used up at the vendor, then the K3 jobs run once by an operator."""
        exhausted_at = time.time()
        before = await self.sims.call("POST", "/codelocks/quota/utility/exhaust")

        async def asked() -> bool:
            # Until a call reaches the vendor: a daemon's K3 run may hold a job's lock (the
            # command skips it), or no lock may be stored yet for the others to ask about.
            code, out = await syncd("sync", "k3-locks", "k3-audit", "k3-clients", "--once",
                                    "--config", str(self.live[0].config), timeout=60)
            lines = [line for line in out.splitlines() if line.startswith("k3-")]
            self.note(f"syncd sync k3-* --once exit {code}: " + " | ".join(lines))
            now = await self.sims.call("GET", "/codelocks/quota/utility")
            return bool(now["refused"] > before["refused"])

        await until(asked, time.monotonic() + 20, every=2.0)
        after = await self.sims.call("GET", "/codelocks/quota/utility")
        return await judge.quota_refusal_not_retried(self.query, exhausted_at, before, after)

    async def restart_postgres(self) -> None:
        """Stop PostgreSQL (connections cut) and start it again."""
        down, up = await asyncio.to_thread(self.pg.restart)
        self.seen.pg_restarts.append((down, up))
        self.note(f"PostgreSQL restarted: down {up - down:.1f}s")

    async def change_drift(self) -> None:
        """Half the missing phones' contracts end: their drift cases resolve (more alerts)."""
        async def delete() -> bool:
            await self.query("DELETE FROM local.phone_contracts WHERE device_uid IN "
                             "(SELECT 'drill-missing-' || n FROM generate_series(1, $1) AS n)",
                             MISSING_PHONES // 2)
            return True

        await until(delete, time.monotonic() + 20)

    async def settled(self, killed: list[Replica]) -> bool:
        """Acknowledged pushes processed, killed replicas' runs closed, alerts at every hook;
        what is still open is kept in `self.unsettled`."""
        self.seen.alert_cutoff = time.time()
        keys = [f"id:{p.event_id}" for p in self.seen.pushed if p.acknowledged]
        open_events = await self.query(
            "SELECT count(*) AS n FROM ops.inbox WHERE source = 'neolock' AND status = 'pending' "
            "AND dedupe_key = ANY($1::text[])", keys)
        stuck = [f"{r.name}: {', '.join(jobs)}" for r in killed if (jobs := await self._running_runs(r))]
        outbox = {r["event_id"] for r in await self.query("SELECT event_id FROM ops.outbox")}
        undelivered = {name: len(outbox - {g.webhook_id for g in receiver.received})
                       for name, receiver in self.seen.receivers.items()}
        self.unsettled = ([f"{open_events[0]['n']} acknowledged pushes pending"]
                          if open_events[0]["n"] else [])
        self.unsettled += [f"runs of killed {s} still running" for s in stuck]
        self.unsettled += [f"{n} alerts not yet at {h}" for h, n in undelivered.items() if n]
        return not self.unsettled


async def run(plan: Plan, root: Path) -> Report:
    """Run one drill under `root` and judge it."""
    async with contextlib.AsyncExitStack() as stack:
        drill = Drill(plan, root, stack)
        await drill.setup()
        return await _timeline(drill)
    raise AssertionError("unreachable")  # pragma: no cover (mypy: the stack may swallow)


async def _timeline(drill: Drill) -> Report:
    plan, seen = drill.plan, drill.seen
    a, b = seen.replicas[0], seen.replicas[1]
    stop = asyncio.Event()
    probe = ResponsivenessProbe(drill.probe_http, seen.replicas)
    ledger = LedgerProbe(drill.sims, drill.query)
    watchers = [asyncio.create_task(probe.run(stop)), asyncio.create_task(ledger.run(stop))]
    burst = PushBurst(drill.http, seen.replicas, drill.secret)
    await drill.burst_with_kill(burst, b)
    storms = asyncio.create_task(drill.storms())
    quota = await drill.quota_exhaustion()
    await storms
    await drill.restart_postgres()
    await drill.change_drift()
    if plan.rejoin:
        seen.replicas.append(drill.new_replica("B2", drill.hooks, port=b.port))
        await drill.start_replicas(seen.replicas[-1:])
        drill.note("B started again as B2")
    bodies = await drill.sims.call("POST", "/neolock/events", params={"count": str(plan.bursts[1])})
    await burst.send(bodies, within=60.0)
    drill.note(f"second burst posted; {sum(p.acknowledged for p in burst.pushed)} of "
               f"{len(burst.pushed)} events acknowledged so far")
    drill.note("vendors stay 1s slow while the drill settles")
    assert b.killed_at is not None
    deadline = time.monotonic() + max(b.killed_at + plan.settle_after_kill - time.time(),
                                      plan.settle_min)
    seen.pushed = burst.pushed
    if not await until(lambda: drill.settled([b]), deadline, every=2.0):
        drill.note("did not settle before the deadline: " + "; ".join(drill.unsettled))
    else:
        drill.note("settled")
    stop.set()
    await asyncio.gather(*watchers)
    seen.samples, seen.ledger = probe.samples, ledger.samples
    seen.vendor_pushes = await drill.sims.call("GET", "/neolock/deliveries")
    rows = [await judge.pushes_stored_and_processed_once(seen, drill.query),
            await judge.no_overlapping_runs(seen, drill.query),
            await judge.alerts_delivered_to_every_hook(seen, drill.query)]
    rows += await _ending(drill, a)
    rows += [judge.ledger_never_above_quota(seen), quota,
             judge.responsive_while_slow(seen),
             await judge.every_job_ran(seen, drill.query, JOBS)]
    return Report(plan, rows, drill.root, drill.notes)


async def _ending(drill: Drill, last: Replica) -> list[Row]:
    """Status while replicas live; stop them; nothing left running; status once all are gone."""
    readyz: dict[str, int | str] = {}
    for replica in drill.live:
        try:
            async with drill.http.get(replica.url + "/readyz",
                                      timeout=aiohttp.ClientTimeout(total=5)) as resp:
                readyz[replica.name] = resp.status
        except (aiohttp.ClientError, TimeoutError) as err:
            readyz[replica.name] = type(err).__name__
    code, out = await syncd("status", "--config", str(last.config))
    verdict = " ".join(out.split())[:160]
    live_row = judge.status_while_live(readyz, code, verdict)
    others = [r for r in drill.live if r is not last]
    await asyncio.gather(*(r.stop() for r in others))
    if not drill.plan.status_down:
        await last.stop()
        running = await judge.no_run_left_running(drill.seen, drill.query, live=[])
        return [running, live_row, judge.status_when_all_down([], None, STATUS_DOWN_WINDOW)]
    running = await judge.no_run_left_running(drill.seen, drill.query, live=[last])
    await last.kill9()
    polls: list[tuple[float, int]] = []

    async def down() -> bool:
        asked = time.time()
        code, _ = await syncd("status", "--config", str(last.config), timeout=30)
        polls.append((asked, code))
        return code == 2

    await until(down, time.monotonic() + STATUS_DOWN_WINDOW + 30, every=1.0)
    return [running, live_row, judge.status_when_all_down(polls, last.killed_at,
                                                          STATUS_DOWN_WINDOW)]
