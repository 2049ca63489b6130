"""The NetCode ledger: every NetCode issued through syncd, answered again without a vendor call.

NetCodes are deterministic (same parameters, same code) and Codelocks keeps no history, yet bills
every request. So each code issued is recorded in ops.netcodes with who asked, when, the
parameters and the expiry, and a repeat of the same parameters is answered from the ledger.

A NetCode opens a door for its whole window, so it is a secret: the ledger must give it back, so it
cannot be hashed; it is sealed with AES-GCM under a key derived from `codelocks.api_key` (never
stored), the parameters' HMAC as associated data. The parameters are found by an HMAC too, since
they include the access key (K3Connect) or the lock's identifier (KitLock). Whoever can read the
database but not the configuration sees when codes were issued, never the codes.

A start in the past is refused before any call: a NetCode is valid from its start, so the
earliest useful start is the current hour (hour codes must start on the hour) or today's
midnight (day codes must start at midnight), in the lock's time: the zone k3-locks read for a
K3Connect lock (its Timezone, else its TimezoneOffset). A KitLock's zone is not known to syncd
(its clock is whatever it was initialised with), nor is a K3 lock's that was never listed, so
for them "now" is read in the zone furthest behind UTC (UTC-12): only a start that is past
everywhere is refused. A code issued before is still answered from the ledger (no call).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import os
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from syncd.db import codelocks as queries
from syncd.db.actions import record_action
from syncd.errors import QuotaExhausted, SyncdError, VendorError
from syncd.sync.codelocks.jobs import K3Context
from syncd.vendors.codelocks import QuotaRefusedByVendor
from syncd.vendors.codelocks.models import LOCK_MODELS

START_FORMAT = "%Y-%m-%d %H:%M"
HOUR_IDS = range(0, 12)  # 1-12 hours: id = hours - 1 (FIELD-NOTES)
DAY_IDS = range(12, 19)  # 1-7 days: id = days + 11
# The doc restricts no model to fewer durations; the ids are the same for every model.
MODEL_DURATIONS: dict[str, range] = {model: range(0, 19) for model in LOCK_MODELS}
EARLIEST = dt.timezone(dt.timedelta(hours=-12), "UTC-12")  # the zone furthest behind UTC
_OFFSET = re.compile(r"([+-]?)(\d{1,2})(?::?(\d{2}))?")


class NetCodeRequestError(SyncdError):
    """The NetCode request is invalid; nothing was spent."""


@dataclasses.dataclass(frozen=True)
class NetCodeRequest:
    """A validated NetCode request."""

    lock: str  # K3Connect lock id, or a KitLock's initialisation timecode (YYYYMMddhhmm)
    start: dt.datetime  # naive: the lock's local time
    duration_id: int
    model: str
    identifier: str | None = dataclasses.field(default=None, repr=False)  # KitLock only

    @property
    def expires(self) -> dt.datetime:
        """When the code stops working (lock local time)."""
        days, hours = duration_of(self.duration_id)
        return self.start + dt.timedelta(days=days, hours=hours)


@dataclasses.dataclass(frozen=True)
class IssuedNetCode:
    """A NetCode and where it came from."""

    code: str = dataclasses.field(repr=False)
    request: NetCodeRequest
    expires: dt.datetime
    issued_at: dt.datetime
    issued_by: str
    from_ledger: bool


def duration_of(duration_id: int) -> tuple[int, int]:
    """(days, hours) of a duration id."""
    if duration_id in HOUR_IDS:
        return 0, duration_id + 1
    if duration_id in DAY_IDS:
        return duration_id - 11, 0
    raise NetCodeRequestError(f"unknown duration id {duration_id}: 0-11 are 1-12 hours, "
                              "12-18 are 1-7 days")


def parse_duration(text: str) -> int:
    """A duration id from "4" (an id), "3h" (hours) or "2d" (days)."""
    value = text.strip().lower()
    try:
        if value.endswith("h"):
            return int(value[:-1]) - 1 if 1 <= int(value[:-1]) <= 12 else -1
        if value.endswith("d"):
            return int(value[:-1]) + 11 if 1 <= int(value[:-1]) <= 7 else -1
        return int(value)
    except ValueError:
        raise NetCodeRequestError(f"duration {text!r}: give an id (0-18), hours (1h-12h) or days "
                                  "(1d-7d)") from None


def lock_zone(timezone: str | None, offset: str | None) -> tuple[dt.tzinfo, str]:
    """The zone of a K3 lock from its Timezone (an IANA name) or TimezoneOffset ("+05:00"),
    with a label; UTC-12 (the most lenient) when neither can be read."""
    if timezone:
        try:
            return ZoneInfo(timezone.strip()), timezone.strip()
        except (ZoneInfoNotFoundError, ValueError):
            pass
    found = _OFFSET.fullmatch((offset or "").strip())
    if found and int(found[2]) <= 14 and int(found[3] or 0) < 60:
        delta = dt.timedelta(hours=int(found[2]), minutes=int(found[3] or 0))
        zone = dt.timezone(-delta if found[1] == "-" else delta)
        return zone, f"UTC{found[1]}{int(found[2]):02d}:{int(found[3] or 0):02d}"
    return EARLIEST, "UTC-12: the lock's zone is not known"


def check_start(request: NetCodeRequest, now: dt.datetime, zone: dt.tzinfo,
                zone_label: str) -> None:
    """Refuse a start before the current hour (hour codes) or today's midnight (day codes) in
    the lock's time; `now` is aware."""
    local = now.astimezone(zone).replace(tzinfo=None)
    days, _ = duration_of(request.duration_id)
    earliest = local.replace(minute=0, second=0, microsecond=0)
    if days:
        earliest = earliest.replace(hour=0)
    if request.start < earliest:
        kind = "a day code can start today at 00:00" if days else \
            f"an hour code can start at the current hour ({earliest:%H:%M})"
        raise NetCodeRequestError(
            f"start {request.start:%Y-%m-%d %H:%M} is in the past for lock {request.lock} "
            f"(its time now: {local:%Y-%m-%d %H:%M}, {zone_label}): {kind} at the earliest")


