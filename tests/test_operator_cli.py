"""The CLI as an operator meets it: streams, exit codes, job selection, config that tells the truth."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from syncd.cli.config import notices
from syncd.cli.jobs import select_jobs
from syncd.cli.main import main
from syncd.errors import ConfigError
from syncd.jobs import catalog
from syncd.settings import core as config
from syncd.settings.core import Settings
from tests.conftest import pg_ctl

# The registry as it was before Codelocks landed: the K3 jobs named, not built.
PLANNED_K3 = tuple(dataclasses.replace(spec, factory=None) if spec.section == "codelocks" else spec
                   for spec in catalog.JOBS)


def cli(*argv: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m syncd …` in a subprocess, with no SYNCD_* variable but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    clean.update(env or {})
    return subprocess.run([sys.executable, "-m", "syncd", *argv], capture_output=True, text=True,
                          env=clean, cwd=cwd, timeout=timeout, check=False)


def db_config(tmp_path: Path, dsn: str, extra: str = "") -> Path:
    """A config file for the test database."""
    path = tmp_path / "syncd.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{dsn}"\n{extra}')
    return path


def test_status_json_is_alone_on_stdout_and_logs_go_to_stderr(db_dsn: str, tmp_path: Path) -> None:
    """Data on stdout, logs on stderr: `sync` at info level and `status --json` stay parseable."""
    cfg = db_config(tmp_path, db_dsn, "[status]\nexpect_daemon = false\n")
    synced = cli("sync", "housekeeping", "--once", "--config", str(cfg), "--log-level", "info")
    assert synced.returncode == 0
    assert synced.stdout.startswith("housekeeping: ok items=0") and synced.stdout.count("\n") == 1
    assert '"event": "job.run"' in synced.stderr and '"status": "ok"' in synced.stderr
    proc = cli("status", "--json", "--config", str(cfg), "--log-level", "debug")
    body = json.loads(proc.stdout)  # nothing but the JSON document on stdout
    assert body["version"] and body["health"] == "ok" and proc.returncode == 0
    assert body["checked_at"].endswith("+00:00")  # ISO 8601 with its zone
    assert body["jobs"][0]["last_success_at"].endswith("+00:00")


def test_quiet_leaves_only_errors_on_stderr(db_dsn: str, tmp_path: Path) -> None:
    """--quiet (after the subcommand) drops the info lines --log-level info would print."""
    cfg = db_config(tmp_path, db_dsn)
    proc = cli("sync", "housekeeping", "--once", "--log-level", "info", "--quiet",
               "--config", str(cfg))
    assert proc.returncode == 0 and proc.stdout.startswith("housekeeping: ok")
    assert proc.stderr == ""


def test_status_exit_codes_ok_degraded_down(db_dsn: str, tmp_path: Path) -> None:
    """status exits 0 when healthy, 1 when an enabled job's last run failed, 2 when no database
    (here with no daemon expected: tests/test_replicas_live.py covers the daemons)."""
    cfg = db_config(tmp_path, db_dsn, "[status]\nexpect_daemon = false\n")
    assert cli("status", "--config", str(cfg)).returncode == 0
    import asyncio

    import asyncpg

    async def fail_a_run() -> None:
        conn = await asyncpg.connect(db_dsn)
        await conn.execute("INSERT INTO ops.sync_runs (job, status, runner, finished_at, error) "
                           "VALUES ('housekeeping', 'failed', 't', now(), 'boom')")
        await conn.close()

    asyncio.run(fail_a_run())
    degraded = cli("status", "--json", "--config", str(cfg))
    assert degraded.returncode == 1
    assert json.loads(degraded.stdout)["problems"] == ["job housekeeping failing"]
    down_cfg = db_config(tmp_path, "postgresql://nobody@127.0.0.1:9/none")
    down = cli("status", "--json", "--timeout", "1", "--config", str(down_cfg))
    assert down.returncode == 2
    assert json.loads(down.stdout)["health"] == "down"


def test_sync_all_skips_disabled_jobs_and_names_them_apart(make_settings: Callable[..., Settings]
                                                           ) -> None:
    """`sync all` selects enabled jobs only; an unknown name lists enabled and disabled jobs apart."""
    settings = make_settings(
        neolock={"base_url": "https://x/api", "login": "l", "password": "pw-long-enough"},
        jobs={"housekeeping": {"enabled": False}, "neolock-devices": {"enabled": False}},
        reconcile={"mode": "off"})
    names, problems = select_jobs(["all"], settings)
    assert names == ["neolock-subscription", "neolock-uploads"] and problems == []
    _, problems = select_jobs(["nope"], settings)
    assert problems == ["nope: unknown job; enabled: neolock-subscription, neolock-uploads; "
                        "disabled: housekeeping, neolock-devices"]
    _, problems = select_jobs(["k3-locks", "biotime-terminals"], settings, PLANNED_K3)
    assert problems == ["k3-locks: not built in syncd 0.1.0 yet",
                        "biotime-terminals: needs a [biotime] section, which is not configured"]
    assert select_jobs(["neolock-devices"], settings) == (["neolock-devices"], [])


def test_every_problem_is_reported_in_one_pass(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An env typo, an unknown job, an unreadable secret file and a bad value come out together."""
    monkeypatch.setenv("SYNCD_SERVR__PORT", "9000")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = tmp_path / "c.toml"
    path.write_text('[server]\nport = -1\n[jobs.neolock-uplods]\nenabled = false\n'
                    '[neolock]\nbase_url = "nope"\nlogin = "l"\npassword_file = "neolock_password"\n')
    with pytest.raises(ConfigError) as info:
        config.load(path, known_jobs=[spec.name for spec in catalog.JOBS])
    problems = info.value.problems
    assert any(p.startswith("SYNCD_SERVR__PORT: unknown setting") and "'server'" in p
               for p in problems)
    assert any(p.startswith("jobs.neolock-uplods: unknown job") for p in problems)
    assert any(p.startswith("neolock.password: password_file: cannot read")
               and "$CREDENTIALS_DIRECTORY is unset" in p for p in problems)
    assert any(p.startswith("neolock.base_url:") for p in problems)
    assert any(p.startswith("server.port:") for p in problems)
    assert len(problems) == 5


