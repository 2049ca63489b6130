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

import aiohttp
from aiohttp import web

from . import biotime, codelocks, control, knoxguard, neolock
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
                  host: str = "127.0.0.1", port_base: int = 0) -> AsyncIterator[Simulators]:
    """Serve NeoLock, Knox Guard, Codelocks and BioTime simulators on `host`.

    Ports: free ones, or port_base, +1, +2, +3 in that order when port_base is given.
    """
    neo = NeoLockSim(seed=seed, devices=devices)
    knox = KnoxGuardSim(seed=seed, devices=devices)
    locks_sim = CodelocksSim(seed=seed, locks=locks)
    bio = BioTimeSim(seed=seed, terminals=terminals)

    def port(offset: int) -> int:
        return port_base + offset if port_base else 0

    async with contextlib.AsyncExitStack() as stack:
        neo_run = await stack.enter_async_context(
            serve(neolock.create_app(neo), host=host, port=port(0), prefix=neolock.BASE_PATH))
        knox_run = await stack.enter_async_context(
            serve(knoxguard.create_app(knox), host=host, port=port(1), prefix=knoxguard.BASE_PATH))
        locks_run = await stack.enter_async_context(
            serve(codelocks.create_app(locks_sim), host=host, port=port(2),
                  prefix=codelocks.BASE_PATH))
        bio_run = await stack.enter_async_context(
            serve(biotime.create_app(bio), host=host, port=port(3), prefix=biotime.BASE_PATH))
        yield Simulators(neolock=Served(neo_run, neo), knoxguard=Served(knox_run, knox),
                         codelocks=Served(locks_run, locks_sim), biotime=Served(bio_run, bio))


def _toml(value: str | list[str]) -> str:
    # JSON strings and arrays of strings are valid TOML.
    return json.dumps(value, ensure_ascii=False)


def config_toml(sims: Simulators, *, syncd_port: int = 8080, data_dir: str = ".syncd-sim") -> str:
    """A syncd configuration that works as pasted: every vendor section at the simulators, a
    data_dir, the public URL the NeoLock simulator pushes to, BioTime's zone (Asia/Tashkent)."""
    head = (f"data_dir = {_toml(data_dir)}\n\n[server]\nport = {syncd_port}\n"
            f"public_url = {_toml(f'http://127.0.0.1:{syncd_port}')}\n\n")
    return head + "\n".join(
        f"[{name}]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in keys.items())
        for name, keys in vendor_sections(sims).items())


def vendor_sections(sims: Simulators) -> dict[str, dict[str, str | list[str]]]:
    """syncd's four vendor config sections (base URL and fake credentials) for these simulators."""
    return {
        "neolock": {"base_url": sims.neolock.url, "login": sims.neolock.sim.login,
                    "password": sims.neolock.sim.password},
        "knoxguard": {"base_url": sims.knoxguard.url, "api_token": sims.knoxguard.sim.api_token},
        "codelocks": {"base_url": sims.codelocks.url, "api_key": sims.codelocks.sim.api_key,
                      "access_keys": list(sims.codelocks.sim.access_keys),
                      "plan": sims.codelocks.sim.plan},
        "biotime": {"base_url": sims.biotime.url, "username": sims.biotime.sim.username,
                    "password": sims.biotime.sim.password, "timezone": sims.biotime.sim.timezone},
    }


def describe(sims: Simulators, *, syncd_port: int = 8080, control: str | None = None) -> str:
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
        *([f"control    {control}  (make NeoLock push: syncd simulate push --control {control})"]
          if control else []),
        "",
        "# syncd configuration for these simulators (fake credentials); save it as sim.toml and",
        "# run `syncd run --config sim.toml`: it subscribes, so NeoLock pushes reach it.",
        config_toml(sims, syncd_port=syncd_port),
    ]
    return "\n".join(lines)


def knox_key_flow(sim: KnoxGuardSim, directory: Path) -> str:
    """Register a Knox client identifier, write its keys.json, and say how to use it instead."""
    keys = directory / "knoxguard_keys.json"
    keys.write_text(sim.auth.register("syncd-sim-client"), encoding="utf-8")
    keys.chmod(0o600)
    return (f"# Knox Guard signed-token flow instead of api_token (keys removed on exit):\n"
            f"# keys_file = {_toml(str(keys))}\n# client_identifier = \"syncd-sim-client\"\n")


SIMS = web.AppKey("simulators", Simulators)


async def _push(request: web.Request) -> web.Response:
    """`POST /neolock/push?count=N`: the NeoLock simulator pushes N events to its subscriber."""
    sim = request.app[SIMS].neolock.sim
    try:
        count = int(request.query.get("count", "1"))
    except ValueError:
        raise web.HTTPBadRequest(text="count must be an integer") from None
    if sim.subscription is None:
        return web.json_response({"error": "no subscription yet: run syncd with the printed "
                                  "config (it subscribes at start), then push"}, status=409)
    deliveries = sim.push_many(max(1, min(count, 10_000)))
    return web.json_response({"queued": len(deliveries), "url": "<subscription>"})


def control_app(sims: Simulators) -> web.Application:
    """The playground's control API (loopback): make the NeoLock simulator push; faults, quota
    and counters for drills (syncd/devtools/simulators/control.py)."""
    app = web.Application()
    app[SIMS] = sims
    app.router.add_post("/neolock/push", _push)
    control.add_routes(app, vendor_sections(sims))
    return app


async def push(args: argparse.Namespace) -> int:
    """`syncd simulate push`: ask running simulators (their control URL) to push events."""
    control = args.control or (f"http://127.0.0.1:{args.port_base + 4}" if args.port_base else None)
    if control is None:
        print("syncd simulate push: give --control URL (printed by `syncd simulate`) or "
              "--port-base", file=sys.stderr)
        return 2
    try:
        async with aiohttp.ClientSession() as http, http.post(
                f"{control.rstrip('/')}/neolock/push", params={"count": str(args.count)}) as resp:
            body = await resp.json()
    except aiohttp.ClientError as err:
        print(f"syncd simulate push: cannot reach {control}: {err}", file=sys.stderr)
        return 1
    if resp.status != 200:
        print(f"syncd simulate push: {body.get('error', resp.status)}", file=sys.stderr)
        return 1
    print(f"queued {body['queued']} NeoLock push(es)")
    return 0


async def simulate(args: argparse.Namespace) -> int:
    """Run all four simulators until SIGINT/SIGTERM, printing their URLs and a config snippet."""
    if args.action == "push":
        return await push(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with run_all(seed=args.seed, devices=args.devices, locks=args.locks,
                           terminals=args.terminals, host=args.host,
                           port_base=args.port_base) as sims, \
                serve(control_app(sims), host="127.0.0.1",
                      port=args.port_base + 4 if args.port_base else 0) as control:
            print(f"Vendor simulators running (seed {args.seed}); Ctrl+C stops them.")
            print(describe(sims, syncd_port=args.syncd_port, control=control.url), flush=True)
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
