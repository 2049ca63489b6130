"""The registry's parts: MAC normalisation, client addresses, the rate limiter, group commit."""

from __future__ import annotations

import asyncio
import ipaddress
import json

import pytest

from syncd.db.batching import GroupCommit
from syncd.db.pool import Database
from syncd.errors import DataRejected
from syncd.registry import store
from syncd.registry.limits import ClientAddress, RateLimiter
from syncd.registry.validate import Invalid, Registration, normalise_mac, parse
from tests.clocks import FIXED, Clock


@pytest.mark.parametrize(("raw", "expected"), [
    ("A1B2C3D4E5F6", "A1B2C3D4E5F6"), ("a1:b2:c3:d4:e5:f6", "A1B2C3D4E5F6"),
    ("A1-B2-C3-D4-E5-F6", "A1B2C3D4E5F6"), ("a1b2.c3d4.e5f6", "A1B2C3D4E5F6"),
    (" a1 b2 c3 d4 e5 f6 ", "A1B2C3D4E5F6"),
    ("6fa459ea-ee8a-3ca4-894e-db77e160355e", "6FA459EAEE8A3CA4894EDB77E160355E"),
    ("A1B2C3D4E5", None), ("G1B2C3D4E5F6", None), ("A1_B2_C3_D4_E5_F6", None), ("", None),
    ("F" * 65, None),
])
def test_mac_addresses_normalise_to_upper_case_hex_without_separators(
        raw: str, expected: str | None) -> None:
    """Separators (: - . space) and case are dropped; 12-64 hex digits must remain."""
    assert normalise_mac(raw) == expected


def test_placeholder_macs_are_refused() -> None:
    """The OS placeholders (Android 6+'s 02:00:00:00:00:00, all 0, all F) are not device ids."""
    for mac in ("02:00:00:00:00:00", "00-00-00-00-00-00", "ff:ff:ff:ff:ff:ff"):
        body = json.dumps({"mac_address": mac, "device_os": "a", "device_version": "b",
                           "device_type": "c", "app_version": "d", "app_name": "e"}).encode()
        with pytest.raises(Invalid, match="placeholder"):
            parse(body, "application/json", 128)


def test_an_unknown_content_type_is_sniffed() -> None:
    """Without a usable Content-Type, a body starting with { is JSON, anything else a form."""
    form = b"mac_address=A1B2C3D4E5F6&device_os=iOS&device_version=1&device_type=M&" \
           b"app_version=2&app_name=X"
    assert parse(form, "", 128).device_os == "iOS"
    assert parse(b' {"mac_address": "A1B2C3D4E5F6", "device_os": "iOS", "device_version": "1",'
                 b' "device_type": "M", "app_version": "2", "app_name": "X"}',
                 "text/plain", 128).app_name == "X"


def trusted(*nets: str) -> ClientAddress:
    """A ClientAddress trusting the given CIDRs."""
    return ClientAddress([ipaddress.ip_network(n) for n in nets])


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    """An untrusted peer is the client whatever X-Forwarded-For claims."""
    assert trusted().resolve("203.0.113.5", ["1.2.3.4"]) == "203.0.113.5"
    assert trusted("10.0.0.0/8").resolve("203.0.113.5", ["1.2.3.4"]) == "203.0.113.5"


def test_the_client_is_the_rightmost_untrusted_hop() -> None:
    """Walking from the right past trusted proxies; a forged left part is never believed."""
    addr = trusted("10.0.0.0/8", "192.168.0.0/16")
    assert addr.resolve("10.0.0.1", ["6.6.6.6, 198.51.100.7", "192.168.1.1"]) == "198.51.100.7"
    assert addr.resolve("10.0.0.1", ["198.51.100.7:4711"]) == "198.51.100.7"
    assert addr.resolve("10.0.0.1", ["[2001:db8::1]:443"]) == "2001:db8::1"
    assert addr.resolve("10.0.0.1", ["6.6.6.6, garbage"]) == "10.0.0.1"
    assert addr.resolve("10.0.0.1", []) == "10.0.0.1"
    assert addr.resolve("::ffff:10.0.0.1", ["198.51.100.7"]) == "198.51.100.7"
    assert addr.resolve(None, ["198.51.100.7"]) == ""
    assert addr.resolve("fe80::1%eth0", []) == "fe80::1"  # no zone: it is stored as inet


