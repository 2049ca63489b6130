"""Codelocks K3 pull jobs: `k3-locks`, `k3-clients` (here) and `k3-audit` (audit.py).

Every call is billed against a monthly quota, so the jobs run when the budget planner says so:
the scheduler ticks every `min_interval_seconds`, and a job that is not yet due returns at once
without a call. A job whose budget is gone skips with the reason recorded in ops.quota_plan until
the next period. `syncd sync … --once` runs the jobs now (still within the scheduled budget).

Access keys are secrets: rows carry an HMAC of the key (keyed with the API key), never the key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import aiohttp
import structlog

from syncd.db import codelocks as queries
from syncd.db.pool import Database
from syncd.db.upsert import UpsertSpec, upsert
from syncd.errors import QuotaExhausted, VendorAuthError, VendorNotFound
from syncd.settings.vendors import CodelocksSettings
from syncd.sync.base import RunContext
from syncd.sync.codelocks.planner import JobNeed, JobPlan, plan_intervals
from syncd.sync.codelocks.quota import UTILITY, VENDOR, Clock, QuotaConfig, QuotaLedger, utc_now
from syncd.vendors.codelocks import CodelocksClient, K3Client, K3Lock, QuotaRefusedByVendor
from syncd.vendors.pacing import RetryPolicy

log = structlog.get_logger(__name__)
JOBS = ("k3-locks", "k3-audit", "k3-clients")

LOCKS = UpsertSpec("vendor.k3_locks", key=("lock_id",), columns=(
    "lock_id", "access_key_ref", "lock_name", "battery_status", "battery_updated_at",
    "manufacturer", "model_name", "firmware_version", "timezone", "timezone_offset",
    "pairing_date", "raw"))
CLIENTS = UpsertSpec("vendor.k3_clients", key=("lock_id", "email"), columns=(
    "lock_id", "email", "status", "access_type", "active_periods", "raw"))


def key_ref(api_key: str, access_key: str) -> str:
    """A stable reference to an access key that does not reveal it (HMAC keyed with the API key)."""
    return hmac.new(api_key.encode(), access_key.encode(), hashlib.sha256).hexdigest()[:24]


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """A vendor time without a zone, read as UTC (the vendor's init sequences are UTC)."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def codelocks_client(settings: CodelocksSettings, http: aiohttp.ClientSession,
                     ledger: QuotaLedger, job: str | None, *,
                     retry: RetryPolicy | None = None) -> CodelocksClient:
    """A client whose every call is first reserved in the ledger (for `job`, or an operator)."""
    return CodelocksClient(http, str(settings.base_url), settings.api_key,
                           rate=settings.rate_limit,
                           retry=retry or RetryPolicy(max_retries=settings.max_retries),
                           before_call=ledger.hook(job))


class K3Context:
    """What the three K3 jobs share: settings, ledger, clock, access keys by reference."""

    def __init__(self, db: Database, settings: CodelocksSettings, http: aiohttp.ClientSession, *,
                 clock: Clock = utc_now, retry: RetryPolicy | None = None) -> None:
        self.db = db
        self.settings = settings
        self.http = http
        self.clock = clock
        self.retry = retry
        self.quota = QuotaConfig.from_settings(settings)
        self.ledger = QuotaLedger(db, self.quota, clock)
        api_key = settings.api_key.get_secret_value()
        self.keys: dict[str, str] = {key_ref(api_key, k.get_secret_value()): k.get_secret_value()
                                     for k in settings.access_keys}

    def client(self, job: str | None) -> CodelocksClient:
        """A client billed to `job` (None: an operator)."""
        return codelocks_client(self.settings, self.http, self.ledger, job, retry=self.retry)

    async def plan(self, now: dt.datetime) -> dict[str, JobPlan]:
        """Every job's plan from the calls left, the time left, the fleet and the last costs."""
        usage = await self.ledger.usage(UTILITY, now)
        _, end = self.quota.period_bounds(now)
        locks = len(await queries.present_locks(self.db))
        states = await queries.plan_states(self.db, VENDOR)
        weights = self.settings.job_weights
        audit_cost = states["k3-audit"].last_cost if "k3-audit" in states else None
        # Pages per lock measured on the last audit run (late entries can cost a second page).
        per_lock = 1.0 if not audit_cost or not locks else min(max(audit_cost / locks, 1.0), 3.0)
        needs = [JobNeed("k3-locks", weights.get("k3-locks", 1.0), float(len(self.keys))),
                 JobNeed("k3-audit", weights.get("k3-audit", 6.0), locks * per_lock),
                 JobNeed("k3-clients", weights.get("k3-clients", 1.0), float(locks))]
        return plan_intervals(needs, calls_left=usage.job_left,
                              seconds_left=(end - now).total_seconds(),
                              min_interval=self.settings.min_interval_seconds,
                              max_interval=self.settings.max_interval_seconds)


