"""State of the Codelocks Connect simulator: K3Connect accounts, locks, clients, audit, quotas.

The HTTP side lives in `codelocks.py`; this module holds the fleet and the rules that do not depend
on HTTP (NetCode derivation, quota accounting), so each can be read on its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import random
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

# Plan -> (NetCode calls, Utility calls) per month, from the vendor doc and FIELD-NOTES.
PLANS: dict[str, tuple[int, int]] = {
    "Business 1": (100, 1000),
    "Business 2": (315, 1000),
    "Pro 1": (613, 2000),
    "Pro 2": (1250, 2000),
    "Pro 3": (2417, 2000),
    "Enterprise 1": (6000, 3000),
    "Enterprise 2": (12000, 3000),
}
NETCODE = "netcode"
UTILITY = "utility"
LOCK_MODELS = ("KL1060", "KL1060C2", "KL1060G3", "KL1550", "K3CONNECT")
INIT_MODELS = ("KL1060", "KL1060C2", "KL1550")
CLIENT_STATUSES = ("ACTIVE", "PENDING", "SUSPENDED")
ACCESS_TYPES = ("STANDARD", "ONE_TIME")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Fixed: the vendor's algorithm depends on the parameters only, not on who asks.
_NETCODE_KEY = b"codelocks-sim-netcode-v1"
_ENTRY_TYPES = (
    ("BLUETOOTH_UNLOCK", "Unlocked via Bluetooth by {email}"),
    ("NETCODE_UNLOCK", "Unlocked with NetCode"),
    ("USER_CODE_UNLOCK", "Unlocked with user code"),
    ("MASTER_CODE", "Master code entered"),
    ("LOCKED", "Lock secured"),
    ("LOW_BATTERY", "Battery low"),
)
_LOCK_NAMES = ("Front door", "Back office", "Stock room", "Staff room", "Server cupboard",
               "Cash office", "Warehouse", "Side entrance", "Key safe", "Loading bay")
_TIMEZONES = (("Asia/Tashkent", "+05:00", "", "", ""),
              ("Europe/London", "+00:00", "Last Sunday March", "Last Sunday October", "01:00"))


class InvalidData(ValueError):
    """The request's data is malformed (the vendor answers 400 "Invalid data supplied")."""


class AccountError(LookupError):
    """The access key, lock or client is not known (the vendor answers 200 with an error body)."""


@dataclasses.dataclass
class K3Lock:
    """One K3Connect lock, owned by the account of `access_key`."""

    lock_id: str
    access_key: str
    name: str
    battery_status: str
    battery_updated: datetime
    model_name: str
    firmware: str
    timezone: tuple[str, str, str, str, str]
    paired_at: datetime
    location: str | None
    description: str | None
    utc_based: bool | None

    def to_json(self, *, detail: bool = False) -> dict[str, Any]:
        """The lock as the API returns it (list items omit some extra fields)."""
        tz, offset, dst_start, dst_end, dst_time = self.timezone
        body: dict[str, Any] = {
            "LockId": self.lock_id, "LockName": self.name, "BatteryStatus": self.battery_status,
            "BatteryUpdated": self.battery_updated.strftime(TIME_FORMAT),
            "Manufacturer": "Codelocks", "ModelName": self.model_name,
            "FirmwareVersion": self.firmware, "Timezone": tz, "TimezoneOffset": offset,
            "DstStart": dst_start, "DstEnd": dst_end, "DstTime": dst_time,
            "PairingDate": self.paired_at.strftime(TIME_FORMAT),
        }
        # Lock objects carry more fields than documented, and not always the same ones.
        if detail or self.location is not None:
            body["LockLocation"] = self.location or ""
        if self.description is not None:
            body["LockDescription"] = self.description
        if self.utc_based is not None:
            body["UtcBased"] = self.utc_based
        return body


