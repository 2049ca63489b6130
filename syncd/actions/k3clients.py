"""Operator changes to Codelocks smartphone clients (add, suspend, unsuspend, delete), each logged.

Every Codelocks call is billed against the month's Utility quota, so a change is planned first
from what syncd already knows (no call): the lock and its access key from vendor.k3_locks, the
client as the last k3-clients read saw it, and the cost: one call for the change, then one a page
to re-read the lock's clients, so that vendor.k3_clients (report.k3_clients, drift) shows the
vendor's answer at once instead of at the next k3-clients run. The operator sees the cost and the
reserve left and confirms; the calls are billed to the operator through the quota ledger (the
reserve first, then what the jobs would have used). The outcome — ok, refused (by the ledger or
the vendor) or failed — is appended to the hash-chained action log with the operator's name.
Access keys never reach the log: locks are named by id, keys only by configuration.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from typing import Any

from syncd.db import codelocks as queries
from syncd.db.actions import Outcome, record_action
from syncd.db.codelocks import StoredClient, StoredLock, Usage
from syncd.errors import QuotaExhausted, SyncdError, VendorBadRequest, VendorError, VendorNotFound
from syncd.sync.codelocks.jobs import K3Context, refresh_lock_clients
from syncd.sync.codelocks.quota import UTILITY
from syncd.vendors.codelocks import ClientResult, CodelocksClient, QuotaRefusedByVendor

ACTIONS = ("add", "suspend", "unsuspend", "delete")
ACCESS_TYPES = ("STANDARD", "ONE_TIME")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SLOTS = tuple(str(i) for i in range(10))
DEFAULT_MESSAGE = "Access granted"
# How each change reaches the vendor (codelocks-connect-api.md: …/k3connect/{id}/client).
METHODS = {"add": "POST", "suspend": "PATCH", "unsuspend": "PATCH", "delete": "DELETE"}
PAST = {"add": "added", "suspend": "suspended", "unsuspend": "unsuspended", "delete": "deleted"}
_MESSAGE = re.compile(r"[0-9A-Za-z _,\-.()]{1,500}")  # the doc: 500 of 0-9 A-Z _,-.()
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")


class K3ClientError(SyncdError):
    """The change cannot be attempted as asked; nothing was sent and nothing spent."""


@dataclasses.dataclass(frozen=True)
class ClientChange:
    """A validated change to one client of one lock."""

    action: str
    lock_id: str
    email: str
    access_type: str | None = None
    active_periods: dict[str, Any] | None = None
    message: str | None = None

    def form(self) -> dict[str, str]:
        """The form fields sent (the access key, sent too, is left out: it is a secret)."""
        fields = {"clientemail": self.email}
        if self.action == "add":
            fields.update(activeperiods=json.dumps(self.active_periods),
                          accesstype=self.access_type or "", message=self.message or "")
        elif self.action in ("suspend", "unsuspend"):
            fields["action"] = "SUSPEND" if self.action == "suspend" else "RESTORE"
        return fields


def parse_days(text: str) -> list[str]:
    """Weekdays from "mon-fri", "sat,sun" or "all"; K3ClientError names a bad one."""
    value = text.strip().lower()
    if value in ("all", "*"):
        return list(DAYS)
    chosen: set[str] = set()
    for part in value.split(","):
        first, _, last = part.strip().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise K3ClientError(f"--days {text!r}: use mon..sun, ranges like mon-fri, or all")
        low, high = DAYS.index(first), DAYS.index(last or first)
        if high < low:
            raise K3ClientError(f"--days {text!r}: a range runs forward in the week (mon-fri)")
        chosen.update(DAYS[low:high + 1])
    return [d for d in DAYS if d in chosen]


def active_periods(hours: str | None = None, days: str | None = None) -> dict[str, Any]:
    """The ten documented slots: slot 0 open `hours` ("08:00-18:00", else all day) on `days`
    (else every day), the other nine disabled."""
    starts, ends = "00:00", "23:59"
    if hours is not None:
        starts, _, ends = hours.strip().partition("-")
        if not (_TIME.fullmatch(starts) and _TIME.fullmatch(ends)) or ends <= starts:
            raise K3ClientError(f"--hours {hours!r}: expected HH:MM-HH:MM within one day, "
                                "e.g. 08:00-18:00")
    open_days = set(parse_days(days) if days is not None else DAYS)
    return {slot: {"enabled": slot == "0", "starts": starts, "ends": ends,
                   **{d: d in open_days for d in DAYS}} for slot in SLOTS}


def check_periods(value: Any) -> dict[str, Any]:
    """Active periods from a file, checked against the documented shape (slots "0".."9", each
    enabled, starts/ends HH:MM and mon..sun as booleans)."""
    if not isinstance(value, dict) or not value:
        raise K3ClientError("active periods: expected a JSON object of slots \"0\" to \"9\"")
    for slot, period in value.items():
        where = f"active periods slot {slot!r}"
        if slot not in SLOTS or not isinstance(period, dict):
            raise K3ClientError(f"{where}: slots are \"0\" to \"9\", each an object")
        for name in ("enabled", *DAYS):
            if not isinstance(period.get(name), bool):
                raise K3ClientError(f"{where}: {name} must be true or false")
        for name in ("starts", "ends"):
            if not (isinstance(period.get(name), str) and _TIME.fullmatch(period[name])):
                raise K3ClientError(f"{where}: {name} must be HH:MM")
    return value


def change(action: str, lock_id: str, email: str, *, access_type: str | None = None,
           periods: dict[str, Any] | None = None, message: str | None = None) -> ClientChange:
    """Check a change before anything is spent; K3ClientError says what is wrong."""
    if action not in ACTIONS:
        raise K3ClientError(f"unknown client action {action!r}; use one of {', '.join(ACTIONS)}")
    lock_id = lock_id.strip()
    if not lock_id or not all(c in "0123456789abcdefABCDEF" for c in lock_id):
        raise K3ClientError("LOCK must be a K3Connect lock id (hex; `syncd k3 clients list`)")
    email = email.strip()
    if not _EMAIL.fullmatch(email):
        raise K3ClientError(f"{email!r} is not an e-mail address")
    if action != "add":
        return ClientChange(action, lock_id, email)
    kind = (access_type or "STANDARD").strip().upper()
    if kind not in ACCESS_TYPES:
        raise K3ClientError(f"access type must be {' or '.join(ACCESS_TYPES)}")
    text = DEFAULT_MESSAGE if message is None else message
    if not _MESSAGE.fullmatch(text):
        raise K3ClientError("message: 1 to 500 characters of letters, digits, spaces and _,-.() "
                            "(the vendor's rule)")
    return ClientChange(action, lock_id, email, kind, check_periods(
        periods if periods is not None else active_periods()), text)


@dataclasses.dataclass(frozen=True)
class ChangePlan:
    """A change with what it will cost and what syncd last saw; nothing sent yet."""

    change: ClientChange
    lock: StoredLock
    known: StoredClient | None  # the client at the last k3-clients read, if listed
    listed: int  # clients the lock had at that read
    reread_pages: int
    usage: Usage  # the Utility ledger of this period, before the change
    period: str

    @property
    def calls(self) -> int:
        """Utility calls the change takes without retries: the change and the re-read."""
        return 1 + self.reread_pages

    @property
    def reserve_left(self) -> int:
        """What is left of the operators' reserve this period."""
        return max(self.usage.reserve - self.usage.operator_calls, 0)

    @property
    def quota_left(self) -> int:
        """Utility calls left in the whole quota this period (operators may use them all)."""
        return max(self.usage.quota - self.usage.calls, 0)

    def notes(self) -> list[str]:
        """What syncd's last read says about the change (the vendor still has the last word)."""
        c, known = self.change, self.known
        seen = "" if known is None else f" at {known.last_seen_at:%Y-%m-%d %H:%M} UTC"
        if c.action == "add" and known is not None:
            return [f"already listed as a client ({known.status or 'no status'}){seen}: "
                    "Codelocks may refuse the invitation"]
        if c.action != "add" and known is None:
            return ["not listed as a client of this lock at the last k3-clients read: "
                    "Codelocks may answer 'Client not found'"]
        if known is not None and c.action == "suspend" and known.status == "SUSPENDED":
            return [f"already SUSPENDED{seen}"]
        if known is not None and c.action == "unsuspend" and known.status != "SUSPENDED":
            return [f"listed as {known.status or 'no status'}{seen}, not SUSPENDED"]
        return []