class K3Job:
    """Runs a K3 job's work when the planner says it is due and the budget allows it."""

    name = "k3"

    def __init__(self, k3: K3Context, *, gated: bool = True) -> None:
        self.k3 = k3
        self.db = k3.db
        self.gated = gated
        self.client = k3.client(self.name)
        self.default_interval = k3.settings.min_interval_seconds

    async def not_due(self) -> str | None:
        """Why this tick does nothing: the planner's next run is later (never, when not gated)."""
        if not self.gated:
            return None
        state = (await queries.plan_states(self.db, VENDOR)).get(self.name)
        if state and state.next_due_at and state.next_due_at > self.k3.clock():
            return f"next planned run at {state.next_due_at.isoformat()}"
        return None

    async def run(self, ctx: RunContext) -> None:
        """Run now if due (always, when not gated) and affordable; record the next plan."""
        if await self.not_due() is not None:
            return
        now = self.k3.clock()
        state = (await queries.plan_states(self.db, VENDOR)).get(self.name)
        mine = (await self.k3.plan(now))[self.name]
        if mine.interval is None:
            await self._skip(now, mine.reason or "no budget", state)
            return
        before = ctx.requests  # this run's own attempts (counted by VendorHttp), not the client's
        stopped: str | None = None
        try:
            await self.work(ctx)
        except QuotaExhausted as err:
            stopped = f"stopped part-way: {err}"
            log.warning("k3.budget_ran_out", job=self.name, error=str(err))
            if isinstance(err, QuotaRefusedByVendor):
                # The vendor counted more than we did: the run failed (after its plan is
                # recorded below), the refusal is counted and the period marked used up.
                await self.k3.ledger.vendor_exhausted(err.category)
                raise
        finally:
            cost = ctx.requests - before
            after = self.k3.clock()
            replan = (await self.k3.plan(after))[self.name]
            interval = replan.interval
            _, end = self.k3.quota.period_bounds(after)
            due = after + dt.timedelta(seconds=interval) if interval else end
            await queries.plan_ran(self.db, VENDOR, self.name, interval, due, after, cost,
                                   stopped or replan.reason)

    async def _skip(self, now: dt.datetime, reason: str, state: queries.PlanState | None) -> None:
        usage = await self.k3.ledger.usage(UTILITY, now)
        _, end = self.k3.quota.period_bounds(now)
        # Budget gone: nothing until the next period. Else look again after the shortest interval.
        due = end if usage.job_left <= 0 else min(
            end, now + dt.timedelta(seconds=self.k3.settings.min_interval_seconds))
        if state is None or state.skip_reason != reason:
            log.info("k3.skipping", job=self.name, reason=reason, until=due.isoformat())
        await queries.plan_skipped(self.db, VENDOR, self.name, due, now, reason)

    async def work(self, ctx: RunContext) -> None:
        """The job's own calls and writes."""
        raise NotImplementedError


