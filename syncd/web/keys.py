"""Typed application keys: every shared resource lives under one of these."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from syncd.db.pool import Database
from syncd.jobs.runner import JobRunner
from syncd.jobs.scheduler import Scheduler
from syncd.logs import Redactor
from syncd.settings import Settings
from syncd.web.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
REDACTOR = web.AppKey("redactor", Redactor)
DB = web.AppKey("db", Database)
HTTP = web.AppKey("http", aiohttp.ClientSession)
RUNNER = web.AppKey("runner", JobRunner)
SCHEDULER = web.AppKey("scheduler", Scheduler)
