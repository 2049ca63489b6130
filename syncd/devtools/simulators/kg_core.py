"""Knox Guard device lifecycle shared by the NeoLock and Knox Guard simulators.

Holds the seeded fleet (devices, uploads), the state machine of the Knox Guard lifecycle with its
delayed transitions (lock: Enrolled → Locking → Locked after `transition_delay`), and two small HTTP
helpers both simulators use: a per-token rate-limit middleware and a JSON body reader.

State rules (from knox-guard-api.md and FIELD-NOTES; where the docs are silent, marked "guess"):
- approve: Pending → Accepted; Accepted → Enrolled after `enroll_delay` (None: the phone never
  comes online by itself; guess).
- lock: Enrolled/Blinked → Locking → Locked; Locked stays Locked (a re-lock, guess).
- unlock: Locked/Locking → Unlocking → Enrolled (guess: also cancels a pending lock).
- complete: Accepted/Enrolled/Blinked/Locked → Completing → Completed.
- blink: Enrolled → StartingReminder → Blinked; Blinked stays Blinked (new reminder settings).
- message, offline PIN: Enrolled/Blinked/Locking/Locked, no state change (guess).
- delete: Pending/Rejected/Accepted/Completed, the device disappears (guess).
Anything else is refused with 4000310 DEVICE_STATE_INVALID, "Current status is '<state>'.".
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import random
import re
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware

from syncd.devtools.simulators.common import COUNTERS_KEY, Handler, SlidingWindowLimiter, route_key

STATES: tuple[str, ...] = (
    "Pending", "Rejected", "Accepted", "Enrolled", "Exchanging", "Resetting", "StartingReminder",
    "StoppingReminder", "Blinked", "Locking", "Locked", "Unlocking", "Completing", "Completed",
)
DELETED = "Deleted"  # not a Knox state: the status a change event carries when a device is deleted
MODELS = ("SM-A055F", "SM-A155F", "SM-A256E", "SM-A356E", "SM-M156B", "SM-S921B")
_UID_RE = re.compile(r"^[A-Za-z0-9]{8,20}$")
T = TypeVar("T")


class DeviceNotFound(LookupError):
    """No device matches the identifier."""


class StateInvalid(Exception):
    """The device's current state does not allow the action (4000310 DEVICE_STATE_INVALID)."""

    def __init__(self, status: str) -> None:
        super().__init__(f"Current status is '{status}'.")
        self.status = status


@dataclasses.dataclass
class Device:
    """One phone as Knox Guard knows it."""

    device_uid: str
    object_id: str
    imei: str
    imei2: str
    serial: str | None
    model: str | None
    status: str
    create_date: int  # epoch milliseconds, like every Knox timestamp
    modified_date: int
    license_expiry_date: int
    upload_id: str | None = None
    row_id: int = 0  # NeoLock's integer `id` of the upload row
    approve_id: str | None = None
    approve_comment: str | None = None
    message: str | None = None
    tel: str | None = None
    email: str | None = None
    reminder: dict[str, Any] | None = None
    firmware_version: str = ""
    agent_version: str = ""
    sim_control_enabled: bool = False
    auto_lock: bool = False
    supports_hotp: bool = True
    offline_locked: bool = False
    relocked: bool = False

    @property
    def license_state(self) -> str:
        """Registered / Active / Expired, as the device's state implies."""
        if self.status in ("Pending", "Rejected", "Accepted"):
            return "Registered"
        if self.status == "Resetting":
            return "Expired"
        return "Active"


@dataclasses.dataclass(frozen=True)
class StateChange:
    """A device changed state (previous None: it was just added; status DELETED: it is gone)."""

    device: Device  # a snapshot taken at the change
    previous: str | None
    status: str
    timestamp: int  # epoch milliseconds

    @property
    def event(self) -> str:
        """Knox-style event name: KG_DEVICE_LOCKED, KG_DEVICE_STARTING_REMINDER, …"""
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", self.status).upper()
        return f"KG_DEVICE_{snake}"


@dataclasses.dataclass(frozen=True)
class Rule:
    """Which states allow an action, the state set at once, and the state reached after a delay."""

    allowed: frozenset[str]
    interim: str | None = None
    final: str | None = None
    keep: frozenset[str] = frozenset()  # allowed states in which the action changes no state


def _states(*names: str) -> frozenset[str]:
    return frozenset(names)


