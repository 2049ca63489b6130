"""Start all four vendor simulators together (for `syncd simulate`, the demo, tests and benchmarks)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Generic, TypeVar

from . import biotime, codelocks, knoxguard, neolock
from .biotime import BioTimeSim
from .codelocks import CodelocksSim
from .common import Running, serve
from .knoxguard import KnoxGuardSim
from .neolock import NeoLockSim

S = TypeVar("S")


@dataclasses.dataclass
class Served(Generic[S]):
    """One simulator being served: `running.url` is the base_url to put in syncd's config."""

    running: Running
    sim: S

    @property
    def url(self) -> str:
        """The simulator's base URL."""
        return self.running.url


@dataclasses.dataclass
class Simulators:
    """The four vendor simulators, all running."""

    neolock: Served[NeoLockSim]
    knoxguard: Served[KnoxGuardSim]
    codelocks: Served[CodelocksSim]
    biotime: Served[BioTimeSim]


@contextlib.asynccontextmanager
async def run_all(*, seed: int = 0, devices: int = 20, locks: int = 10, terminals: int = 10,
                  host: str = "127.0.0.1") -> AsyncIterator[Simulators]:
    """Serve NeoLock, Knox Guard, Codelocks and BioTime simulators on free ports of `host`."""
    neo = NeoLockSim(seed=seed, devices=devices)
    knox = KnoxGuardSim(seed=seed, devices=devices)
    locks_sim = CodelocksSim(seed=seed, locks=locks)
    bio = BioTimeSim(seed=seed, terminals=terminals)
    async with contextlib.AsyncExitStack() as stack:
        neo_run = await stack.enter_async_context(
            serve(neolock.create_app(neo), host=host, prefix=neolock.BASE_PATH))
        knox_run = await stack.enter_async_context(
            serve(knoxguard.create_app(knox), host=host, prefix=knoxguard.BASE_PATH))
        locks_run = await stack.enter_async_context(
            serve(codelocks.create_app(locks_sim), host=host, prefix=codelocks.BASE_PATH))
        bio_run = await stack.enter_async_context(
            serve(biotime.create_app(bio), host=host, prefix=biotime.BASE_PATH))
        yield Simulators(neolock=Served(neo_run, neo), knoxguard=Served(knox_run, knox),
                         codelocks=Served(locks_run, locks_sim), biotime=Served(bio_run, bio))


def _toml(value: str | list[str]) -> str:
    # JSON strings and arrays of strings are valid TOML.
    return json.dumps(value, ensure_ascii=False)


def config_toml(sims: Simulators) -> str:
    """A syncd configuration snippet pointing every vendor section at the simulators."""
    sections: dict[str, dict[str, str | list[str]]] = {
        "neolock": {"base_url": sims.neolock.url, "login": sims.neolock.sim.login,
                    "password": sims.neolock.sim.password},
        "knoxguard": {"base_url": sims.knoxguard.url, "api_token": sims.knoxguard.sim.api_token},
        "codelocks": {"base_url": sims.codelocks.url, "api_key": sims.codelocks.sim.api_key,
                      "access_keys": list(sims.codelocks.sim.access_keys),
                      "plan": sims.codelocks.sim.plan},
        "biotime": {"base_url": sims.biotime.url, "username": sims.biotime.sim.username,
                    "password": sims.biotime.sim.password},
    }
    return "\n".join(
        f"[{name}]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in keys.items())
        for name, keys in sections.items())


def describe(sims: Simulators) -> str:
    """Human-readable lines: each simulator's URL and (fake) credentials, then the config snippet."""
    c, b = sims.codelocks.sim, sims.biotime.sim
    lines = [
        f"neolock    {sims.neolock.url}  login={sims.neolock.sim.login} "
        f"password={sims.neolock.sim.password}",
        f"knoxguard  {sims.knoxguard.url}  api_token={sims.knoxguard.sim.api_token}",
        f"codelocks  {sims.codelocks.url}  api_key={c.api_key} "
        f"access_keys={','.join(c.access_keys)} plan={c.plan!r}",
        f"biotime    {sims.biotime.url}  username={b.username} password={b.password}",
        "",
        "# syncd configuration for these simulators (fake credentials):",
        config_toml(sims),
    ]
    return "\n".join(lines)


def knox_key_flow(sim: KnoxGuardSim, directory: Path) -> str:
    """Register a Knox client identifier, write its keys.json, and say how to use it instead."""
    keys = directory / "knoxguard_keys.json"
    keys.write_text(sim.auth.register("syncd-sim-client"), encoding="utf-8")
    keys.chmod(0o600)
    return (f"# Knox Guard signed-token flow instead of api_token (keys removed on exit):\n"
            f"# keys_file = {_toml(str(keys))}\n# client_identifier = \"syncd-sim-client\"\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `syncd simulate` options: fleet sizes, seed and listen host."""
    parser.add_argument("--devices", type=int, default=20, metavar="N",
                        help="phones in each of the NeoLock and Knox Guard fleets (default 20)")
    parser.add_argument("--locks", type=int, default=10, metavar="N",
                        help="Codelocks K3Connect locks (default 10)")
    parser.add_argument("--terminals", type=int, default=10, metavar="N",
                        help="BioTime terminals (default 10)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed of the simulated fleets (default 0)")
    parser.add_argument("--host", default="127.0.0.1", metavar="H",
                        help="address to listen on (default 127.0.0.1)")


async def simulate(args: argparse.Namespace) -> int:
    """Run all four simulators until SIGINT/SIGTERM, printing their URLs and a config snippet."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with run_all(seed=args.seed, devices=args.devices, locks=args.locks,
                           terminals=args.terminals, host=args.host) as sims:
            print(f"Vendor simulators running (seed {args.seed}); Ctrl+C stops them.")
            print(describe(sims), flush=True)
            with tempfile.TemporaryDirectory(prefix="syncd-sim-") as tmp:
                print(knox_key_flow(sims.knoxguard.sim, Path(tmp)), flush=True)
                await stop.wait()
    except OSError as err:
        print(f"syncd simulate: cannot listen on {args.host}: {err}", file=sys.stderr)
        return 1
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    print("Simulators stopped.", flush=True)
    return 0
