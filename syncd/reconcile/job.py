"""The `reconcile` job and its remediators (the scheduler also runs it soon after a sync wrote rows)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import aiohttp

from syncd.db.pool import Database
from syncd.errors import SyncdError
from syncd.reconcile import remediate
from syncd.reconcile.engine import Reconciled, reconcile
from syncd.settings.core import Settings
from syncd.sync.base import RunContext
from syncd.sync.biotime import biotime_client
from syncd.sync.knoxguard import knoxguard_client
from syncd.sync.neolock import neolock_client
from syncd.vendors.neolock.client import NeoLockClient

NAME = "reconcile"


def build_remediators(settings: Settings, db: Database, http: aiohttp.ClientSession, *,
                      neolock: NeoLockClient | None = None) -> dict[tuple[str, str | None],
                                                                    remediate.Remediator]:
    """A remediator per (action, provider) for every configured vendor syncd can fix."""
    found: dict[tuple[str, str | None], remediate.Remediator] = {}
    conf = settings.reconcile
    if settings.neolock is not None:
        client = neolock or neolock_client(settings.neolock, http)
        for action in ("phone.lock", "phone.unlock", "phone.complete"):
            found[(action, "neolock")] = remediate.NeoLockPhones(db, client, conf, action)
    if settings.knoxguard is not None:
        knox = knoxguard_client(settings.knoxguard, http)
        for action in ("phone.lock", "phone.unlock", "phone.complete"):
            found[(action, "knoxguard")] = remediate.KnoxGuardPhones(db, knox, conf, action)
    if settings.biotime is not None:
        found[("terminal.update", "biotime")] = remediate.BioTimeTerminals(
            db, biotime_client(settings.biotime, http), ZoneInfo(settings.biotime.timezone))
    return found


class ReconcileJob:
    """`reconcile`: evaluate the rules, merge drift cases, and act on plans in `apply` mode.

    The daemon's job and `syncd reconcile` both run it through the JobRunner, so they serialise
    on the job's lock. `apply` (default: reconcile.mode = "apply") decides whether plans are
    carried out; `last` keeps what the latest run found and did (for the command to print).
    """

    name = NAME
    default_interval = 300.0

    def __init__(self, db: Database, settings: Settings,
                 remediators: remediate.Remediators, *, apply: bool | None = None) -> None:
        self.db = db
        self.settings = settings
        self.remediators = remediators
        self.apply = settings.reconcile.mode == "apply" if apply is None else apply
        self.last: tuple[Reconciled, list[remediate.Attempt]] | None = None

    async def run(self, ctx: RunContext) -> None:
        """One reconcile at the current time; items = case rows written + actions attempted."""
        now = dt.datetime.now(dt.UTC)
        result = await reconcile(self.db, self.settings, now)
        ctx.add_items(result.merge.written)
        attempts: list[remediate.Attempt] = []
        self.last = (result, attempts)
        if self.apply:
            attempts += await remediate.apply(self.db, self.remediators, self.settings.reconcile,
                                              now)
            ctx.add_items(len(attempts))
        if result.failed:
            raise SyncdError("rule set(s) could not load: " + "; ".join(
                f"{name}: {error}" for name, error in sorted(result.failed.items())))

