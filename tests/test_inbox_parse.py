"""Reading undocumented push bodies: ids, types and device uids from any plausible shape."""

from __future__ import annotations

import decimal

from syncd.inbox.parse import dedupe_key, unstorable
from syncd.vendors.neolock.events import parse_event


def test_knox_style_event_is_read() -> None:
    """The simulator's Knox-like shape gives id, type and the device."""
    event = parse_event({"id": "e-1", "event": "KG_DEVICE_LOCKED", "deviceUid": "3519",
                         "status": "Locked"})
    assert (event.event_id, event.event_type, event.device_uids) == (
        ("id", "s", "e-1"), "KG_DEVICE_LOCKED", ("3519",))
    assert dedupe_key(event.event_id, b"{}") == "id:e-1"


def test_nested_lists_and_numeric_ids_are_read() -> None:
    """Devices inside data/device objects or lists, and numeric ids (parsed exactly), are found."""
    event = parse_event({"eventType": "LOCK", "data": {"deviceList": [
        {"deviceUid": decimal.Decimal("351234567890123")}, {"imei": "352000000000001"}]}})
    assert event.device_uids == ("351234567890123", "352000000000001")
    assert event.event_type == "LOCK"


def test_a_batch_of_events_is_read_as_one_hint() -> None:
    """A JSON array of events yields every device once."""
    event = parse_event([{"deviceUid": "a"}, {"deviceUid": "b"}, {"deviceUid": "a"}])
    assert event.device_uids == ("a", "b")


def test_unknown_shapes_name_no_device_and_dedupe_by_body_hash() -> None:
    """A push with nothing recognisable is unparsed, deduplicated by a hash of its exact bytes."""
    event = parse_event({"hello": "world"})
    assert not event.parsed
    assert dedupe_key(event.event_id, b'{"hello": "world"}').startswith("sha256:")
    assert dedupe_key(event.event_id, b'{"hello":"world"}') != \
        dedupe_key(event.event_id, b'{"hello": "world"}')
    assert parse_event(42).device_uids == ()


def test_values_jsonb_refuses_are_detected() -> None:
    """NUL characters and lone surrogates are reported before PostgreSQL sees them."""
    assert unstorable({"a": "ok", "b": ["fine", {"c": 1}]}) is None
    assert "NUL" in (unstorable({"a": "x\x00y"}) or "")
    assert "surrogate" in (unstorable({"k\ud800": 1}) or "")


def test_distinct_event_ids_give_distinct_dedupe_keys() -> None:
    """`1`, `"1"`, `1.0`, `" 1 "`, `{"eventId": "1"}` and two 300-character ids that differ
    only at their end are seven different events: seven different keys, each stable."""
    long_a, long_b = "x" * 299 + "a", "x" * 299 + "b"
    docs = [{"id": decimal.Decimal("1")}, {"id": "1"}, {"id": decimal.Decimal("1.0")},
            {"id": " 1 "}, {"eventId": "1"}, {"id": long_a}, {"id": long_b}]
    keys = [dedupe_key(parse_event(doc).event_id, b"{}") for doc in docs]
    assert len(set(keys)) == len(docs)
    assert keys == [dedupe_key(parse_event(doc).event_id, b"{}") for doc in docs]
    assert keys[1] == "id:1"  # the plain form of the common case is unchanged
    assert all(len(k) < 300 for k in keys)