RULES: dict[str, Rule] = {
    "approve": Rule(_states("Pending"), "Accepted"),
    "lock": Rule(_states("Enrolled", "Blinked", "Locked"), "Locking", "Locked", _states("Locked")),
    "unlock": Rule(_states("Locked", "Locking"), "Unlocking", "Enrolled"),
    "complete": Rule(_states("Accepted", "Enrolled", "Blinked", "Locked"), "Completing", "Completed"),
    "blink": Rule(_states("Enrolled", "Blinked"), "StartingReminder", "Blinked", _states("Blinked")),
    "message": Rule(_states("Enrolled", "Blinked", "Locking", "Locked")),
    "pin": Rule(_states("Enrolled", "Blinked", "Locking", "Locked")),
    "delete": Rule(_states("Pending", "Rejected", "Accepted", "Completed")),
}


@dataclasses.dataclass
class UploadEntry:
    """One device of an upload request and whether it was taken."""

    device_uid: str
    valid: bool
    reason: str | None = None


@dataclasses.dataclass
class Upload:
    """One upload batch."""

    upload_id: str
    created: int
    status: str  # "Progress", then "Completed" after transition_delay
    entries: list[UploadEntry]

    @property
    def valid_count(self) -> int:
        """How many devices of the batch were taken."""
        return sum(1 for e in self.entries if e.valid)


