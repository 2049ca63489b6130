"""What `syncd run` does to the cyclic collector once it is listening."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

from syncd import heap


class Node:
    """A reference cycle of one: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    """Leave the collector as it was: nothing frozen, the thresholds as before."""
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_what_is_alive_at_settle_is_frozen_and_never_traversed_again() -> None:
    """Objects alive when settle() runs move to the permanent generation: they are no longer in
    any generation the collector walks, and a cycle among them that becomes garbage afterwards
    is not collected (a cycle built after settle() is), until they are unfrozen."""
    frozen_before = gc.get_freeze_count()
    built: list[list[int]] = [[] for _ in range(1000)]  # 1,001 tracked containers, alive at settle()
    old = Node()
    old_ref = weakref.ref(old)
    assert any(o is built for o in gc.get_objects())

    heap.settle()

    assert gc.get_freeze_count() - frozen_before >= len(built) + 1
    assert gc.is_tracked(built) and not any(o is built for o in gc.get_objects())
    young = Node()
    young_ref = weakref.ref(young)
    del old, young  # both cycles are garbage now
    gc.collect()
    assert young_ref() is None  # built after settle(): collected as usual
    assert old_ref() is not None  # frozen: the collector never looked at it
    gc.unfreeze()
    gc.collect()
    assert old_ref() is None  # the same cycle, back in sight, is collected


def test_after_settle_a_young_collection_waits_for_young_threshold_allocations() -> None:
    """After settle(), allocating YOUNG_THRESHOLD - 1,000 container objects starts no
    collection (CPython's default would have started dozens); 2,000 more start one."""
    collections: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    heap.settle()
    gc.callbacks.append(count)
    try:
        kept: list[list[int]] = [[] for _ in range(heap.YOUNG_THRESHOLD - 1000)]
        assert collections == []
        kept += [[] for _ in range(2000)]
        assert collections[:1] == [0]
    finally:
        gc.callbacks.remove(count)
