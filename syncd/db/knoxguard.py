"""Typed fronts for the Knox Guard sync's named queries (sql/queries/knoxguard.sql)."""

from __future__ import annotations

from syncd.db.pool import Database


async def present_devices(db: Database) -> set[str]:
    """Device ids of the Knox Guard phones stored and not marked gone."""
    return {r["device_uid"] for r in await db.fetch("knox_present_devices")}


async def settled_uploads(db: Database) -> dict[str, int]:
    """Upload id → stored device rows, for batches already stored as Completed."""
    return {r["upload_id"]: int(r["devices"]) for r in await db.fetch("knox_settled_uploads")}