def validate(lock: str, start: str, duration: str, model: str = "K3CONNECT",
             identifier: str | None = None) -> NetCodeRequest:
    """Check a request before any call is spent; NetCodeRequestError says what is wrong."""
    model = model.strip().upper()
    if model not in MODEL_DURATIONS:
        raise NetCodeRequestError(f"lock model must be one of {', '.join(LOCK_MODELS)}")
    try:
        when = dt.datetime.strptime(start.strip(), START_FORMAT)
    except ValueError:
        raise NetCodeRequestError(f"start {start!r}: expected yyyy-MM-dd hh:mm") from None
    duration_id = parse_duration(duration)
    if duration_id not in MODEL_DURATIONS[model]:
        raise NetCodeRequestError(f"duration id {duration_id} is not available for {model}")
    days, _ = duration_of(duration_id)
    if when.minute or when.second:
        raise NetCodeRequestError("hour NetCodes must start on the hour (minutes :00)")
    if days and when.hour:
        raise NetCodeRequestError("day NetCodes must start at midnight (00:00)")
    lock = lock.strip()
    if model == "K3CONNECT":
        if not lock or not all(c in "0123456789abcdefABCDEF" for c in lock):
            raise NetCodeRequestError("--lock must be a K3Connect lock id (hex)")
        if identifier:
            raise NetCodeRequestError("K3Connect NetCodes take no --identifier (the lock's "
                                      "access key is used)")
    else:
        if not (lock.isdigit() and len(lock) == 12):
            raise NetCodeRequestError("--lock must be the KitLock's initialisation timecode "
                                      "(YYYYMMddhhmm, 12 digits)")
        if not (identifier and identifier.isdigit()):
            raise NetCodeRequestError("KitLock NetCodes need --identifier (the lock's numeric "
                                      "identifier)")
    return NetCodeRequest(lock, when, duration_id, model, identifier)


