"""The registry's database work: batched registrations, bans (logged in the action log), look-ups."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, NamedTuple

from syncd.db.actions import Action, actions_for, record_action
from syncd.db.pool import Database
from syncd.db.queries import get as sql
from syncd.registry.validate import Registration


class Seen(NamedTuple):
    """What the registry answers for one registration."""

    mac_address: str
    status: int
    banned: bool


class Posted(NamedTuple):
    """A registration and the client address it came from ("" when unknown)."""

    registration: Registration
    ip: str


def subject(mac_address: str) -> str:
    """The action log subject of a device."""
    return f"app-device:{mac_address}"


async def register_batch(db: Database, batch: list[Posted],
                         last_seen_resolution: float) -> list[Seen]:
    """Upsert `batch` in one statement; one Seen per item, in order."""
    regs, ips = zip(*batch, strict=True)
    columns = [list(column) for column in zip(*regs, strict=True)]  # Registration's six fields
    rows = await db.fetch("app_devices_upsert_batch", *columns, [ip or None for ip in ips],
                          float(last_seen_resolution))
    by_mac = {row["mac_address"]: Seen(row["mac_address"], row["status"], row["banned"])
              for row in rows}
    return [by_mac[mac] for mac in columns[0]]


async def ban(db: Database, mac_address: str, *, reason: str, actor: str) -> bool:
    """Ban a MAC (registered or not) and log it; False if it was banned already (logged skipped)."""
    async with db.transaction() as conn:
        new = await conn.fetchval(sql("app_device_ban"), mac_address, reason, actor)
        detail: dict[str, Any] = {"reason": reason}
        if new is None:
            detail["note"] = "already banned"
        await record_action(conn, actor=actor, action="device.ban", subject=subject(mac_address),
                            outcome="ok" if new else "skipped", detail=detail)
    return new is not None


async def unban(db: Database, mac_address: str, *, reason: str, actor: str) -> bool:
    """Lift a MAC's ban and log it; False if it was not banned (logged skipped)."""
    async with db.transaction() as conn:
        lifted = await conn.fetchrow(sql("app_device_unban"), mac_address)
        detail: dict[str, Any] = {"reason": reason}
        if lifted is None:
            detail["note"] = "was not banned"
        else:
            detail["ban_reason"] = lifted["reason"]
        await record_action(conn, actor=actor, action="device.unban",
                            subject=subject(mac_address),
                            outcome="ok" if lifted else "skipped", detail=detail)
    return lifted is not None


@dataclasses.dataclass(frozen=True)
class DeviceView:
    """A device (or a banned, never-registered MAC) with its ban, history and actions."""

    mac_address: str
    device: dict[str, Any] | None
    ban: dict[str, Any] | None
    history: list[dict[str, Any]]
    actions: list[Action]


async def show(db: Database, mac_address: str, history_limit: int = 20) -> DeviceView:
    """Everything known about a MAC."""
    device = await db.fetchrow("app_device_get", mac_address)
    ban_row = await db.fetchrow("app_device_ban_get", mac_address)
    history = await db.fetch("app_device_history_of", mac_address, history_limit)
    return DeviceView(mac_address, dict(device) if device else None,
                      dict(ban_row) if ban_row else None, [dict(r) for r in history],
                      await actions_for(db, subject(mac_address)))


def when(value: dt.datetime | None) -> str:
    """A timestamp for people: ISO 8601 in UTC, to the second."""
    return "-" if value is None else value.astimezone(dt.UTC).isoformat(timespec="seconds")