async def plan_change(k3: K3Context, change: ClientChange) -> ChangePlan:
    """The change's cost and context from the database alone; K3ClientError if it cannot go."""
    lock = await queries.lock_get(k3.db, change.lock_id)
    if lock is None:
        raise K3ClientError(f"lock {change.lock_id} is not known to syncd: run `syncd sync "
                            "k3-locks --once`, or check the id with `syncd k3 clients list`")
    if lock.gone_at is not None:
        raise K3ClientError(f"lock {change.lock_id} is no longer listed by Codelocks (gone since "
                            f"{lock.gone_at:%Y-%m-%d %H:%M} UTC)")
    if lock.access_key_ref not in k3.keys:
        raise K3ClientError(f"lock {change.lock_id} was listed under an access key that is no "
                            "longer in codelocks.access_keys")
    clients = await queries.lock_clients(k3.db, change.lock_id)
    known = next((c for c in clients if c.email.lower() == change.email.lower()), None)
    after = len(clients) + (1 if change.action == "add" and known is None else 0) \
        - (1 if change.action == "delete" and known is not None else 0)
    pages = max(1, math.ceil(after / k3.settings.clients_page_size))
    now = k3.clock()
    usage = await k3.ledger.usage(UTILITY, now)
    if usage.calls >= usage.quota:
        raise K3ClientError(f"no Utility calls left for {k3.quota.period_of(now)} "
                            f"({usage.calls} of {usage.quota} used); the next period starts "
                            f"{k3.quota.period_bounds(now)[1].isoformat()}")
    return ChangePlan(change, lock, known, len(clients), pages, usage, k3.quota.period_of(now))