class NetCodeLedger:
    """Issues NetCodes through the ledger: a repeat costs no call."""

    def __init__(self, k3: K3Context) -> None:
        self.k3 = k3
        secret = k3.settings.api_key.get_secret_value().encode()
        self._ref_key = hmac.new(secret, b"syncd netcode params v1", hashlib.sha256).digest()
        self._seal = AESGCM(hmac.new(secret, b"syncd netcode seal v1", hashlib.sha256).digest())

    def params_ref(self, request: NetCodeRequest, secret: str) -> str:
        """The HMAC that finds these parameters in the ledger."""
        text = "|".join([request.model, request.lock, request.start.strftime(START_FORMAT),
                         str(request.duration_id), secret])
        return hmac.new(self._ref_key, text.encode(), hashlib.sha256).hexdigest()

    async def issue(self, request: NetCodeRequest, actor: str) -> IssuedNetCode:
        """The code for `request`: from the ledger if issued before, else from the vendor."""
        secret = request.identifier or await self._access_key(request.lock)
        ref = self.params_ref(request, secret)
        detail = {"lock_id": request.lock, "lock_model": request.model,
                  "start": request.start.strftime(START_FORMAT),
                  "duration_id": request.duration_id}
        found = await queries.netcode_find(self.k3.db, ref, actor)
        if found is not None:
            code = self._unseal(found.code_sealed, ref)
            if code is not None:
                await record_action(self.k3.db, actor=actor, action="netcode.issue",
                                    subject=f"k3:{request.lock}", outcome="ok",
                                    provider="codelocks", detail={**detail, "ledger": "hit"})
                return IssuedNetCode(code, request, found.expires_at, found.issued_at,
                                     found.issued_by, True)
        zone, label = await self.zone_of(request)
        check_start(request, self.k3.clock(), zone, label)  # before any call is spent
        client = self.k3.client(None)  # an operator action: may use the reserve
        start = request.start.strftime(START_FORMAT)
        try:
            if request.model == "K3CONNECT":
                answer = await client.k3_netcode(request.lock, start, request.duration_id, secret)
            else:
                answer = await client.kitlock_netcode(request.lock, start, request.duration_id,
                                                      request.model, secret)
        except VendorError as err:
            if isinstance(err, QuotaRefusedByVendor):  # counted, and the period marked used up
                await self.k3.ledger.vendor_exhausted(err.category)
            await record_action(self.k3.db, actor=actor, action="netcode.issue",
                                subject=f"k3:{request.lock}",
                                outcome="refused" if isinstance(err, QuotaExhausted) else "failed",
                                provider="codelocks", detail={**detail, "error": str(err)})
            raise
        expires = request.expires
        nonce = os.urandom(12)
        sealed = nonce + self._seal.encrypt(nonce, answer.code.encode(), ref.encode())
        async with self.k3.db.transaction() as conn:
            await queries.netcode_insert(conn, ref, request.lock, request.model, request.start,
                                         request.duration_id, expires, sealed, actor)
            await record_action(conn, actor=actor, action="netcode.issue",
                                subject=f"k3:{request.lock}", outcome="ok", provider="codelocks",
                                detail={**detail, "ledger": "miss", "expires": expires.isoformat()})
        return IssuedNetCode(answer.code, request, expires, self.k3.clock(), actor, False)

    async def zone_of(self, request: NetCodeRequest) -> tuple[dt.tzinfo, str]:
        """The lock's zone as k3-locks last read it (KitLocks and unlisted locks: UTC-12)."""
        stored = None if request.model != "K3CONNECT" else await queries.lock_get(
            self.k3.db, request.lock)
        if stored is None:
            return EARLIEST, "UTC-12: the lock's zone is not known"
        return lock_zone(stored.timezone, stored.timezone_offset)

    def _unseal(self, sealed: bytes, ref: str) -> str | None:
        try:
            return self._seal.decrypt(sealed[:12], sealed[12:], ref.encode()).decode()
        except (InvalidTag, ValueError):  # sealed under another API key: ask the vendor again
            return None

    async def _access_key(self, lock_id: str) -> str:
        ref = await queries.lock_access_ref(self.k3.db, lock_id)
        if ref is not None and ref in self.k3.keys:
            return self.k3.keys[ref]
        if ref is None and len(self.k3.keys) == 1:
            return next(iter(self.k3.keys.values()))
        raise NetCodeRequestError(f"lock {lock_id} is not known under a configured access key: "
                                  "run `syncd sync k3-locks --once` first")

