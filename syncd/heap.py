"""The collector's settings for a long-running server, applied once start-up is over.

Measured under intake load (bench `ingest`, two runs): with CPython's defaults the cyclic
collector ran about every 60 pushes, 0.6–1 ms each, and every few thousand pushes a full
collection walked the ~80,000 objects of the loaded modules, settings and pools for 55–70 ms:
10–25 µs a push on average, a tenth of the server's time, and a latency spike on top.

So, once everything start-up builds exists: collect it, move it out of the collector's sight
for good (`gc.freeze`), and let young objects gather longer before a collection. syncd's request
path makes few reference cycles; what it does make is still collected, only in fewer, larger
rounds.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # CPython's default is 700 (2,000 from 3.13)


def settle() -> None:
    """Freeze what start-up built and collect young objects less often. Call once, after
    start-up; calling it again freezes whatever has been built since."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