@dataclasses.dataclass
class K3Client:
    """A smartphone client of one lock."""

    email: str
    lock_id: str
    status: str
    access_type: str
    active_periods: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The client as the clients list returns it."""
        return {"email": self.email, "lockid": self.lock_id, "status": self.status,
                "accesstype": self.access_type, "activeperiods": [self.active_periods]}


@dataclasses.dataclass
class AuditEntry:
    """One audit line; `entry_id` grows with arrival at the server, not with `entered_at`."""

    entry_id: int
    lock_id: str
    entered_at: datetime
    entry_type: str
    entry_text: str

    def to_json(self) -> dict[str, Any]:
        """The entry as the audit endpoint returns it."""
        return {"AuditEntryID": self.entry_id, "LockID": self.lock_id,
                "DateEntered": self.entered_at.strftime(TIME_FORMAT),
                "EntryType": self.entry_type, "EntryText": self.entry_text}


def default_active_periods() -> dict[str, Any]:
    """Ten active-period slots, the first open all day every day, the rest disabled."""
    return {str(i): {"enabled": i == 0, "starts": "00:00", "ends": "23:59",
                     **dict.fromkeys(DAYS, True)} for i in range(10)}


def parse_active_periods(raw: str) -> dict[str, Any]:
    """Parse the `activeperiods` field (JSON object of slots "0".."9"), or raise InvalidData."""
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise InvalidData("activeperiods is not valid JSON") from err
    if not isinstance(value, dict) or not value:
        raise InvalidData("activeperiods must be a JSON object")
    for slot, period in value.items():
        if slot not in {str(i) for i in range(10)} or not isinstance(period, dict):
            raise InvalidData(f"activeperiods slot {slot!r} is invalid")
    return value


def netcode_digits(lock_ref: str, start: datetime, duration_id: int, model: str,
                   identifier: str) -> str:
    """The 7-digit NetCode for these parameters: a pure function, like the vendor's algorithm."""
    message = "|".join([lock_ref, start.strftime("%Y-%m-%d %H:%M"), str(duration_id), model,
                        identifier]).encode()
    digest = hmac.new(_NETCODE_KEY, message, hashlib.sha256).digest()
    return f"{int.from_bytes(digest[:8], 'big') % 10**7:07d}"


def duration_of(duration_id: int) -> tuple[int, int]:
    """(days, hours) of a NetCode duration id: 0-11 are 1-12 hours, 12-18 are 1-7 days."""
    if 0 <= duration_id <= 11:
        return 0, duration_id + 1
    if 12 <= duration_id <= 18:
        return duration_id - 11, 0
    raise InvalidData(f"unknown duration id {duration_id}")


class Quota:
    """Monthly call counts per category, refused once the plan's limit (plus bolt-ons) is used."""

    def __init__(self, plan: str) -> None:
        self.plan = plan
        self.used: dict[tuple[str, str], int] = {}
        self.refused: dict[tuple[str, str], int] = {}
        self.bolt_ons: dict[tuple[str, str], int] = {}

    def limit(self, category: str, period: str) -> int:
        """The number of calls allowed in `category` during `period` ("YYYY-MM")."""
        netcode, utility = PLANS[self.plan]
        base = netcode if category == NETCODE else utility
        return base + self.bolt_ons.get((period, category), 0)

    def consume(self, category: str, period: str) -> bool:
        """Count one call; False (and nothing counted as used) when the quota is exhausted."""
        key = (period, category)
        if self.used.get(key, 0) >= self.limit(category, period):
            self.refused[key] = self.refused.get(key, 0) + 1
            return False
        self.used[key] = self.used.get(key, 0) + 1
        return True