def test_rate_limiter_allows_a_burst_then_refills_at_the_rate() -> None:
    """`burst` requests pass at once, the next waits 60/per_minute s; keys are independent."""
    clock = Clock(FIXED)
    limiter = RateLimiter(per_minute=6, burst=3, clock=clock)
    assert [limiter.retry_after("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.retry_after("a") == 10
    assert limiter.retry_after("b") == 0
    clock.advance(seconds=10)
    assert limiter.retry_after("a") == 0
    assert limiter.retry_after("a") == 10


def test_rate_limiter_memory_is_bounded() -> None:
    """Only max_keys buckets are kept; the least recently seen is forgotten first."""
    limiter = RateLimiter(per_minute=1, burst=1, max_keys=2, clock=Clock(FIXED))  # stands still
    for key in ("a", "b", "c"):
        assert limiter.retry_after(key) == 0
    assert limiter.retry_after("c") > 0
    assert limiter.retry_after("a") == 0  # forgotten, so full again
    assert len(limiter._buckets) == 2


def reg(mac: str, app_version: str = "1") -> store.Posted:
    """A registration for `mac` from 192.0.2.1."""
    return store.Posted(Registration(mac, "Android", "14", "Mobile", app_version, "Shop"),
                        "192.0.2.1")


async def test_concurrent_registrations_share_one_statement(db: Database) -> None:
    """Registrations submitted together are written in one batch; a MAC repeated keeps its last."""
    async def write(batch: list[store.Posted]) -> list[store.Seen]:
        return await store.register_batch(db, batch, 3600)

    writer: GroupCommit[store.Posted, store.Seen] = GroupCommit(write)
    posts = [reg(f"A1B2C3D4E5{i:02X}") for i in range(40)] + [reg("A1B2C3D4E500", "2")]
    seen = await asyncio.gather(*(writer.submit(p) for p in posts))
    assert writer.batches == 1
    assert [s.mac_address for s in seen] == [p.registration.mac_address for p in posts]
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM vendor.app_devices") == 40
        assert await conn.fetchval("SELECT app_version FROM vendor.app_devices "
                                   "WHERE mac_address = 'A1B2C3D4E500'") == "2"


async def test_a_value_the_database_refuses_fails_only_its_own_caller(db: Database) -> None:
    """A batch the database refuses is retried item by item: the others are still stored."""
    async def write(batch: list[store.Posted]) -> list[store.Seen]:
        return await store.register_batch(db, batch, 3600)

    writer: GroupCommit[store.Posted, store.Seen] = GroupCommit(write)
    bad = reg("NOT-HEX")  # bypasses validation; the table's CHECK refuses it
    results = await asyncio.gather(writer.submit(reg("A1B2C3D4E5F6")), writer.submit(bad),
                                   return_exceptions=True)
    assert isinstance(results[0], store.Seen) and isinstance(results[1], DataRejected)
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM vendor.app_devices") == 1


async def test_waits_past_the_writer_timeout_end_in_timeout_error_and_the_rows_still_land(
        db: Database) -> None:
    """With the table locked by another session, every caller still waiting when the writer's
    timeout passes gets TimeoutError (one timer serves them all, oldest first); their rows are
    written once the lock goes, and a later caller is answered as usual."""
    async def write(batch: list[store.Posted]) -> list[store.Seen]:
        return await store.register_batch(db, batch, 3600)

    writer: GroupCommit[store.Posted, store.Seen] = GroupCommit(write, timeout=0.3)
    macs = [f"A1B2C3D4E5{i:02X}" for i in range(3)]
    async with db.transaction() as conn:  # the upsert waits for this lock
        await conn.execute("LOCK TABLE vendor.app_devices IN EXCLUSIVE MODE")
        results = await asyncio.gather(*(writer.submit(reg(mac)) for mac in macs),
                                       return_exceptions=True)
    assert all(isinstance(r, TimeoutError) for r in results), results
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # the batch commits once the lock is gone
        async with db.connection() as conn:
            if await conn.fetchval("SELECT count(*) FROM vendor.app_devices") == 3:
                break
        assert asyncio.get_running_loop().time() < deadline, "the timed-out rows never landed"
        await asyncio.sleep(0.05)
    seen = await writer.submit(reg("A1B2C3D4E5FF"))
    assert seen.mac_address == "A1B2C3D4E5FF" and not seen.banned
    await writer.close()


async def test_an_unchanged_repost_writes_nothing_until_last_seen_is_stale(db: Database) -> None:
    """Re-posting the same fields neither writes nor locks the row within the resolution (no WAL);
    past it, only last_seen_at is refreshed and no history row is added."""
    await store.register_batch(db, [reg("A1B2C3D4E5F6")], 3600)
    async with db.connection() as conn:
        before = await conn.fetchrow("SELECT xmin::text AS x, xmax::text AS lock, last_seen_at, "
                                     "updated_at FROM vendor.app_devices")
        await store.register_batch(db, [reg("A1B2C3D4E5F6")], 3600)
        same = await conn.fetchrow("SELECT xmin::text AS x, xmax::text AS lock "
                                   "FROM vendor.app_devices")
        assert same is not None and before is not None
        assert (same["x"], same["lock"]) == (before["x"], before["lock"])
        await store.register_batch(db, [reg("A1B2C3D4E5F6")], 0)
        after = await conn.fetchrow("SELECT xmin::text AS x, last_seen_at, updated_at "
                                    "FROM vendor.app_devices")
        assert after is not None and after["x"] != before["x"]
        assert after["last_seen_at"] > before["last_seen_at"]
        assert after["updated_at"] == before["updated_at"]
        assert await conn.fetchval("SELECT count(*) FROM vendor.app_device_history") == 1