def test_a_planned_job_section_is_a_warning_and_unused_vendors_are_not_enabled(
        tmp_path: Path) -> None:
    """With K3 jobs only planned (a registry entry without factory), [jobs.k3-locks] loads with a
    warning and [codelocks] counts as configured, not enabled; built, check-config says enabled."""
    path = tmp_path / "c.toml"
    path.write_text('[jobs.k3-locks]\ninterval_seconds = 600\n[codelocks]\n'
                    'base_url = "https://api-connect.codelocks.io"\napi_key = "key-1234"\n'
                    'access_keys = ["ak-1234"]\n')
    settings = config.load(path, known_jobs=[spec.name for spec in PLANNED_K3])
    assert catalog.used_vendors(settings, PLANNED_K3) == []
    assert notices(settings, PLANNED_K3) == [
        "[codelocks] is configured, but nothing in this version uses it yet",
        "[jobs.k3-locks]: this job is not built in this version yet; the section is ignored"]
    assert "k3-locks" not in catalog.schedule(settings, PLANNED_K3)
    proc = cli("check-config", "--config", str(path))  # the real table: K3 jobs are built
    assert proc.returncode == 0, proc.stderr
    assert "vendors enabled: codelocks" in proc.stdout and "warning" not in proc.stderr


def test_no_configuration_at_all_creates_nothing(tmp_path: Path) -> None:
    """Without any config, a command refuses (exit 1, one line; `status` 3, "could not tell") and
    creates no ./.syncd."""
    for command, code in (("migrate", 1), ("status", 3)):
        proc = cli(command, cwd=tmp_path)
        assert proc.returncode == code
        assert "no configuration" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
        assert not (tmp_path / ".syncd").exists()


