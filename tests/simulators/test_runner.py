"""The runner that starts all four vendor simulators together."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import tomllib
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from syncd.devtools.simulators.common import serve
from syncd.devtools.simulators.options import add_arguments
from syncd.devtools.simulators.runner import (
    Simulators,
    config_toml,
    control_app,
    push,
    run_all,
)
from syncd.jobs import catalog
from syncd.settings import core as config
from syncd.settings.checks import config_warnings


async def test_run_all_starts_four_reachable_servers() -> None:
    """run_all serves the four simulators on distinct ports, each answering its own credentials."""
    async with run_all(seed=1, devices=3, locks=2, terminals=2) as sims, \
            aiohttp.ClientSession() as http:
        urls = [sims.neolock.url, sims.knoxguard.url, sims.codelocks.url, sims.biotime.url]
        assert len({url.split("/")[2] for url in urls}) == 4
        auth = aiohttp.encode_basic_auth(sims.neolock.sim.login, sims.neolock.sim.password)
        async with http.get(sims.neolock.url + "/clients/token",
                            headers={"Authorization": auth}) as resp:
            assert resp.status == 200
        async with http.get(sims.knoxguard.url + "/authorization",
                            headers={"x-knox-apitoken": sims.knoxguard.sim.api_token}) as resp:
            assert resp.status == 200
        async with http.get(sims.codelocks.url + "/u/1/k3connect",
                            params={"accesskey": sims.codelocks.sim.access_keys[0]},
                            headers={"x-api-key": sims.codelocks.sim.api_key}) as resp:
            assert resp.status == 200
            assert len(await resp.json()) == 1
        async with http.post(sims.biotime.url + "/jwt-api-token-auth/",
                             json={"username": sims.biotime.sim.username,
                                   "password": sims.biotime.sim.password}) as resp:
            assert resp.status == 200
    assert len(sims.biotime.sim.terminals) == 2
    assert len(sims.neolock.sim.devices) == 3


async def test_config_snippet_is_valid_toml_for_every_vendor() -> None:
    """The printed config is TOML with every vendor's base_url and credentials."""
    async with run_all(seed=2) as sims:
        config = tomllib.loads(config_toml(sims))
        assert_config_matches(config, sims)


def assert_config_matches(config: dict[str, dict[str, object]], sims: Simulators) -> None:
    """Every section of `config` points at the running simulators with their credentials."""
    assert config["neolock"] == {"base_url": sims.neolock.url, "login": sims.neolock.sim.login,
                                 "password": sims.neolock.sim.password}
    assert config["knoxguard"] == {"base_url": sims.knoxguard.url,
                                   "api_token": sims.knoxguard.sim.api_token}
    assert config["codelocks"] == {"base_url": sims.codelocks.url,
                                   "api_key": sims.codelocks.sim.api_key,
                                   "access_keys": sims.codelocks.sim.access_keys,
                                   "plan": "Business 1"}
    assert config["biotime"] == {"base_url": sims.biotime.url,
                                 "username": sims.biotime.sim.username,
                                 "password": sims.biotime.sim.password,
                                 "timezone": "Asia/Tashkent"}


async def test_printed_config_loads_as_pasted(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The snippet is a whole config: data_dir, the public_url syncd will listen on, every vendor,
    BioTime's zone; syncd's loader accepts it as it is."""
    async with run_all(seed=3) as sims:
        path = tmp_path / "sim.toml"
        path.write_text(config_toml(sims, syncd_port=8099))
    monkeypatch.chdir(tmp_path)
    settings = config.load(path, known_jobs=[spec.name for spec in catalog.JOBS])
    assert settings.data_dir == tmp_path / ".syncd-sim"  # next to the file it is written in
    assert str(settings.server.public_url) == "http://127.0.0.1:8099/"
    assert settings.server.port == 8099
    assert settings.biotime is not None and settings.biotime.timezone == "Asia/Tashkent"
    assert config_warnings(settings) == []


def five_free_ports() -> int:
    """A port P such that P … P+4 could all be bound a moment ago (outside the ephemeral range)."""
    for base in range(21000, 30000, 50):
        with contextlib.ExitStack() as stack:
            try:
                for offset in range(5):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", base + offset))
            except OSError:
                continue
            return base
    raise AssertionError("no five consecutive free ports")


async def test_port_base_fixes_the_ports_and_push_reaches_the_subscriber() -> None:
    """--port-base gives fixed ports; `simulate push` through the control API makes NeoLock push."""
    received: list[dict[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"status": "stored"})

    subscriber = web.Application()
    subscriber.router.add_post("/hooks/neolock/s", hook)
    base = five_free_ports()
    async with serve(subscriber) as running, \
            run_all(seed=4, devices=2, port_base=base) as sims, \
            serve(control_app(sims), port=base + 4):
        assert [s.url.split(":")[2].split("/")[0] for s in
                (sims.neolock, sims.knoxguard, sims.codelocks, sims.biotime)] == \
            [str(base + i) for i in range(4)]
        args = argparse.Namespace(control=None, port_base=base, count=3)
        assert await push(args) == 1  # no subscription yet: refused, says why
        sims.neolock.sim.subscribe(running.url + "/hooks/neolock/s")
        assert await push(args) == 0
        await sims.neolock.sim.push.wait_idle()
    assert len(received) == 3


def test_add_arguments_defaults_and_overrides() -> None:
    """The simulate options default to 20 devices, 10 locks, 10 terminals, seed 0, loopback."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.devices, args.locks, args.terminals, args.seed, args.host) == (
        20, 10, 10, 0, "127.0.0.1")
    args = parser.parse_args(["--devices", "5", "--seed", "9", "--host", "::1"])
    assert (args.devices, args.seed, args.host) == (5, 9, "::1")


async def test_simulate_prints_config_and_stops_on_sigterm() -> None:
    """simulate prints the URLs and a TOML snippet, serves until SIGTERM, then exits 0."""
    code = ("import argparse, asyncio, sys\n"
            "from syncd.devtools.simulators.options import add_arguments\n"
            "from syncd.devtools.simulators.runner import simulate\n"
            "p = argparse.ArgumentParser(); add_arguments(p)\n"
            "sys.exit(asyncio.run(simulate(p.parse_args(['--devices', '2', '--locks', '2']))))\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code,
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    lines: list[str] = []
    in_last_section = False
    while not (in_last_section and lines[-1].startswith("password")):
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line, "simulate exited before printing its configuration"
        lines.append(line)
        in_last_section = in_last_section or line.startswith("[biotime]")
    snippet = "".join(lines[next(i for i, ln in enumerate(lines) if ln.startswith("[neolock]")):])
    config = tomllib.loads(snippet)
    assert set(config) == {"neolock", "knoxguard", "codelocks", "biotime"}
    async with aiohttp.ClientSession() as http, http.post(
            config["biotime"]["base_url"] + "/jwt-api-token-auth/",
            json={"username": config["biotime"]["username"],
                  "password": config["biotime"]["password"]}) as resp:
        assert resp.status == 200
    proc.send_signal(signal.SIGTERM)
    rest = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
    assert proc.returncode == 0
    assert "Simulators stopped." in rest