def lock_record(lock: K3Lock, ref: str) -> tuple[Any, ...]:
    """A lock as a vendor.k3_locks row (in LOCKS.columns order)."""
    return (lock.lock_id, ref, lock.lock_name, lock.battery_status,
            as_utc(lock.battery_updated), lock.manufacturer, lock.model_name,
            lock.firmware_version, lock.timezone, lock.timezone_offset,
            as_utc(lock.pairing_date), lock.model_dump(mode="json", by_alias=True))


class K3LocksJob(K3Job):
    """`k3-locks`: each access key's locks (battery, firmware, time zone), one transaction per key."""

    name = "k3-locks"

    async def work(self, ctx: RunContext) -> None:
        """List the locks of every access key; a refused key fails the run, not the others."""
        refused: list[int] = []
        for number, (ref, key) in enumerate(self.k3.keys.items(), start=1):
            try:
                locks = await self.client.locks(key)
            except VendorAuthError:
                refused.append(number)
                continue
            seen_at = self.k3.clock()
            async with self.db.transaction() as conn:
                result = await upsert(conn, LOCKS, [lock_record(lk, ref) for lk in locks], seen_at)
                gone = await queries.mark_locks_gone(conn, ref, [lk.lock_id for lk in locks],
                                                     seen_at)
            ctx.add_items(len(locks))
            log.info("k3.locks", access_key=number, listed=len(locks), inserted=result.inserted,
                     updated=result.updated, gone=gone)
        if refused:
            raise VendorAuthError(VENDOR, "access key(s) number " + ", ".join(map(str, refused))
                                  + " of codelocks.access_keys refused as unknown; their locks "
                                  "were kept as they were")


def client_record(client: K3Client, lock_id: str) -> tuple[Any, ...]:
    """A smartphone client as a vendor.k3_clients row (in CLIENTS.columns order)."""
    return (lock_id, client.email, client.status, client.access_type, client.active_periods,
            client.model_dump(mode="json", by_alias=True))


async def read_lock_clients(client: CodelocksClient, key: str, lock_id: str,
                            per_page: int) -> list[K3Client]:
    """Every page of a lock's smartphone clients (one Utility call a page)."""
    found: dict[str, K3Client] = {}
    page = 1
    while True:
        answer = await client.clients(key, lock_id, page, per_page)
        for item in answer.clients:
            found[item.email] = item
        if len(answer.clients) < per_page or len(found) >= answer.count or page >= 1000:
            return list(found.values())
        page += 1


async def refresh_lock_clients(k3: K3Context, client: CodelocksClient, key: str,
                               lock_id: str) -> list[K3Client]:
    """Re-read one lock's clients and replace its set in vendor.k3_clients (one transaction)."""
    clients = await read_lock_clients(client, key, lock_id, k3.settings.clients_page_size)
    seen_at = k3.clock()
    async with k3.db.transaction() as conn:
        await upsert(conn, CLIENTS, [client_record(c, lock_id) for c in clients], seen_at)
        await queries.mark_clients_gone(conn, lock_id, [c.email for c in clients], seen_at)
    return clients


class K3ClientsJob(K3Job):
    """`k3-clients`: each lock's smartphone clients with their active periods (complete or nothing)."""

    name = "k3-clients"

    async def work(self, ctx: RunContext) -> None:
        """Read every page of each lock's clients, then replace that lock's set in one transaction."""
        locks = await queries.present_locks(self.db)
        for done, (lock_id, ref) in enumerate(sorted(locks.items()), start=1):
            key = self.k3.keys.get(ref)
            if key is None:  # the key was removed from the config: nothing to ask with
                continue
            try:
                clients = await refresh_lock_clients(self.k3, self.client, key, lock_id)
            except VendorNotFound:  # unpaired since k3-locks last ran; k3-locks will mark it gone
                continue
            ctx.add_items(len(clients))
            ctx.progress(done, len(locks))


JobFactory = Callable[[K3Context], K3Job]