def test_relative_data_dir_is_relative_to_the_config_file(tmp_path: Path) -> None:
    """data_dir = "state" in DIR/syncd.toml is DIR/state from any working directory, and so is the
    default .syncd; SYNCD_DATA_DIR, typed in a shell, stays relative to the working directory."""
    conf, elsewhere = tmp_path / "conf", tmp_path / "elsewhere"
    conf.mkdir()
    elsewhere.mkdir()
    given, default = conf / "given.toml", conf / "default.toml"
    given.write_text('data_dir = "state"\n')
    default.write_text("[server]\nport = 8089\n")

    def data_dir(cfg: Path, env: dict[str, str] | None = None) -> str:
        proc = cli("config", "show", "--json", "--config", str(cfg), cwd=elsewhere, env=env)
        assert proc.returncode == 0, proc.stderr
        return str(next(r["value"] for r in json.loads(proc.stdout) if r["key"] == "data_dir"))

    assert data_dir(given) == str(conf / "state")
    assert data_dir(default) == str(conf / ".syncd")
    assert data_dir(given, {"SYNCD_DATA_DIR": "mine"}) == "mine"


def test_a_command_that_would_create_a_second_database_stops(tmp_path: Path) -> None:
    """On an embedded data_dir holding no database, status, db psql, db reader and sync say so in
    one line (naming the directory) and create nothing; check-config --connect reports it as not
    created yet, not as a failure."""
    cfg = tmp_path / "syncd.toml"
    cfg.write_text('data_dir = "state"\n')
    pgdata = tmp_path / "state" / "postgres"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    status = cli("status", "--config", str(cfg), cwd=elsewhere)
    assert status.returncode == 2
    assert status.stdout.startswith(f"health: down (database unavailable: no database under "
                                    f"{pgdata}, and this command creates none")
    secret = tmp_path / "pw"
    secret.write_text("reader-password-0123\n")
    for argv in (["db", "psql", "-c", "SELECT 1"], ["db", "reader", "grafana", "--password-file",
                                                    str(secret)],
                 ["db", "dump", "-o", str(tmp_path / "x.dump")], ["sync", "housekeeping", "--once"]):
        proc = cli(*argv, "--config", str(cfg), cwd=elsewhere)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, (argv, proc.stderr)
        assert lines[0].startswith(f"syncd {argv[0]}: no database under {pgdata}, "), lines
    checked = cli("check-config", "--connect", "--config", str(cfg), cwd=elsewhere)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "database: embedded, not created yet" in checked.stdout
    assert not (tmp_path / "state").exists() and list(elsewhere.iterdir()) == []
    assert list(tmp_path.glob("*.partial")) == [] and not (tmp_path / "x.dump").exists()


