"""State of the BioTime simulator: users and tokens, areas, terminals, punches, commands received.

The HTTP side lives in `biotime.py`. Times are kept timezone-aware here and rendered without a zone
in the server's local time, as BioTime does.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ONLINE, OFFLINE = 1, 2  # terminal `state` values (inferred; only 1 appears in the vendor doc)
ACTIONS = ("clear_command", "clear_capture", "clear_all", "upload_all", "upload_transaction",
           "reboot")
LOCAL_FORMAT = "%Y-%m-%d %H:%M:%S"
_SN_PREFIXES = ("A6KX", "CJDE", "BJ2C", "AEH7")
_NAMES = ("Aziz", "Dilnoza", "Rustam", "Malika", "Sardor", "Nodira", "Timur", "Gulnora", "Bekzod",
          "Kamola", "Jasur", "Shahlo")
_PUNCH_STATES = (("0", "Check In"), ("1", "Check Out"), ("4", "Overtime In"), ("5", "Overtime Out"))
_VERIFY_TYPES = ((1, "Fingerprint"), (15, "Face"), (4, "Card"))


class TokenError(Exception):
    """A token was refused; the message is the one the server puts in `detail`."""


@dataclasses.dataclass
class Area:
    """A BioTime area (the default one, id 1, is "Not Authorized")."""

    id: int
    code: str
    name: str

    def to_json(self) -> dict[str, Any]:
        """The nested area object of a terminal record."""
        return {"id": self.id, "area_code": self.code, "area_name": self.name}


@dataclasses.dataclass
class Terminal:
    """One attendance terminal as the server remembers it."""

    id: int
    sn: str
    alias: str
    ip_address: str
    area_id: int
    terminal_tz: int = 5
    heartbeat: int = 10
    online: bool = True
    stale_since: datetime | None = None  # server still says state 1, but nothing heard since
    last_seen: datetime | None = None  # frozen last_activity of an offline terminal
    fw_ver: str | None = None
    push_ver: str | None = None
    terminal_name: str | None = None
    counts: dict[str, int | None] = dataclasses.field(default_factory=dict)
    transfer_time: str = "00:00;14:05"
    transfer_interval: int = 1
    is_attendance: int = 1
    string_numbers: bool = False  # this record renders its numbers as strings
    known: bool = True  # the business has it in its own records
    activity_jitter: int = 0


@dataclasses.dataclass
class Transaction:
    """One punch; `id` grows with upload, so late uploads get new ids and old punch times."""

    id: int
    emp: int
    emp_code: str
    first_name: str
    department: str
    punch_time: datetime
    punch_state: tuple[str, str]
    verify_type: tuple[int, str]
    terminal_sn: str
    terminal_alias: str
    area_alias: str
    upload_time: datetime


@dataclasses.dataclass(frozen=True)
class Command:
    """A command the server received for a terminal; `queued` when the terminal was offline."""

    action: str
    terminal_id: int
    sn: str
    issued_at: datetime
    queued: bool


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


class BioTimeSim:
    """A seeded self-hosted BioTime server: one admin user, areas, terminals and their punches."""

    def __init__(self, *, seed: int = 0, terminals: int = 10, unknown: int | None = None,
                 timezone: str = "Asia/Tashkent", internal_host: str = "10.0.0.5:8081",
                 token_lifetime: int = 300, legacy_paging: bool = False,
                 now: Callable[[], datetime] | None = None) -> None:
        self.seed = seed
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.rng = random.Random(f"biotime-{seed}")
        self.username = "admin"
        digest = hashlib.sha256(f"biotime-{seed}".encode()).hexdigest()
        self.password = f"Sim-{digest[:12]}"
        self.api_token = digest[24:64]  # DRF-style 40-hex token of /api-token-auth/
        self.jwt_secret = hashlib.sha256(f"biotime-jwt-{seed}".encode()).digest()
        self.token_lifetime = token_lifetime
        self.timezone = timezone
        self.tz = _zone(timezone)
        self.internal_host = internal_host
        self.legacy_paging = legacy_paging  # older servers: `limit` instead of `page_size`
        self.licensed = True
        self.areas = {1: Area(1, "1", "Not Authorized"), 2: Area(2, "HQ", "Head Office"),
                      3: Area(3, "S01", "Shop Chilonzor"), 4: Area(4, "S02", "Shop Yunusobod")}
        self.terminals: dict[int, Terminal] = {}
        self.transactions: list[Transaction] = []
        self.commands: list[Command] = []
        self.employees = [(i + 1, f"{1000 + i + 1}", _NAMES[i % len(_NAMES)],
                           self.areas[2 + i % 3].name) for i in range(24)]
        unknown_count = max(1, terminals // 5) if unknown is None else unknown
        for index in range(terminals):
            if index >= terminals - unknown_count:
                self.add_unknown_terminal()
            else:
                self._seed_known(index)
        self._seed_transactions()

    # -- clock and rendering -----------------------------------------------------------------

    def local(self, moment: datetime | None) -> str | None:
        """`moment` in the server's local time, without zone, as BioTime renders times."""
        return None if moment is None else moment.astimezone(self.tz).strftime(LOCAL_FORMAT)

    def parse_local(self, text: str) -> datetime:
        """A zone-less server-local time string as an aware datetime."""
        return datetime.strptime(text, LOCAL_FORMAT).replace(tzinfo=self.tz)

    # -- tokens ------------------------------------------------------------------------------

    def set_token_lifetime(self, seconds: int) -> None:
        """JWTs issued from now on expire `seconds` after issue."""
        self.token_lifetime = seconds

    def issue_jwt(self) -> str:
        """A signed HS256 JWT for the admin user, with `exp` after the token lifetime."""
        issued = int(self.now().timestamp())
        header = {"typ": "JWT", "alg": "HS256"}
        payload = {"user_id": 1, "username": self.username, "exp": issued + self.token_lifetime,
                   "email": "", "orig_iat": issued}
        signing_input = ".".join(_b64(json.dumps(part, separators=(",", ":")).encode())
                                 for part in (header, payload))
        signature = hmac.new(self.jwt_secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(signature)}"

    def verify_jwt(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unexpired JWT; TokenError otherwise."""
        try:
            head, body, signature = token.split(".")
            expected = hmac.new(self.jwt_secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
            valid = hmac.compare_digest(_unb64(signature), expected)
            claims: dict[str, Any] = json.loads(_unb64(body))
        except ValueError as err:
            raise TokenError("Error decoding signature.") from err
        if not valid:
            raise TokenError("Error decoding signature.")
        if int(claims.get("exp", 0)) < self.now().timestamp():
            raise TokenError("Signature has expired.")
        return claims

    def set_licensed(self, licensed: bool) -> None:
        """Switch the licence gate: unlicensed servers answer the API with 403."""
        self.licensed = licensed

    # -- terminals ---------------------------------------------------------------------------

    def _new_sn(self) -> str:
        while True:
            sn = f"{self.rng.choice(_SN_PREFIXES)}{self.rng.randrange(10**9):09d}"
            if self.terminal_by_sn(sn) is None:
                return sn

    def add_terminal(self, *, sn: str, alias: str, ip_address: str, area_id: int = 1,
                     terminal_tz: int = 5, heartbeat: int = 10, known: bool = True) -> Terminal:
        """Register a terminal (as the create endpoint does): state 1, last activity frozen now."""
        terminal = Terminal(id=max(self.terminals, default=0) + 1, sn=sn, alias=alias,
                            ip_address=ip_address, area_id=area_id, terminal_tz=terminal_tz,
                            heartbeat=heartbeat, stale_since=self.now(), known=known,
                            counts=dict.fromkeys(("user_count", "fp_count", "face_count",
                                                  "palm_count", "transaction_count")))
        self.terminals[terminal.id] = terminal
        return terminal

    def _seed_known(self, index: int) -> None:
        area_id = 2 + index % 3
        terminal = self.add_terminal(sn=self._new_sn(), alias=f"{self.areas[area_id].name} {index + 1}",
                                     ip_address=f"192.168.{area_id}.{10 + index}", area_id=area_id)
        terminal.stale_since = None
        terminal.fw_ver = self.rng.choice(("Ver 6.60 Apr 28 2017", "ZMM220_TFT-Ver3.4.1"))
        terminal.push_ver = self.rng.choice(("2.4.1", "2.2.14"))
        terminal.terminal_name = self.rng.choice(("SpeedFace-V5L", "MB460", "uFace800"))
        terminal.counts = {"user_count": self.rng.randrange(5, 60),
                           "fp_count": self.rng.randrange(0, 120),
                           "face_count": self.rng.randrange(0, 60), "palm_count": 0,
                           "transaction_count": self.rng.randrange(100, 5000)}
        terminal.string_numbers = self.rng.random() < 0.35
        terminal.activity_jitter = self.rng.randrange(0, terminal.heartbeat * 3)
        roll = self.rng.random()
        if roll < 0.2:
            self.set_offline(terminal.sn, since=timedelta(hours=self.rng.randrange(2, 72)))
        elif roll < 0.3:
            # The server has not noticed yet: state 1, but the last activity is hours old.
            terminal.stale_since = self.now() - timedelta(hours=self.rng.randrange(1, 12))

    def add_unknown_terminal(self, sn: str | None = None) -> Terminal:
        """A terminal that registered itself ("Auto add", area "Not Authorized") unknown to the business."""
        terminal = self.add_terminal(sn=sn or self._new_sn(), alias="Auto add",
                                     ip_address=f"172.30.7.{self.rng.randrange(2, 250)}", known=False)
        terminal.stale_since = None
        terminal.string_numbers = self.rng.random() < 0.5
        return terminal

    def terminal_by_sn(self, sn: str) -> Terminal | None:
        """The terminal with serial number `sn`, if any."""
        return next((t for t in self.terminals.values() if t.sn == sn), None)

    def _terminal(self, sn: str) -> Terminal:
        terminal = self.terminal_by_sn(sn)
        if terminal is None:
            raise KeyError(sn)
        return terminal

    def known_terminals(self) -> list[Terminal]:
        """The terminals the business knows about (to seed its own records)."""
        return [t for t in self.terminals.values() if t.known]

    def unknown_terminals(self) -> list[Terminal]:
        """The terminals the business does not know about."""
        return [t for t in self.terminals.values() if not t.known]

    def set_offline(self, sn: str, *, since: timedelta = timedelta(0)) -> None:
        """The terminal stops talking: state 2, last activity frozen `since` ago."""
        terminal = self._terminal(sn)
        terminal.online = False
        terminal.last_seen = self.now() - since
        terminal.stale_since = None

    def set_online(self, sn: str) -> None:
        """The terminal talks again: state 1, last activity recent and kept recent."""
        terminal = self._terminal(sn)
        terminal.online = True
        terminal.last_seen = None
        terminal.stale_since = None

    def set_stale(self, sn: str, *, since: timedelta) -> None:
        """The server still shows state 1, but has heard nothing for `since`."""
        terminal = self._terminal(sn)
        terminal.online = True
        terminal.stale_since = self.now() - since

    def last_activity(self, terminal: Terminal) -> datetime | None:
        """When the server last heard from the terminal (recent, for an online terminal)."""
        if not terminal.online:
            return terminal.last_seen
        if terminal.stale_since is not None:
            return terminal.stale_since
        return self.now() - timedelta(seconds=terminal.activity_jitter)

    def terminal_json(self, terminal: Terminal) -> dict[str, Any]:
        """The terminal record as the API returns it."""
        area = self.areas[terminal.area_id]

        def num(value: int | None) -> int | str | None:
            return str(value) if terminal.string_numbers and value is not None else value

        return {
            "id": terminal.id, "sn": terminal.sn, "ip_address": terminal.ip_address,
            "alias": terminal.alias, "terminal_name": terminal.terminal_name,
            "fw_ver": terminal.fw_ver, "push_ver": terminal.push_ver,
            "state": num(ONLINE if terminal.online else OFFLINE),
            "terminal_tz": num(terminal.terminal_tz), "area": area.to_json(),
            "last_activity": self.local(self.last_activity(terminal)),
            **{name: num(value) for name, value in terminal.counts.items()},
            "push_time": None, "transfer_time": terminal.transfer_time,
            "transfer_interval": num(terminal.transfer_interval),
            "is_attendance": num(terminal.is_attendance), "area_name": area.name,
        }

    def record_command(self, action: str, terminal: Terminal) -> Command:
        """Record a command sent to a terminal (queued until it is next online)."""
        command = Command(action=action, terminal_id=terminal.id, sn=terminal.sn,
                          issued_at=self.now(), queued=not terminal.online)
        self.commands.append(command)
        if action == "clear_all":
            terminal.counts = {name: 0 if value is not None else None
                               for name, value in terminal.counts.items()}
        return command

    def commands_for(self, sn: str) -> list[Command]:
        """Commands received for the terminal `sn`, oldest first."""
        return [c for c in self.commands if c.sn == sn]

    # -- transactions ------------------------------------------------------------------------

    def _seed_transactions(self) -> None:
        now = self.now()
        punches = []
        for terminal in self.terminals.values():
            end = self.last_activity(terminal) or now
            for _ in range(self.rng.randrange(3, 10)):
                punches.append((end - timedelta(minutes=self.rng.randrange(1, 3 * 24 * 60)),
                                terminal.sn))
        for punch_time, sn in sorted(punches):
            self.punch(sn, at=punch_time, uploaded_at=punch_time + timedelta(seconds=5))
        for terminal in self.known_terminals()[::4]:
            self.upload_late(terminal.sn, count=2, age=timedelta(hours=30))

    def punch(self, sn: str, *, emp_code: str | None = None, at: datetime | None = None,
              uploaded_at: datetime | None = None) -> Transaction:
        """A punch on terminal `sn` at `at` (default now), uploaded at `uploaded_at` (default now)."""
        terminal = self._terminal(sn)
        employee = next((e for e in self.employees if e[1] == emp_code), None)
        emp, code, first_name, department = employee or self.rng.choice(self.employees)
        transaction = Transaction(
            id=len(self.transactions) + 1, emp=emp, emp_code=code, first_name=first_name,
            department=department, punch_time=(at or self.now()).replace(microsecond=0),
            punch_state=self.rng.choice(_PUNCH_STATES), verify_type=self.rng.choice(_VERIFY_TYPES),
            terminal_sn=sn, terminal_alias=terminal.alias,
            area_alias=self.areas[terminal.area_id].name,
            upload_time=(uploaded_at or self.now()).replace(microsecond=0))
        self.transactions.append(transaction)
        return transaction

    def upload_late(self, sn: str, *, count: int = 3,
                    age: timedelta = timedelta(hours=12)) -> list[Transaction]:
        """Punches made about `age` ago that a terminal uploads only now (new ids, old times)."""
        return [self.punch(sn, at=self.now() - age + timedelta(minutes=7 * i)) for i in range(count)]

    def transaction_json(self, t: Transaction) -> dict[str, Any]:
        """The punch as the transactions endpoint returns it."""
        return {
            "id": t.id, "emp": t.emp, "emp_code": t.emp_code, "first_name": t.first_name,
            "last_name": None, "department": t.department, "position": None,
            "punch_time": self.local(t.punch_time), "punch_state": t.punch_state[0],
            "punch_state_display": t.punch_state[1], "verify_type": t.verify_type[0],
            "verify_type_display": t.verify_type[1], "work_code": "0", "gps_location": None,
            "area_alias": t.area_alias, "terminal_sn": t.terminal_sn, "temperature": 0.0,
            "is_mask": "No", "terminal_alias": t.terminal_alias,
            "upload_time": self.local(t.upload_time),
        }