class CodelocksSim:
    """A seeded Codelocks Connect tenant: an API key on a plan, K3Connect accounts and locks."""

    def __init__(self, *, seed: int = 0, locks: int = 10, plan: str = "Business 1",
                 accounts: int = 2, audit_per_lock: int = 12,
                 now: Callable[[], datetime] | None = None) -> None:
        if plan not in PLANS:
            raise ValueError(f"unknown plan {plan!r}; expected one of {sorted(PLANS)}")
        self.seed = seed
        self.plan = plan
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.rng = random.Random(f"codelocks-{seed}")
        self.api_key = "sim-ck-" + hashlib.sha256(f"codelocks-{seed}".encode()).hexdigest()[:32]
        alphabet = string.ascii_lowercase + string.digits
        self.access_keys: list[str] = [
            "".join(self.rng.choice(alphabet) for _ in range(10)) for _ in range(max(accounts, 1))]
        self.account_emails = {key: f"owner{i + 1}@example.com"
                               for i, key in enumerate(self.access_keys)}
        self.quota = Quota(plan)
        self.month: str | None = None
        self.audit_order = "date"  # "date": DateEntered order (late entries land mid-list); or "id"
        self.auto_accept_invites = False
        # The gateway's throttle: this many next calls get 429 "Too Many Requests" (not metered).
        self.throttle_next = 0
        self.locks: dict[str, K3Lock] = {}
        self.clients: dict[str, dict[str, K3Client]] = {}
        self.audit: dict[str, list[AuditEntry]] = {}
        self.registered_emails: set[str] = {f"staff{i}@example.com" for i in range(1, 11)}
        self._next_entry_id = 1000
        for _ in range(locks):
            self.add_lock()
        self._seed_audit(audit_per_lock)

    # -- fleet -------------------------------------------------------------------------------

    def add_lock(self, access_key: str | None = None, *, name: str | None = None) -> K3Lock:
        """Pair a new lock with an account (round-robin by default) and give it clients."""
        index = len(self.locks)
        key = access_key or self.access_keys[index % len(self.access_keys)]
        if key not in self.access_keys:
            raise ValueError("unknown access key")
        serial = f"CNGS{self.rng.randrange(10**8):08d}"
        lock_id = "06050408" + serial.encode().hex()
        now = self.now()
        extra = self.rng.random()
        lock = K3Lock(
            lock_id=lock_id, access_key=key,
            name=name or f"{_LOCK_NAMES[index % len(_LOCK_NAMES)]} {index // len(_LOCK_NAMES) + 1}",
            battery_status=self.rng.choice(("Good", "Good", "Good", "Low", "Critical")),
            battery_updated=now - timedelta(minutes=self.rng.randrange(10, 60 * 72)),
            model_name=self.rng.choice(("CL5510", "CL4510")),
            firmware=self.rng.choice(("1.2.7", "1.3.0", "1.3.2")),
            timezone=_TIMEZONES[index % len(_TIMEZONES)],
            paired_at=now - timedelta(days=self.rng.randrange(30, 700)),
            location=f"Shop {index + 1}" if extra < 0.6 else None,
            description="Installed by facilities" if extra < 0.3 else None,
            utc_based=(extra < 0.5) if extra < 0.8 else None,
        )
        self.locks[lock_id] = lock
        self.clients[lock_id] = {}
        self.audit[lock_id] = []
        for n in range(self.rng.randrange(0, 5)):
            email = f"user{index + 1}.{n + 1}@example.com"
            self.registered_emails.add(email)
            self.clients[lock_id][email] = K3Client(
                email=email, lock_id=lock_id,
                status=self.rng.choice(("ACTIVE", "ACTIVE", "ACTIVE", "PENDING", "SUSPENDED")),
                access_type=self.rng.choice(("STANDARD", "STANDARD", "ONE_TIME")),
                active_periods=default_active_periods())
        return lock

    def remove_lock(self, lock_id: str) -> None:
        """Unpair a lock: it disappears from lists, with its clients and audit."""
        del self.locks[lock_id]
        self.clients.pop(lock_id, None)
        self.audit.pop(lock_id, None)

    def locks_of(self, access_key: str) -> list[K3Lock]:
        """The locks of one account, in pairing order."""
        return [lock for lock in self.locks.values() if lock.access_key == access_key]

    def lock_for(self, access_key: str, lock_id: str) -> K3Lock:
        """The lock `lock_id` if it belongs to `access_key`'s account, else AccountError."""
        lock = self.locks.get(lock_id)
        if lock is None or lock.access_key != access_key:
            raise AccountError("No lock found.")
        return lock

    def rotate_access_key(self, old: str) -> str:
        """Change an account's access key (as the K3 app can); NetCodes with the old key fail."""
        new = "".join(self.rng.choice(string.ascii_lowercase + string.digits) for _ in range(10))
        self.access_keys[self.access_keys.index(old)] = new
        self.account_emails[new] = self.account_emails.pop(old)
        for lock in self.locks.values():
            if lock.access_key == old:
                lock.access_key = new
        return new

    def set_battery(self, lock_id: str, status: str) -> None:
        """Report a new battery status for a lock, as of now."""
        lock = self.locks[lock_id]
        lock.battery_status = status
        lock.battery_updated = self.now()

    def register_user(self, email: str) -> None:
        """Register a K3 Connect user, so that it can be invited as a client."""
        self.registered_emails.add(email)

    def accept_invitation(self, lock_id: str, email: str) -> None:
        """The invited user accepts: the client becomes ACTIVE."""
        self.clients[lock_id][email].status = "ACTIVE"

    # -- audit -------------------------------------------------------------------------------

    def _seed_audit(self, per_lock: int) -> None:
        now = self.now()
        pending: list[tuple[datetime, str]] = []
        for lock_id in self.locks:
            for _ in range(per_lock):
                pending.append((now - timedelta(minutes=self.rng.randrange(5, 60 * 24 * 7)),
                                lock_id))
        for entered_at, lock_id in sorted(pending):
            self.add_audit_entry(lock_id, entered_at=entered_at)
        # A few entries already arrived late: higher ids, older times.
        for lock_id in list(self.locks)[::3]:
            self.add_late_audit_entry(lock_id, age=timedelta(hours=self.rng.randrange(24, 96)))

    def add_audit_entry(self, lock_id: str, *, entered_at: datetime | None = None,
                        entry_type: str | None = None, entry_text: str | None = None) -> AuditEntry:
        """Append an audit entry arriving now at the server (new AuditEntryID)."""
        kind, text = self.rng.choice(_ENTRY_TYPES)
        clients = sorted(self.clients.get(lock_id, {})) or ["owner@example.com"]
        entry = AuditEntry(
            entry_id=self._next_entry_id, lock_id=lock_id,
            entered_at=(entered_at or self.now()).astimezone(UTC).replace(microsecond=0),
            entry_type=entry_type or kind,
            entry_text=entry_text or text.format(email=self.rng.choice(clients)))
        self._next_entry_id += 1
        self.audit[lock_id].append(entry)
        return entry

    def add_late_audit_entry(self, lock_id: str, *, age: timedelta = timedelta(hours=6),
                             entry_type: str | None = None) -> AuditEntry:
        """An event that happened `age` ago and reaches the server only now (lock synced late)."""
        return self.add_audit_entry(lock_id, entered_at=self.now() - age, entry_type=entry_type)

    def audit_page(self, lock_id: str, page: int, perpage: int, order: str) -> list[AuditEntry]:
        """One page of a lock's audit in `order` ("ascending"/"descending")."""
        if self.audit_order == "date":
            entries = sorted(self.audit[lock_id], key=lambda e: (e.entered_at, e.entry_id))
        else:
            entries = sorted(self.audit[lock_id], key=lambda e: e.entry_id)
        if order == "descending":
            entries.reverse()
        return entries[(page - 1) * perpage: page * perpage]

    # -- quotas ------------------------------------------------------------------------------

    def period(self) -> str:
        """The quota period in force ("YYYY-MM"): the month set by `set_month`, else the clock's."""
        return self.month or self.now().strftime("%Y-%m")

    def set_month(self, month: str | None) -> None:
        """Pretend the calendar month is `month` ("YYYY-MM"); None follows the clock again."""
        self.month = month

    def set_plan(self, plan: str) -> None:
        """Move the API key to another plan (limits change at once)."""
        if plan not in PLANS:
            raise ValueError(f"unknown plan {plan!r}")
        self.plan = plan
        self.quota.plan = plan

    def reset_quotas(self) -> None:
        """Forget every call counted, in every period."""
        self.quota.used.clear()
        self.quota.refused.clear()

    def add_bolt_on(self, category: str, calls: int) -> None:
        """Buy a usage bolt-on: `calls` more calls in `category` for the current month."""
        key = (self.period(), category)
        self.quota.bolt_ons[key] = self.quota.bolt_ons.get(key, 0) + calls

    def set_quota_used(self, category: str, calls: int) -> None:
        """Pretend `calls` calls in `category` were already made this period."""
        self.quota.used[(self.period(), category)] = calls

    def quota_used(self, category: str) -> int:
        """Calls counted in `category` ("netcode" or "utility") this period."""
        return self.quota.used.get((self.period(), category), 0)

    def quota_refused(self, category: str) -> int:
        """Calls refused with 429 in `category` this period."""
        return self.quota.refused.get((self.period(), category), 0)

    def quota_limit(self, category: str) -> int:
        """The limit of `category` this period."""
        return self.quota.limit(category, self.period())

    def consume(self, category: str) -> bool:
        """Count one call in `category`; False when the month's quota is used up."""
        return self.quota.consume(category, self.period())
