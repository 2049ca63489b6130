"""The static job registry: one table of jobs, DESIGN.md's names, no HTTP to learn them."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from syncd.db.pool import Database
from syncd.jobs import catalog
from syncd.settings.core import Settings

NEOLOCK = {"base_url": "https://x/api", "login": "l", "password": "pw-long-enough",
           "subscription_check_seconds": 120}


def test_every_job_design_md_names_is_in_the_table() -> None:
    """The job names of DESIGN.md's CLI contract are all registry entries (built or planned)."""
    design = ["neolock-uploads", "neolock-devices", "knox-uploads", "knox-devices", "k3-locks",
              "k3-audit", "k3-clients", "biotime-terminals"]  # DESIGN.md, "Job names"
    assert set(design) <= set(catalog.BY_NAME)
    assert set(catalog.planned()) <= {"k3-locks", "k3-audit", "k3-clients"}  # not built yet
    assert len(catalog.BY_NAME) == len(catalog.JOBS)  # names are unique


def test_schedule_comes_from_the_table_and_settings_alone(
        make_settings: Callable[..., Settings]) -> None:
    """Intervals: configured, else the entry's default (the subscription's from its section);
    disabled jobs map to None; jobs of unconfigured or unbuilt vendors are absent, and so is
    reconcile when reconcile.mode is off (an entry's `when`)."""
    settings = make_settings(neolock=NEOLOCK, biotime={
        "base_url": "https://b", "token": "token-1234"},
        jobs={"housekeeping": {"enabled": False}, "neolock-uploads": {"interval_seconds": 60}})
    assert catalog.schedule(settings) == {
        "housekeeping": None, "neolock-subscription": 120.0, "neolock-uploads": 60.0,
        "neolock-devices": 3600.0, "biotime-terminals": 300.0, "biotime-punches": 300.0,
        "reconcile": 300.0}
    assert "reconcile" not in catalog.schedule(make_settings(reconcile={"mode": "off"}))
    assert catalog.used_vendors(settings) == ["neolock", "biotime"]
    assert catalog.unused_vendors(settings) == []


async def test_build_jobs_builds_what_schedule_lists_sharing_one_neolock_client(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """build_jobs makes one job per available entry, named as the table says."""
    settings = make_settings(neolock=NEOLOCK)
    async with aiohttp.ClientSession() as http:
        jobs = catalog.build_jobs(settings, db, http)
    assert list(jobs) == list(catalog.schedule(settings))
    assert all(job.name == name for name, job in jobs.items())
    clients = {id(vars(jobs[n])["client"]) for n in
               ("neolock-subscription", "neolock-uploads", "neolock-devices")}
    assert len(clients) == 1


async def test_build_jobs_only_builds_the_named_jobs(
        db: Database, make_settings: Callable[..., Settings]) -> None:
    """With `only` (what `syncd sync NAME` passes), build_jobs makes just those jobs: the other
    jobs' clients and rule sets are never built, so the command never imports them."""
    settings = make_settings(neolock=NEOLOCK)
    async with aiohttp.ClientSession() as http:
        jobs = catalog.build_jobs(settings, db, http, only={"neolock-uploads"})
        assert list(jobs) == ["neolock-uploads"]
        assert catalog.build_jobs(settings, db, http, only={"knox-uploads"}) == {}  # unconfigured
