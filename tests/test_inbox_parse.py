"""Reading undocumented push bodies: ids, types and device uids from any plausible shape."""

from __future__ import annotations

import decimal
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.inbox.parse import dedupe_key, loads_exact, unstorable
from syncd.vendors.neolock.events import parse_event
from syncd.web import intake


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


# JSON number tokens, written as a sender might: ints of any length, -0, trailing zeros, exponents.
_NUMBERS = st.one_of(st.integers(min_value=-10**70, max_value=10**70).map(str),
                     st.sampled_from(["-0", "0", "-0.0", "1.0", "1E2", "1.10", "-12.500", "7e-3"]))
_STORABLE = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")  # as jsonb takes
_VALUES = st.one_of(_NUMBERS, st.text(_STORABLE, max_size=20).map(json.dumps),
                    st.sampled_from(["true", "false", "null"]))


@st.composite
def _push_texts(draw: st.DrawFn) -> str:
    """Push bodies whose id, type and device fields hold numbers written every way JSON allows."""
    fields = draw(st.dictionaries(st.sampled_from(
        ["id", "eventId", "event", "type", "deviceUid", "imei", "timestamp"]), _VALUES, max_size=6))
    nested = draw(st.lists(_NUMBERS, max_size=3))
    parts = [f"{json.dumps(key)}:{token}" for key, token in fields.items()]
    parts.append('"data":{"deviceList":[' + ",".join(nested) + "]}")
    return "{" + ",".join(parts) + "}"


@settings(max_examples=300, deadline=None)
@given(_push_texts())
def test_intake_reads_a_push_exactly_as_the_inbox_worker_does(text: str) -> None:
    """Intake reads integers as ints (fast) and the worker every number as a Decimal (exact):
    both find the same event id, its exact text included (`-0`, `1.10`), type and devices."""
    _, doc, problem = intake._decode(text.encode())
    assert problem is None
    assert parse_event(doc) == parse_event(loads_exact(text))


def test_an_integer_too_long_for_int_is_still_accepted() -> None:
    """A 5,000-digit integer (past Python's int() limit, within jsonb's) is read, not refused."""
    text = '{"id": "long", "n": ' + "7" * 5000 + "}"
    _, doc, problem = intake._decode(text.encode())
    assert problem is None and doc["n"] == decimal.Decimal("7" * 5000)
