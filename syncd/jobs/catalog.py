"""The static job registry: every job syncd knows, in one table.

Adding a job is one `JobSpec` entry (name, settings section, default interval, factory). A name
DESIGN.md promises but this version does not build yet has `factory=None`: configuring it is a
clear warning, never a crash. What is scheduled, what `syncd status` lists and which vendors
`check-config` calls enabled all come from this table, without opening an HTTP session.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI reads this table on every start: jobs and clients load when built
    import aiohttp

    from syncd.db.pool import Database
    from syncd.jobs.runner import RunResult
    from syncd.settings.core import Settings
    from syncd.sync.base import Job
    from syncd.sync.codelocks.jobs import K3Context
    from syncd.vendors.knoxguard.client import KnoxGuardClient
    from syncd.vendors.neolock.client import NeoLockClient

RECONCILE = "reconcile"  # syncd.reconcile.job.NAME, named here without importing the job
VENDORS = ("neolock", "knoxguard", "codelocks", "biotime")


@dataclasses.dataclass
class Deps:
    """What a job factory may use. Clients made here are shared by the jobs of one build."""

    settings: Settings
    db: Database
    http: aiohttp.ClientSession
    neolock: NeoLockClient | None = None  # pass the inbox worker's: one token, one rate limit
    knoxguard: KnoxGuardClient | None = None
    once: bool = False  # `syncd sync --once`: quota-planned jobs run now, not when due
    k3: K3Context | None = None

    def neolock_client(self) -> NeoLockClient:
        """The NeoLock client shared by every NeoLock job (and the inbox worker)."""
        assert self.settings.neolock is not None
        if self.neolock is None:
            from syncd.sync.neolock import neolock_client

            self.neolock = neolock_client(self.settings.neolock, self.http)
        return self.neolock

    def knoxguard_client(self) -> KnoxGuardClient:
        """One Knox Guard client for both Knox jobs: one token and one rate limit."""
        assert self.settings.knoxguard is not None
        if self.knoxguard is None:
            from syncd.sync.knoxguard import knoxguard_client

            self.knoxguard = knoxguard_client(self.settings.knoxguard, self.http)
        return self.knoxguard

    def k3_context(self) -> K3Context:
        """What the three K3 jobs share: one quota ledger and planner."""
        assert self.settings.codelocks is not None
        if self.k3 is None:
            from syncd.sync.codelocks.jobs import K3Context

            self.k3 = K3Context(self.db, self.settings.codelocks, self.http)
        return self.k3

    def knoxguard_page_size(self) -> int:
        """[knoxguard] page_size."""
        assert self.settings.knoxguard is not None
        return self.settings.knoxguard.page_size


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """One job: its name, the settings section that enables it, its interval and its factory."""

    name: str
    section: str | None  # vendor section that must be configured; None: always on
    default_interval: float | Callable[[Settings], float]
    factory: Callable[[Deps], Job] | None  # None: promised by DESIGN.md, not built yet
    summary: str = ""
    when: Callable[[Settings], bool] | None = None  # a further condition on the settings

    def interval(self, settings: Settings) -> float:
        """The default interval under this configuration (seconds)."""
        value = self.default_interval
        return value(settings) if callable(value) else value

    def available(self, settings: Settings) -> bool:
        """Built, and its vendor section is configured."""
        return self.factory is not None and (
            self.section is None or getattr(settings, self.section) is not None) and (
            self.when is None or self.when(settings))


def _subscription_interval(settings: Settings) -> float:
    return settings.neolock.subscription_check_seconds if settings.neolock else 3600.0


def _k3_interval(settings: Settings) -> float:
    return settings.codelocks.min_interval_seconds if settings.codelocks else 3600.0


def _detail_age(d: Deps) -> dt.timedelta:
    assert d.settings.neolock is not None
    return dt.timedelta(hours=d.settings.neolock.detail_max_age_hours)


# Factories import their job when called (a build), never when the table is read.
def _housekeeping(d: Deps) -> Job:
    from syncd.jobs.housekeeping import HousekeepingJob

    return HousekeepingJob()


def _neolock_subscription(d: Deps) -> Job:
    from syncd.sync.subscription import NeoLockSubscriptionJob

    return NeoLockSubscriptionJob(d.db, d.neolock_client(), d.settings)


def _neolock_uploads(d: Deps) -> Job:
    from syncd.sync.neolock import NeoLockUploadsJob

    return NeoLockUploadsJob(d.db, d.neolock_client())


def _neolock_devices(d: Deps) -> Job:
    from syncd.sync.neolock import NeoLockDevicesJob

    # While the uploads job runs, devices it has yet to list are not read one GET each.
    uploads = d.settings.jobs.get("neolock-uploads")
    listing = uploads is None or uploads.enabled
    return NeoLockDevicesJob(d.db, d.neolock_client(), detail_max_age=_detail_age(d),
                             wait_for_listing=listing)


def _knox_uploads(d: Deps) -> Job:
    from syncd.sync.knoxguard import KnoxUploadsJob

    return KnoxUploadsJob(d.db, d.knoxguard_client(), d.knoxguard_page_size())


def _knox_devices(d: Deps) -> Job:
    from syncd.sync.knoxguard import KnoxDevicesJob

    return KnoxDevicesJob(d.db, d.knoxguard_client(), d.knoxguard_page_size())


def _k3_locks(d: Deps) -> Job:
    from syncd.sync.codelocks.jobs import K3LocksJob

    return K3LocksJob(d.k3_context(), gated=not d.once)


def _k3_audit(d: Deps) -> Job:
    from syncd.sync.codelocks.audit import K3AuditJob

    return K3AuditJob(d.k3_context(), gated=not d.once)


def _k3_clients(d: Deps) -> Job:
    from syncd.sync.codelocks.jobs import K3ClientsJob

    return K3ClientsJob(d.k3_context(), gated=not d.once)


def _biotime_terminals(d: Deps) -> Job:
    from syncd.sync.biotime import BioTimeTerminalsJob, biotime_client

    assert d.settings.biotime is not None  # a client per BioTime job: each counts its requests
    return BioTimeTerminalsJob(d.db, biotime_client(d.settings.biotime, d.http), d.settings.biotime)


def _biotime_punches(d: Deps) -> Job:
    from syncd.sync.biotime import BioTimePunchesJob, biotime_client

    assert d.settings.biotime is not None
    return BioTimePunchesJob(d.db, biotime_client(d.settings.biotime, d.http), d.settings.biotime)


def _reconcile(d: Deps) -> Job:
    from syncd.reconcile.job import ReconcileJob, build_remediators

    return ReconcileJob(d.db, d.settings, build_remediators(d.settings, d.db, d.http,
                                                            neolock=d.neolock))


JOBS: tuple[JobSpec, ...] = (
    JobSpec("housekeeping", None, 3600.0, _housekeeping,
            "prune old run records, inbox events and quarantine"),
    JobSpec("neolock-subscription", "neolock", _subscription_interval, _neolock_subscription,
            "keep the NeoLock webhook subscription registered"),
    JobSpec("neolock-uploads", "neolock", 900.0, _neolock_uploads, "pull NeoLock uploads"),
    JobSpec("neolock-devices", "neolock", 3600.0,
            _neolock_devices, "pull NeoLock device details"),
    JobSpec("knox-uploads", "knoxguard", 900.0, _knox_uploads, "pull Knox Guard uploads"),
    JobSpec("knox-devices", "knoxguard", 3600.0, _knox_devices, "pull Knox Guard devices"),
    # Quota-planned: the interval is how often a run may *ask* the budget planner whether it is
    # due; `syncd sync --once` (Deps.once) runs them regardless.
    JobSpec("k3-locks", "codelocks", _k3_interval, _k3_locks, "pull Codelocks K3Connect locks"),
    JobSpec("k3-audit", "codelocks", _k3_interval, _k3_audit, "pull Codelocks audit trails"),
    JobSpec("k3-clients", "codelocks", _k3_interval, _k3_clients,
            "pull Codelocks smartphone clients"),
    JobSpec("biotime-terminals", "biotime", 300.0, _biotime_terminals,
            "pull BioTime terminal states"),
    JobSpec("biotime-punches", "biotime", 300.0, _biotime_punches, "pull BioTime punches"),
    # Last: its remediators share the NeoLock client the jobs above made.
    JobSpec(RECONCILE, None, 300.0, _reconcile,
            "evaluate drift rules, merge cases, act in apply mode",
            when=lambda s: s.reconcile.mode != "off"),
)
BY_NAME = {spec.name: spec for spec in JOBS}


Table = Sequence[JobSpec]  # the functions below take another table only in tests


def built(table: Table = JOBS) -> list[str]:
    """Names of the jobs this version can run."""
    return [spec.name for spec in table if spec.factory is not None]


def planned(table: Table = JOBS) -> list[str]:
    """Names DESIGN.md promises that this version does not build yet."""
    return [spec.name for spec in table if spec.factory is None]


def schedule(settings: Settings, table: Table = JOBS) -> dict[str, float | None]:
    """Every job this configuration makes available → its interval, or None when disabled."""
    from syncd.settings.service import JobSettings

    result: dict[str, float | None] = {}
    for spec in table:
        if spec.available(settings):
            conf = settings.jobs.get(spec.name) or JobSettings()
            result[spec.name] = (conf.interval_seconds or spec.interval(settings)) \
                if conf.enabled else None
    return result


def used_vendors(settings: Settings, table: Table = JOBS) -> list[str]:
    """Configured vendors that something in this version uses (a built job)."""
    return [v for v in VENDORS if getattr(settings, v) is not None and any(
        spec.section == v and spec.factory is not None for spec in table)]


def unused_vendors(settings: Settings, table: Table = JOBS) -> list[str]:
    """Configured vendors that no built job uses yet (their section is only validated)."""
    used = used_vendors(settings, table)
    return [v for v in VENDORS if getattr(settings, v) is not None and v not in used]


def build_jobs(settings: Settings, db: Database, http: aiohttp.ClientSession, *,
               neolock: NeoLockClient | None = None, once: bool = False,
               only: Collection[str] | None = None) -> dict[str, Job]:
    """Every job this configuration makes available (enabled or not), by name; with `only`,
    just those (`syncd sync` then imports no other job's vendor client or rules).

    Pass `neolock` to share one client (one token, one rate limiter) with the inbox worker;
    `once` for `syncd sync --once` (quota-planned jobs run now rather than when due).
    """
    deps = Deps(settings, db, http, neolock, once=once)
    jobs: dict[str, Job] = {}
    for spec in JOBS:
        if spec.available(settings) and (only is None or spec.name in only):
            assert spec.factory is not None
            jobs[spec.name] = spec.factory(deps)
    return jobs


def after_sync(run_soon: Callable[[str], None]) -> Callable[[RunResult], None]:
    """A runner hook: a sync job that wrote rows asks for a reconcile soon."""

    from syncd.jobs.runner import Outcome

    def hook(result: RunResult) -> None:
        if result.job != RECONCILE and result.outcome is not Outcome.SKIPPED and result.items > 0:
            run_soon(RECONCILE)

    return hook
