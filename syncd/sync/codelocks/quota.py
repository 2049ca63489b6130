"""The Codelocks quota ledger: every call is counted in ops.api_usage before it is sent.

Each call (retries included) takes one call from the period's quota in its own committed
transaction (`UPDATE … SET calls = calls + 1 WHERE calls < limit`), before the request leaves:
a crash after counting can only over-count, and replicas sharing the database queue on the row
lock, so together they never exceed the quota. Scheduled jobs may not take what is left of the
operators' reserve; operators may use the whole quota. Crossing 80 % and 95 % of the quota, or
using up the jobs' budget or the whole quota, enqueues an alert in that same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Awaitable, Callable
from zoneinfo import ZoneInfo

from syncd.db import codelocks as queries
from syncd.db.actions import enqueue_alert
from syncd.db.codelocks import Usage
from syncd.db.pool import Connection, Database
from syncd.errors import QuotaExhausted
from syncd.settings.vendors import CodelocksSettings

VENDOR = "codelocks"
NETCODE = "netcode"
UTILITY = "utility"
CATEGORIES = (NETCODE, UTILITY)
OPERATOR = "operator"
WARN_AT = (80, 95)
# Plan -> (NetCode calls, Utility calls) per month (vendor doc, FIELD-NOTES).
PLANS: dict[str, tuple[int, int]] = {
    "Business 1": (100, 1000), "Business 2": (315, 1000), "Pro 1": (613, 2000),
    "Pro 2": (1250, 2000), "Pro 3": (2417, 2000), "Enterprise 1": (6000, 3000),
    "Enterprise 2": (12000, 3000),
}
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True)
class QuotaConfig:
    """Quotas per category and period: the plan (or a custom quota), bolt-ons, the reserve."""

    netcode: int
    utility: int
    bolt_ons: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    reserve_percent: float = 20.0
    zone: str = "UTC"
    plan: str = "custom"

    @classmethod
    def from_settings(cls, settings: CodelocksSettings) -> QuotaConfig:
        """The quota configuration of a `[codelocks]` section."""
        if settings.quota is not None:
            netcode, utility, plan = settings.quota.netcode, settings.quota.utility, "custom"
        else:
            (netcode, utility), plan = PLANS[settings.plan], settings.plan
        bolt_ons: dict[tuple[str, str], int] = {}
        for bolt in settings.bolt_ons:
            for category, calls in ((NETCODE, bolt.netcode), (UTILITY, bolt.utility)):
                bolt_ons[(bolt.period, category)] = bolt_ons.get((bolt.period, category), 0) + calls
        return cls(netcode, utility, bolt_ons, settings.reserve_percent, settings.period_timezone,
                   plan)

    def quota(self, category: str, period: str) -> int:
        """Calls allowed in `category` during `period` ("YYYY-MM"), bolt-ons included."""
        base = self.netcode if category == NETCODE else self.utility
        return base + self.bolt_ons.get((period, category), 0)

    def reserve(self, category: str, period: str) -> int:
        """Calls of the period kept for operator actions."""
        return math.floor(self.quota(category, period) * self.reserve_percent / 100)

    def period_of(self, now: dt.datetime) -> str:
        """The quota period ("YYYY-MM") `now` falls in, in the configured zone."""
        return now.astimezone(ZoneInfo(self.zone)).strftime("%Y-%m")

    def period_bounds(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """Start and end (exclusive) of the period `now` falls in, as aware datetimes."""
        local = now.astimezone(ZoneInfo(self.zone))
        start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
        end = start.replace(year=year, month=month)
        # Rebuild from wall time so a DST change inside the month is honoured.
        return (dt.datetime.combine(start.date(), dt.time(), ZoneInfo(self.zone)),
                dt.datetime.combine(end.date(), dt.time(), ZoneInfo(self.zone)))


def alerts_crossed(before: int, after: Usage, *, scheduled: bool) -> list[tuple[str, str, str]]:
    """(suffix, type, severity) of each alert line the reservation from `before` calls crossed."""
    found: list[tuple[str, str, str]] = []
    if after.quota <= 0:
        return found
    for pct in WARN_AT:
        line = math.ceil(after.quota * pct / 100)
        if before < line <= after.calls:
            found.append((f"warn{pct}", "quota.warning", "warning" if pct < 95 else "critical"))
    if scheduled and after.calls == after.job_limit < after.quota:
        found.append(("exhausted-scheduled", "quota.exhausted", "warning"))
    if after.calls == after.quota:
        found.append(("exhausted", "quota.exhausted", "critical"))
    return found


class QuotaLedger:
    """Reserves calls in ops.api_usage before they are sent; refuses them past the quota."""

    def __init__(self, db: Database, config: QuotaConfig, clock: Clock = utc_now) -> None:
        self.db = db
        self.config = config
        self.clock = clock

    def hook(self, job: str | None) -> Callable[[str], Awaitable[None]]:
        """A `before_call(category)` for a client: scheduled for `job`, operator when None."""

        async def before_call(category: str) -> None:
            await self.reserve(category, job=job)

        return before_call

    async def reserve(self, category: str, *, job: str | None) -> Usage:
        """Count one call, or raise QuotaExhausted (the refusal itself is counted)."""
        now = self.clock()
        period = self.config.period_of(now)
        quota = self.config.quota(category, period)
        reserve = self.config.reserve(category, period)
        operator = job is None
        async with self.db.transaction() as conn:
            await queries.usage_ensure(conn, VENDOR, category, period, quota, reserve)
            usage = await queries.usage_reserve(conn, VENDOR, category, period, operator)
            if usage is not None:
                await queries.usage_job_add(conn, VENDOR, category, period, job or OPERATOR)
                await self._alerts(conn, category, period, usage.calls - 1, usage, now,
                                   scheduled=not operator)
                return usage
            refused = await queries.usage_refused(conn, VENDOR, category, period)
        scope = "the quota" if operator or refused.calls >= refused.quota else \
            "the scheduled jobs' budget"
        raise QuotaExhausted(VENDOR, f"{category} calls for {period}: {scope} is used up "
                                     f"({refused.calls} of {refused.quota} calls made, "
                                     f"{refused.reserve} kept for operators); next period starts "
                                     f"{self.config.period_bounds(now)[1].isoformat()}")

    async def vendor_exhausted(self, category: str) -> None:
        """The vendor refused a call for quota: count the refusal and mark the period used up
        (with its alert)."""
        now = self.clock()
        period = self.config.period_of(now)
        async with self.db.transaction() as conn:
            await queries.usage_ensure(conn, VENDOR, category, period,
                                       self.config.quota(category, period),
                                       self.config.reserve(category, period))
            await queries.usage_refused(conn, VENDOR, category, period)
            before = await queries.usage_get_conn(conn, VENDOR, category, period)
            usage = await queries.usage_exhaust(conn, VENDOR, category, period)
            if usage is not None:
                await self._alerts(conn, category, period, before, usage, now, scheduled=False)

    async def usage(self, category: str, now: dt.datetime | None = None) -> Usage:
        """The ledger of `category` in the period of `now` (zero when nothing was counted)."""
        period = self.config.period_of(now or self.clock())
        found = await queries.usage_get(self.db, VENDOR, category, period)
        if found is not None:
            return found
        return Usage(0, self.config.quota(category, period), self.config.reserve(category, period),
                     0)

    async def _alerts(self, conn: Connection, category: str, period: str, before: int,
                      usage: Usage, now: dt.datetime, *, scheduled: bool) -> None:
        for suffix, kind, severity in alerts_crossed(before, usage, scheduled=scheduled):
            subject = f"{VENDOR}/{category}/{period}"
            await enqueue_alert(conn, event_id=f"quota-{VENDOR}-{category}-{period}-{suffix}",
                                type=kind, payload={
                                    "type": kind, "subject": subject, "severity": severity,
                                    "status": "firing", "vendor": VENDOR, "category": category,
                                    "period": period, "calls": usage.calls, "quota": usage.quota,
                                    "reserve": usage.reserve, "threshold": suffix,
                                    "expected": f"at most {usage.quota} calls",
                                    "actual": f"{usage.calls} calls",
                                    "at": now.isoformat(), "timestamp": now.isoformat()})
