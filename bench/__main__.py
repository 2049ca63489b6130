"""`python -m bench [NAME…]`: run every benchmark, or the ones named, and print their reports.

Exit status 0 whenever every benchmark ran (a missed target is reported with MISSED, not failed);
1 if a benchmark could not run at all (it crashed or overran its time bound); 2 for a bad name.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
import traceback
from collections.abc import Awaitable, Callable

from bench.common import Postgres, Report, postgres_server, quiet_logging

# name -> (module, summary name, time bound in seconds)
BENCHMARKS: dict[str, tuple[str, str, float]] = {
    "cli_start": ("bench.cli_start", "cli_start", 240),
    "ingest": ("bench.ingest", "ingest", 300),
    "registry": ("bench.registry", "registry", 300),
    "hotpath": ("bench.hotpath", "hotpath", 180),
    "upsert": ("bench.upsert", "upsert_vs_copy", 240),
    "resync": ("bench.resync", "resync_rows_written", 240),
    "rate": ("bench.rate", "rate_vs_limit", 120),
    "memory": ("bench.memory", "rss_100k_vs_10k", 600),
    "ready": ("bench.ready", "ready_cold_warm", 120),
    "uploads": ("bench.uploads", "uploads_vs_floor", 720),
    "fleetview": ("bench.fleetview", "fleet_view_100k", 300),
    "k3_month": ("bench.k3_month", "k3_month_budget_used", 420),
    "reconcile": ("bench.reconcile", "reconcile_vs_bare_join", 900),
}

Runner = Callable[[Postgres], Awaitable[Report]]


async def _one(pg: Postgres, name: str) -> bool:
    module, summary, bound = BENCHMARKS[name]
    began = time.monotonic()
    try:
        run: Runner = importlib.import_module(module).run
        async with asyncio.timeout(bound):
            report = await run(pg)
    except Exception as err:  # report it and go on with the other benchmarks
        traceback.print_exc(file=sys.stderr)
        kind = "timed out" if isinstance(err, TimeoutError) else "error"
        print(f"{summary}: {kind} (target not measured) MISSED\n  {type(err).__name__}: {err}",
              flush=True)
        return False
    report.details.append(f"took {time.monotonic() - began:.1f} s")
    print("\n".join(report.lines()), flush=True)
    return True


async def _main(names: list[str]) -> int:
    ok = True
    async with postgres_server() as pg:
        for name in names:
            ok = await _one(pg, name) and ok
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """Run the named benchmarks (all by default) against a fresh PostgreSQL."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    quiet_logging()
    began = time.monotonic()
    status = asyncio.run(_main(list(dict.fromkeys(args.names)) or list(BENCHMARKS)))
    print(f"bench: {time.monotonic() - began:.0f} s in all", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
