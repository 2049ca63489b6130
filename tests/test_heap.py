"""What `syncd run` does to the cyclic collector once it is listening."""

from __future__ import annotations

import gc

from syncd import heap


def test_settle_freezes_what_start_up_built_and_collects_young_objects_less_often() -> None:
    """After settle() the objects alive at that moment are frozen (never traversed again) and a
    young collection waits for YOUNG_THRESHOLD allocations; the older thresholds are kept."""
    before = gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
