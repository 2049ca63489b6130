"""Typed application keys of the resources the composition root (`syncd/app.py`) opens.

A key private to one module lives next to its owner instead: `web.intake` (hook secrets, group
committer, inbox wakeup) and `web.bookkeeping` (requests in flight).
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from syncd.db.pool import Database
from syncd.jobs.heartbeat import Heartbeat
from syncd.jobs.scheduler import Scheduler
from syncd.logs import Redactor
from syncd.metrics import Metrics
from syncd.settings.core import Settings
from syncd.supervisor import Supervisor
from syncd.vendors.neolock.client import NeoLockClient

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
REDACTOR = web.AppKey("redactor", Redactor)
DB = web.AppKey("db", Database)  # the request paths' pool: intake, registry, inbox, alerts, health
JOBS_DB = web.AppKey("jobs_db", Database)  # the job runs' pool (database.pool_max_size split in two)
HTTP = web.AppKey("http", aiohttp.ClientSession)
SCHEDULER = web.AppKey("scheduler", Scheduler)
SUPERVISOR = web.AppKey("supervisor", Supervisor)  # every background task runs under it
HEARTBEAT = web.AppKey("heartbeat", Heartbeat)  # this replica in ops.replicas
NEOLOCK = web.AppKey("neolock_client", NeoLockClient)  # shared by the inbox worker and the jobs