@dataclasses.dataclass(frozen=True)
class ChangeOutcome:
    """How a change ended: ok, refused or failed; the calls it took; the client as re-read."""

    outcome: str
    message: str
    calls: int
    seq: int
    listed: int | None = None  # clients of the lock after the re-read (None: not re-read)
    status: str | None = None  # the client's status after the re-read (None: not listed)
    reread_error: str | None = None


async def _send(client: CodelocksClient, key: str, c: ClientChange) -> ClientResult:
    if c.action == "add":
        assert c.active_periods is not None and c.access_type and c.message
        return await client.add_client(key, c.lock_id, c.email, c.active_periods, c.access_type,
                                       c.message)
    if c.action == "delete":
        return await client.delete_client(key, c.lock_id, c.email)
    return await client.suspend_client(key, c.lock_id, c.email, suspend=c.action == "suspend")


async def apply_change(k3: K3Context, plan: ChangePlan, *, actor: str,
                       scrub: Callable[[str], str] = lambda s: s) -> ChangeOutcome:
    """Send the change billed to the operator, re-read the lock's clients, log the outcome."""
    c = plan.change
    key = k3.keys[plan.lock.access_key_ref]
    client = k3.client(None)  # an operator action: may use the reserve
    name, subject = f"k3.client.{c.action}", f"k3:{c.lock_id}/{c.email}"
    detail: dict[str, Any] = {"lock_id": c.lock_id, "email": c.email,
                              "status_before": plan.known.status if plan.known else None,
                              "calls_planned": plan.calls}
    if c.action == "add":
        detail.update(access_type=c.access_type, active_periods=c.active_periods,
                      message=c.message)
    try:
        answer = await _send(client, key, c)
    except VendorError as err:
        if isinstance(err, QuotaRefusedByVendor):  # counted, and the period marked used up
            await k3.ledger.vendor_exhausted(err.category)
        text = scrub(str(err))
        # The ledger's or the vendor's "no" (quota, unknown client, not registered) is a refusal;
        # anything else (transport, 5xx, a garbled answer) a failure.
        refused = isinstance(err, QuotaExhausted | VendorBadRequest | VendorNotFound)
        outcome: Outcome = "refused" if refused else "failed"
        seq = await record_action(k3.db, actor=actor, action=name, subject=subject,
                                  outcome=outcome, provider="codelocks",
                                  detail={**detail, "error": text, "calls": client.requests})
        return ChangeOutcome(outcome, text, client.requests, seq)
    vendor_answer = json.loads(scrub(json.dumps(answer.model_dump(mode="json", by_alias=True,
                                                                  exclude_none=True))))
    listed: int | None = None
    status: str | None = None
    reread_error: str | None = None
    try:
        clients = await refresh_lock_clients(k3, client, key, c.lock_id)
    except VendorError as err:  # the change is made; k3-clients will catch up at its next run
        reread_error = scrub(str(err))
        if isinstance(err, QuotaRefusedByVendor):
            await k3.ledger.vendor_exhausted(err.category)
    else:
        listed = len(clients)
        status = next((x.status for x in clients if x.email.lower() == c.email.lower()), None)
    reread = {"error": reread_error} if reread_error else {"clients": listed, "status": status}
    seq = await record_action(k3.db, actor=actor, action=name, subject=subject, outcome="ok",
                              provider="codelocks",
                              detail={**detail, "vendor_answer": vendor_answer, "reread": reread,
                                      "calls": client.requests})
    return ChangeOutcome("ok", answer.result or "done", client.requests, seq, listed, status,
                         reread_error)