def luhn_digit(body: str) -> str:
    """The Luhn check digit that completes `body` into a valid IMEI."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def now_ms() -> int:
    """The wall clock in epoch milliseconds."""
    return int(time.time() * 1000)


class Fleet:
    """A seeded, deterministic Knox Guard fleet with its lifecycle and delayed transitions."""

    def __init__(self, *, seed: int = 0, devices: int = 20, transition_delay: float = 0.5,
                 enroll_delay: float | None = None) -> None:
        self.rng = random.Random(seed)
        self.transition_delay = transition_delay
        self.enroll_delay = enroll_delay
        self.devices: dict[str, Device] = {}
        self.uploads: dict[str, Upload] = {}
        self.listeners: list[Callable[[StateChange], None]] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._due: dict[str, Callable[[], None]] = {}  # what each pending timer will run
        self._next_row = 1
        self._seed_fleet(devices)

    @property
    def next_row(self) -> int:
        """The row id the next device will get (it changes whenever a device is added)."""
        return self._next_row

    def _seed_fleet(self, count: int) -> None:
        states = [STATES[i % len(STATES)] for i in range(count)]
        self.rng.shuffle(states)
        base = 1_700_000_000_000
        batch = Upload("", base, "Completed", [])
        for i, state in enumerate(states):
            if i % 10 == 0:  # the seeded fleet came in batches of ten
                batch = Upload(self._uuid(), base + i * 60_000, "Completed", [])
                self.uploads[batch.upload_id] = batch
            device = self._new_device(None, state, batch.upload_id, base + i * 3_600_000)
            batch.entries.append(UploadEntry(device.device_uid, True))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _imei(self) -> str:
        body = "35" + "".join(str(self.rng.randrange(10)) for _ in range(12))
        return body + luhn_digit(body)

    def _new_device(self, uid: str | None, state: str, upload_id: str | None,
                    created: int | None = None) -> Device:
        rng = self.rng
        imei = uid if uid is not None and uid.isdigit() and len(uid) == 15 else self._imei()
        uid = imei if uid is None else uid
        created = now_ms() if created is None else created
        known = rng.random() < 0.7  # the reseller does not always know serial and model
        device = Device(
            device_uid=uid,
            object_id=f"{created // 1000:08x}{rng.getrandbits(64):016x}",
            imei=imei if uid == imei else "",
            imei2=self._imei() if rng.random() < 0.5 else "",
            serial=uid if uid != imei else ("R58" + "".join(
                rng.choice("0123456789ABCDEFGHJKLMNPRSTVWXYZ") for _ in range(8))) if known else None,
            model=rng.choice(MODELS) if known else None,
            status=state, create_date=created, modified_date=created,
            license_expiry_date=created + rng.randrange(900, 2400) * 86_400_000,
            upload_id=upload_id, row_id=self._next_row,
            firmware_version=f"A155FXXU{rng.randrange(1, 6)}AX{rng.choice('ABCDEFGH')}{rng.randrange(1, 9)}",
            agent_version=f"1.{rng.randrange(10, 30)}.{rng.randrange(0, 99)}",
            sim_control_enabled=rng.random() < 0.3, supports_hotp=rng.random() < 0.9,
        )
        self._next_row += 1
        self.devices[uid] = device
        return device

    # --- lookups --------------------------------------------------------------------------------

    def get(self, device_uid: str) -> Device:
        """The device with this deviceUid, or DeviceNotFound."""
        try:
            return self.devices[device_uid]
        except KeyError:
            raise DeviceNotFound(device_uid) from None

    def find(self, *, object_id: str | None = None, device_uid: str | None = None,
             approve_id: str | None = None) -> Device:
        """The device named by objectId, else deviceUid, else approveId (Knox precedence)."""
        for value, attr in ((object_id, "object_id"), (device_uid, "device_uid"),
                            (approve_id, "approve_id")):
            if value:
                for device in self.devices.values():
                    if getattr(device, attr) == value:
                        return device
                raise DeviceNotFound(value)
        raise DeviceNotFound("")

    async def wait_for_state(self, device_uid: str, state: str, timeout: float = 5.0) -> Device:
        """Wait until the device is in `state` (TimeoutError after `timeout` seconds)."""
        device = self.get(device_uid)
        if device.status == state:
            return device
        reached = asyncio.Event()

        def listener(change: StateChange) -> None:
            if change.device.device_uid == device_uid and change.status == state:
                reached.set()

        self.listeners.append(listener)
        try:
            await asyncio.wait_for(reached.wait(), timeout)
        finally:
            self.listeners.remove(listener)
        return self.get(device_uid)

    def in_state(self, state: str) -> list[Device]:
        """Every device currently in `state`."""
        return [d for d in self.devices.values() if d.status == state]

    # --- changes --------------------------------------------------------------------------------

    def add_device(self, device_uid: str | None = None, *, state: str = "Pending",
                   upload_id: str | None = None) -> Device:
        """Add a device (a fresh valid IMEI when no uid is given) and announce it."""
        if state not in STATES:
            raise ValueError(f"unknown Knox Guard state {state!r}")
        if device_uid is not None and device_uid in self.devices:
            raise ValueError(f"device {device_uid} already exists")
        batch = None
        if upload_id is None:  # a device added directly still came in some upload
            batch = Upload(self._uuid(), now_ms(), "Completed", [])
            self.uploads[upload_id := batch.upload_id] = batch
        device = self._new_device(device_uid, state, upload_id)
        if batch is not None:
            batch.entries.append(UploadEntry(device.device_uid, True))
        self._announce(device, None, state)
        return device

    def set_state(self, device_uid: str, state: str) -> Device:
        """Put a device in `state` at once (cancelling any pending transition) and announce it."""
        if state not in STATES:
            raise ValueError(f"unknown Knox Guard state {state!r}")
        device = self.get(device_uid)
        self._cancel(device_uid)
        self._change(device, state)
        return device

    def remove(self, device_uid: str) -> Device:
        """Delete a device and announce it as DELETED."""
        device = self.devices.pop(device_uid)
        self._cancel(device_uid)
        self._announce(device, device.status, DELETED)
        return device

    def check(self, device: Device, action: str) -> None:
        """Raise StateInvalid unless the device's state allows `action`."""
        if device.status not in RULES[action].allowed:
            raise StateInvalid(device.status)

    def apply(self, device: Device, action: str) -> Device:
        """Carry out `action` on the device along the lifecycle (after `check`)."""
        self.check(device, action)
        rule = RULES[action]
        if action == "delete":
            return self.remove(device.device_uid)
        device.modified_date = now_ms()
        if device.status in rule.keep or rule.interim is None:
            return device
        self._cancel(device.device_uid)
        self._change(device, rule.interim)
        final, delay = rule.final, self.transition_delay
        if action == "approve":
            final, delay = ("Enrolled", self.enroll_delay) if self.enroll_delay is not None else (None, 0)
        if final is not None:
            self._later(device.device_uid, delay, self._finish, device.device_uid, rule.interim, final)
        return device

    def upload(self, device_uids: Sequence[str], *, auto_accept: bool) -> Upload:
        """Register an upload batch: new devices become Pending (Accepted with auto-accept)."""
        batch = Upload(self._uuid(), now_ms(), "Progress", [])
        self.uploads[batch.upload_id] = batch
        for uid in device_uids:
            if not isinstance(uid, str) or not _UID_RE.match(uid):
                batch.entries.append(UploadEntry(str(uid), False, "invalid deviceUid"))
            elif uid in self.devices:
                batch.entries.append(UploadEntry(uid, False, "device already exists"))
            else:
                self.add_device(uid, state="Accepted" if auto_accept else "Pending",
                                upload_id=batch.upload_id)
                batch.entries.append(UploadEntry(uid, True))
        self._later(f"upload:{batch.upload_id}", self.transition_delay, self._upload_done, batch)
        return batch

    def schedule(self, key: str, delay: float, callback: Callable[[], None]) -> None:
        """Run `callback` after `delay` seconds on the running loop (at once if none or delay ≤ 0)."""
        self._later(key, delay, callback)

    def fire_timers(self, prefix: str) -> int:
        """Run now every pending delayed callback whose key starts with `prefix`; how many."""
        due = [key for key in self._timers if key.startswith(prefix)]
        for key in due:
            self._timers.pop(key).cancel()
            self._due.pop(key)()
        return len(due)

    def cancel_timers(self) -> None:
        """Cancel every pending delayed transition (the app is shutting down)."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._due.clear()

    def _upload_done(self, batch: Upload) -> None:
        batch.status = "Completed"

    def _finish(self, device_uid: str, interim: str, final: str) -> None:
        device = self.devices.get(device_uid)
        if device is not None and device.status == interim:
            self._change(device, final)

    def _later(self, key: str, delay: float | None, fn: Callable[..., None], *args: Any) -> None:
        self._cancel(key)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or delay is None or delay <= 0:
            fn(*args)
            return

        def fire() -> None:
            self._timers.pop(key, None)
            self._due.pop(key, None)
            fn(*args)

        self._timers[key] = loop.call_later(delay, fire)
        self._due[key] = lambda: fn(*args)

    def _cancel(self, key: str) -> None:
        handle = self._timers.pop(key, None)
        self._due.pop(key, None)
        if handle is not None:
            handle.cancel()

    def _change(self, device: Device, state: str) -> None:
        previous = device.status
        device.status = state
        device.modified_date = now_ms()
        self._announce(device, previous, state)

    def _announce(self, device: Device, previous: str | None, state: str) -> None:
        change = StateChange(dataclasses.replace(device), previous, state, now_ms())
        for listener in self.listeners:
            listener(change)


# --- HTTP helpers shared by the two simulators ------------------------------------------------


def page(items: Sequence[T], page_num: int, page_size: int) -> list[T]:
    """One page of `items` (pageNum starts at 0)."""
    start = page_num * page_size
    return list(items[start:start + page_size])


def int_param(value: Any, default: int, low: int, high: int) -> int | None:
    """`value` as an int within [low, high] (default when absent), or None when invalid."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if low <= number <= high else None