def test_status_from_any_directory_reads_the_database_next_to_the_config(
        short_dir: Path) -> None:
    """`migrate` run from one directory creates the embedded database under the config file's
    relative data_dir; commands run from other directories read that same database (no daemon
    runs here on purpose, so status is not down for the lack of one)."""
    cfg = short_dir / "syncd.toml"
    cfg.write_text('data_dir = "state"\n[jobs.housekeeping]\nenabled = false\n'
                   '[status]\nexpect_daemon = false\n')
    first, second = short_dir / "a", short_dir / "b"
    first.mkdir()
    second.mkdir()
    try:
        made = cli("migrate", "--config", str(cfg), cwd=first, timeout=180)
        assert made.returncode == 0 and made.stdout.startswith("applied "), made.stderr
        marked = cli("db", "psql", "-c", "CREATE TABLE local.marker (x int)", "--config",
                     str(cfg), cwd=first)
        assert marked.returncode == 0, marked.stderr
        seen = cli("db", "psql", "-tA", "-c", "SELECT to_regclass('local.marker') IS NOT NULL",
                   "--config", str(cfg), cwd=second)
        assert (seen.returncode, seen.stdout.strip()) == (0, "t"), seen.stderr
        status = cli("status", "--json", "--config", str(cfg), cwd=second)
        assert json.loads(status.stdout)["health"] == "ok", status.stdout
        assert (short_dir / "state" / "postgres" / "PG_VERSION").exists()
        assert list(first.iterdir()) == [] and list(second.iterdir()) == []
    finally:
        pgdata = short_dir / "state" / "postgres"
        if (pgdata / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                pg_ctl(pgdata, "-w", "-m", "immediate", "stop")


def test_config_show_masks_secrets_and_names_origins(tmp_path: Path) -> None:
    """config show prints each key with where it came from; secret values never appear."""
    path = tmp_path / "c.toml"
    path.write_text('[neolock]\nbase_url = "https://x/api"\nlogin = "shop"\n'
                    'password = "very-secret-password"\n')
    proc = cli("config", "show", "--config", str(path),
               env={"SYNCD_SERVER__PORT": "9001", "SYNCD_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("server.port = 9001") and "# env SYNCD_SERVER__PORT" in line
               for line in lines)
    assert any(line.startswith('neolock.login = "shop"') and f"# file {path}" in line
               for line in lines)
    assert any(line.startswith("server.host =") and "# default" in line for line in lines)
    assert "very-secret-password" not in proc.stdout + proc.stderr
    assert any(line.startswith('neolock.password = "**********"') for line in lines)


def test_config_example_prints_the_shipped_example_without_any_configuration(
        tmp_path: Path) -> None:
    """`syncd config example` needs no configuration and prints syncd.toml.example, the package's
    copy of systemd/syncd.toml.example, which passes check-config once the credential files it
    names exist."""
    proc = cli("config", "example", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shipped = Path(__file__).resolve().parent.parent / "systemd" / "syncd.toml.example"
    assert proc.stdout == shipped.read_text(encoding="utf-8")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "syncd.toml").write_text(proc.stdout)
    for name in ("neolock_password", "neolock_webhook_secret", "knoxguard_api_token",
                 "codelocks_api_key", "biotime_password"):
        (tmp_path / name).write_text(f"{name}-value-0123456789")
    checked = cli("check-config", "--config", str(tmp_path / "syncd.toml"),
                  env={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("configuration OK")
    # Mounted into the Docker image as is, nothing in it is overridden by the image's variables.
    image = {"CREDENTIALS_DIRECTORY": str(tmp_path), "SYNCD_DATA_DIR": str(tmp_path / "state"),
             "SYNCD_SERVER__HOST": "0.0.0.0", "SYNCD_SERVER__PORT": "8080"}  # noqa: S104
    in_image = cli("check-config", "--config", str(tmp_path / "syncd.toml"), env=image)
    assert in_image.returncode == 0 and "overridden" not in in_image.stderr, in_image.stderr


def test_config_after_the_subcommand_and_python_dash_m(tmp_path: Path) -> None:
    """`python -m syncd check-config --config FILE` works (option after the subcommand)."""
    path = tmp_path / "c.toml"
    path.write_text("[server]\nport = 8089\n")
    proc = cli("check-config", "--config", str(path))
    assert proc.returncode == 0 and "configuration OK" in proc.stdout


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                 ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every subcommand parser, at any depth, with its command line (`db reader`)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield " ".join((*path, name)), child
                yield from _subcommands(child, (*path, name))


def test_every_subcommand_help_ends_with_an_example() -> None:
    """Each subcommand's --help, second-level ones included (`syncd db dump --help`), ends with
    example command lines of that very command."""
    from syncd.cli.main import build_parser

    found = dict(_subcommands(build_parser()))
    assert {"db", "db dump", "phones lock", "drift suppress", "config show"} <= found.keys()
    missing = []
    for command, child in found.items():
        text = child.format_help().rstrip()
        examples = text.rpartition("\nexamples:\n")[2].splitlines()
        line = re.compile(rf"  ([A-Z_]+=\S+ )*syncd {command}( |$)")  # env assignments first
        if "\nexamples:\n" not in text or not examples or not all(
                line.match(example) for example in examples):
            missing.append(command)
    assert missing == []


def test_sync_runs_once_without_the_flag_and_still_accepts_it(db_dsn: str, tmp_path: Path) -> None:
    """`syncd sync JOB` runs the job once and exits; `--once`, which it used to require, is
    still accepted (cron lines written for it keep working)."""
    cfg = db_config(tmp_path, db_dsn)
    for argv in (["sync", "housekeeping"], ["sync", "housekeeping", "--once"]):
        proc = cli(*argv, "--config", str(cfg))
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("housekeeping: ok items=0") and proc.stdout.count("\n") == 1


def test_bash_completion_knows_subcommands_options_and_jobs(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd completion bash` prints a script (generated by shtab from the parser) that real bash
    runs to complete commands, actions, options and job names."""
    assert main(["completion", "bash"]) == 0
    text = capsys.readouterr().out
    assert "complete -o bashdefault -F _shtab_syncd syncd" in text

    def complete(*words: str) -> list[str]:
        """What bash offers after `syncd WORDS…` (the last word is the one being completed)."""
        script = (text + f"COMP_WORDS=(syncd {' '.join(repr(w) for w in words)}); "
                  f"COMP_CWORD={len(words)}; _shtab_syncd; printf '%s\\n' \"${{COMPREPLY[@]}}\"\n")
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.split()

    assert {"status", "sync", "db", "config"} <= set(complete(""))
    assert complete("st") == ["status"]
    assert {"url", "psql", "dump", "restore", "reader"} <= set(complete("db", ""))
    assert complete("db", "re") == ["restore", "reader"]
    assert "neolock-uploads" in complete("sync", "")
    assert complete("sync", "k3-a") == ["k3-audit"]
    assert complete("status", "--ti") == ["--timeout"]


def test_zsh_completion_is_generated_from_the_same_parser(
        capsys: pytest.CaptureFixture[str]) -> None:
    """`syncd completion zsh` prints a #compdef script naming the commands and the job names."""
    assert main(["completion", "zsh"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("#compdef syncd")
    assert "neolock-uploads" in text and "check-config" in text
    zsh = shutil.which("zsh")
    if zsh is not None:  # where zsh is installed, the script must at least parse
        proc = subprocess.run([zsh, "-n", "-c", text], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr


def test_destructive_subscription_delete_needs_confirmation(tmp_path: Path, db_dsn: str) -> None:
    """`subscriptions delete` without --yes on a non-terminal refuses; --dry-run says what it would do."""
    cfg = db_config(tmp_path, db_dsn, '[neolock]\nbase_url = "http://127.0.0.1:9/api"\n'
                    'login = "l"\npassword = "pw-long-enough"\n')
    refused = cli("subscriptions", "delete", "--config", str(cfg))
    assert refused.returncode == 1 and "pass --yes" in refused.stderr
    dry = cli("subscriptions", "delete", "--dry-run", "--config", str(cfg))
    assert dry.returncode == 0 and dry.stdout.startswith("dry run: would delete")


async def test_check_config_spends_one_codelocks_call_only_when_asked(
        db_dsn: str, tmp_path: Path) -> None:
    """`check-config --connect` names Codelocks as not called and bills nothing; with
    --spend-codelocks-call it makes exactly one call (no retry), which the vendor counts and the
    quota ledger counts as an operator's (taken from the reserve, not the jobs' budget); without
    --connect the flag is refused."""
    import asyncio

    import asyncpg

    from syncd.devtools.simulators.codelocks import CodelocksSim, create_app
    from syncd.devtools.simulators.common import serve

    sim = CodelocksSim(seed=3, locks=2)
    async with serve(create_app(sim)) as running:
        cfg = db_config(tmp_path, db_dsn, f'[codelocks]\nbase_url = "{running.url}"\n'
                        f'api_key = "{sim.api_key}"\naccess_keys = ["{sim.access_keys[0]}"]\n')
        plain = await asyncio.to_thread(cli, "check-config", "--connect", "--config", str(cfg))
        assert plain.returncode == 0, plain.stdout + plain.stderr
        assert "codelocks: not called: its calls are billed" in plain.stdout
        assert sim.quota.used == {}
        spent = await asyncio.to_thread(cli, "check-config", "--connect",
                                        "--spend-codelocks-call", "--config", str(cfg))
        assert spent.returncode == 0, spent.stdout + spent.stderr
        assert "codelocks: ok (1 billed call, counted from the operators' reserve: 1 of 1000 " \
               "utility calls used this period, 1 by operators)" in spent.stdout
        assert sim.quota_used("utility") == 1 and sim.quota_used("netcode") == 0
        refused = await asyncio.to_thread(cli, "check-config", "--spend-codelocks-call",
                                          "--config", str(cfg))
        assert refused.returncode == 2 and "needs --connect" in refused.stderr
    conn = await asyncpg.connect(db_dsn)
    try:
        rows = await conn.fetch("SELECT job, calls FROM ops.api_usage_jobs")
    finally:
        await conn.close()
    assert [(r["job"], r["calls"]) for r in rows] == [("operator", 1)]