async def read_object(request: web.Request) -> dict[str, Any] | None:
    """The request's JSON body if it is an object, else None."""
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


class FleetFacade:
    """What tests change directly on a simulator whose devices live in a `Fleet`."""

    fleet: Fleet

    @property
    def devices(self) -> dict[str, Device]:
        """The fleet by deviceUid."""
        return self.fleet.devices

    def device(self, device_uid: str) -> Device:
        """One device (DeviceNotFound when absent)."""
        return self.fleet.get(device_uid)

    async def wait_for_state(self, device_uid: str, state: str, timeout: float = 5.0) -> Device:
        """Wait until the device reaches `state` (TimeoutError after `timeout` seconds)."""
        return await self.fleet.wait_for_state(device_uid, state, timeout)

    def set_state(self, device_uid: str, state: str) -> Device:
        """Put a device in a Knox Guard state at once (listeners, e.g. pushes, see the change)."""
        return self.fleet.set_state(device_uid, state)

    def add_device(self, device_uid: str | None = None, *, state: str = "Pending") -> Device:
        """Add a device to the fleet."""
        return self.fleet.add_device(device_uid, state=state)

    def remove_device(self, device_uid: str) -> Device:
        """Delete a device from the fleet (a change with status "Deleted")."""
        return self.fleet.remove(device_uid)

    def set_transition_delay(self, seconds: float) -> None:
        """Set how long Locking/Unlocking/Completing/StartingReminder last."""
        self.fleet.transition_delay = seconds


class Refusal(Exception):
    """Raised by a handler to answer `status` with the JSON `body` (see refusal_middleware)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


@web.middleware
async def refusal_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a Refusal raised by a handler with its status and JSON body."""
    try:
        return await handler(request)
    except Refusal as refusal:
        return json_response(refusal.body, refusal.status)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response that keeps non-ASCII (Russian) text readable."""
    return web.json_response(body, status=status, headers=headers,
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


def rate_limit_middleware(limiter: SlidingWindowLimiter, key: Callable[[web.Request], str],
                          refusal: Callable[[web.Request], Any]) -> Middleware:
    """Refuse requests past the limiter's window with 429 + Retry-After, counting them per route."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        wait = limiter.check(key(request))
        if wait is None:
            return await handler(request)
        request.app[COUNTERS_KEY][route_key(request)].rate_limited += 1
        return json_response(refusal(request), 429, {"Retry-After": str(max(1, math.ceil(wait)))})

    return middleware
