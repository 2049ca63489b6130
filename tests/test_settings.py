"""Configuration: TOML + environment + secret files, and check-config's one line per problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.cli.main import main
from syncd.errors import ConfigError
from syncd.settings import core as config

GOOD = """
data_dir = "/tmp/syncd-test"
[server]
port = 8081
public_url = "https://syncd.example.com"
[neolock]
base_url = "https://api.neolock.uz/api"
login = "shop"
password = "hunter2-very-secret"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return path


def test_toml_values_load_and_absent_vendors_are_disabled(tmp_path: Path) -> None:
    """A valid file loads; vendor sections not present are None (disabled)."""
    settings = config.load(write(tmp_path, GOOD))
    assert settings.server.port == 8081
    assert settings.neolock is not None
    assert settings.neolock.password.get_secret_value() == "hunter2-very-secret"
    assert settings.knoxguard is None and settings.codelocks is None and settings.biotime is None


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SYNCD_<SECTION>__<KEY> wins over the TOML file."""
    monkeypatch.setenv("SYNCD_SERVER__PORT", "9999")
    monkeypatch.setenv("SYNCD_NEOLOCK__LOGIN", "from-env")
    settings = config.load(write(tmp_path, GOOD))
    assert settings.server.port == 9999
    assert settings.neolock is not None and settings.neolock.login == "from-env"


def test_config_path_comes_from_syncd_config_env(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --config, $SYNCD_CONFIG names the file."""
    monkeypatch.setenv("SYNCD_CONFIG", str(write(tmp_path, GOOD)))
    assert config.load().server.port == 8081


def test_secret_file_relative_to_credentials_directory(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`password_file` reads the secret; a relative path is taken from $CREDENTIALS_DIRECTORY."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "neolock_password").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    text = GOOD.replace('password = "hunter2-very-secret"', 'password_file = "neolock_password"')
    settings = config.load(write(tmp_path, text))
    assert settings.neolock is not None
    assert settings.neolock.password.get_secret_value() == "from-credential"


def test_every_problem_is_reported_on_its_own_line(tmp_path: Path) -> None:
    """Several mistakes give several lines, each naming the key and what is expected."""
    text = """
[server]
port = 70000
colour = "blue"
[database]
url = "mysql://nope"
[biotime]
base_url = "http://biotime.local:8081"
timezone = "Mars/Olympus"
[alerts]
hooks = [{url = "https://hooks.example.com/x", secret = "plain"}]
"""
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, text))
    problems = info.value.problems
    assert any(p.startswith("server.port:") and "65535" in p for p in problems)
    assert any(p.startswith("server.colour:") and "unknown key" in p for p in problems)
    assert any(p.startswith("database.url:") and "postgresql://" in p for p in problems)
    assert any(p.startswith("biotime.timezone:") and "IANA" in p for p in problems)
    assert any(p.startswith("alerts.hooks.0.secret:") and "whsec_" in p for p in problems)
    assert len(problems) == 5


def test_missing_required_key_names_the_key(tmp_path: Path) -> None:
    """A vendor section without its required keys says which key is missing."""
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, '[neolock]\nbase_url = "https://x/api"\n'))
    assert "neolock.login: missing: this key is required when its section is present" in \
        info.value.problems
    assert any(p.startswith("neolock.password: missing") for p in info.value.problems)


def test_invalid_toml_names_file_line_and_column(tmp_path: Path) -> None:
    """A syntax error is one line naming file, line and column (a table with no closing bracket)."""
    path = write(tmp_path, "[server\nport = 1")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.problems == [
        f"{path}:1:8: not valid TOML: Expected ']' at the end of a table declaration"]


def test_a_syntax_error_leaves_the_other_sections_checked(tmp_path: Path) -> None:
    """Past a TOML syntax error, the tables that parse on their own are still validated, so one run
    of check-config shows the syntax error, a later one, and the other sections' mistakes."""
    path = write(tmp_path, """\
[server]
port = 70000

[neolock]
base_url = "https://x/api"
login = "shop
password = "pw-long-enough"

[reconcile]
mode = "sometimes"

[registry]
rate_limit_burst = = 3
""")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.problems == [
        f"{path}:6:14: not valid TOML: Illegal character '\\n'",
        f"{path}:13:20: not valid TOML: Invalid value",
        "server.port: Input should be less than or equal to 65535 (got 70000)",
        "reconcile.mode: Input should be 'off', 'plan' or 'apply' (got 'sometimes')"]


def test_either_x_or_x_file_does_not_hide_the_sections_other_problems(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`password` and `password_file` together is one problem of that key; the section's other
    keys are still checked in the same pass."""
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = write(tmp_path, '[neolock]\nbase_url = "nope"\nlogin = "shop"\n'
                 'password = "pw-long-enough"\npassword_file = "pw"\nrate_limit = -1\n')
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert sorted(info.value.problems) == [
        "neolock.base_url: Input should be a valid URL, relative URL without a base; expected "
        "an http(s) URL such as https://host/path",
        "neolock.password: give either password or password_file, not both",
        "neolock.rate_limit: Input should be greater than 0 (got -1)"]


def test_unknown_sections_and_keys_suggest_the_nearest_name(tmp_path: Path) -> None:
    """`[neolok]`, `logn`, `passwrd_file`, a hook's `urll` and `[jobs.neolock-uplods]` each name
    the key they were probably meant to be, as SYNCD_NEOLOK__LOGIN does in the environment."""
    path = write(tmp_path, """\
[neolok]
login = "x"
[neolock]
base_url = "https://x/api"
logn = "shop"
password = "pw-long-enough"
passwrd_file = "pw"
[[alerts.hooks]]
urll = "https://hooks.example.com/x"
[jobs.neolock-uplods]
enabled = false
""")
    with pytest.raises(ConfigError) as info:
        config.load(path, known_jobs=["neolock-uploads", "housekeeping"])
    problems = info.value.problems
    hint = " (check the spelling against syncd.toml.example)"
    assert "neolok: unknown section (did you mean 'neolock'?)" + hint in problems
    assert "neolock.logn: unknown key (did you mean 'login'?)" + hint in problems
    assert "neolock.passwrd_file: unknown key (did you mean 'password_file'?)" + hint in problems
    assert "alerts.hooks.0.urll: unknown key (did you mean 'url'?)" + hint in problems
    assert "jobs.neolock-uplods: unknown job (did you mean 'neolock-uploads'?); known jobs: " \
        "neolock-uploads, housekeeping" in problems


def test_strict_booleans_in_the_file_and_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`enabled = "yes"` or `= 1` in the file is an error (pydantic alone would take both); the
    environment, where every value is text, may say true/false/1/0 and nothing else."""
    path = write(tmp_path, '[registry]\nenabled = "yes"\n[reconcile]\nallow_unlock = 1\n'
                 '[jobs.housekeeping]\nenabled = false\n')
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.problems == ["reconcile.allow_unlock: must be true or false (got 1)",
                                   "registry.enabled: must be true or false (got 'yes')"]
    good = write(tmp_path, "[jobs.housekeeping]\nenabled = false\n")
    monkeypatch.setenv("SYNCD_REGISTRY__ENABLED", "False")
    monkeypatch.setenv("SYNCD_RECONCILE__ALLOW_UNLOCK", "1")
    settings = config.load(good)
    assert settings.registry.enabled is False and settings.reconcile.allow_unlock is True
    monkeypatch.setenv("SYNCD_JOBS__HOUSEKEEPING__ENABLED", "on")
    with pytest.raises(ConfigError) as info:  # the file's own mistake is not the variable's
        config.load(write(tmp_path, '[jobs.neolock-uploads]\nenabled = "maybe"\n'))
    assert info.value.problems == [
        "jobs.neolock-uploads.enabled: must be true or false (got 'maybe')",
        "SYNCD_JOBS__HOUSEKEEPING__ENABLED: jobs.housekeeping.enabled: must be true or false "
        "(got 'on')"]


def test_a_bad_environment_value_names_its_variable(tmp_path: Path) -> None:
    """A value of the wrong type from the environment names the SYNCD_* variable it came from
    (check-config, exit 1), next to the file's own problems; a list that is not JSON too, without
    echoing its text (it may hold a hook's secret)."""
    path = write(tmp_path, "[server]\nhost = 3\n")
    proc = subprocess.run([sys.executable, "-m", "syncd", "check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "SYNCD_SERVER__PORT": "eighty",
                               "SYNCD_ALERTS__HOOKS": "[{secret: whsec_not-json}]"})
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "config error: server.host: Input should be a valid string (got 3)",
        "config error: SYNCD_SERVER__PORT: server.port: Input should be a valid integer, unable "
        "to parse string as an integer (got 'eighty')",
        "config error: SYNCD_ALERTS__HOOKS: alerts.hooks: Input should be a valid list; the "
        "environment gives lists and tables as JSON"]


def test_a_file_key_the_environment_overrides_is_named(tmp_path: Path) -> None:
    """A key set both in the file and by a SYNCD_* variable (as the Docker image's defaults are)
    is a warning naming the key, the file and the variable, never the values; the environment's
    value is the one used."""
    path = write(tmp_path, '[server]\nport = 9000\nhost = "127.0.0.1"\n[neolock]\n'
                           'base_url = "https://x/api"\nlogin = "shop"\n'
                           'password_file = "neolock_password"\n'
                           '[jobs.housekeeping]\nenabled = false\n')
    (tmp_path / "neolock_password").write_text("a-password-in-a-file\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env.update(SYNCD_SERVER__PORT="8080", SYNCD_NEOLOCK__LOGIN="other-shop",
               SYNCD_JOBS__HOUSEKEEPING__ENABLED="true", CREDENTIALS_DIRECTORY=str(tmp_path),
               SYNCD_SERVER__PUBLIC_URL="https://syncd.example.com")
    proc = subprocess.run([sys.executable, "-m", "syncd", "check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stderr.splitlines()) == [
        f"config warning: jobs.housekeeping.enabled: the value in {path} is overridden by "
        "SYNCD_JOBS__HOUSEKEEPING__ENABLED (the environment wins over the file)",
        f"config warning: neolock.login: the value in {path} is overridden by "
        "SYNCD_NEOLOCK__LOGIN (the environment wins over the file)",
        f"config warning: server.port: the value in {path} is overridden by "
        "SYNCD_SERVER__PORT (the environment wins over the file)"]
    shown = subprocess.run([sys.executable, "-m", "syncd", "config", "show", "--json",
                            "--config", str(path)], capture_output=True, text=True, timeout=60,
                           check=False, env=env)
    values = {row["key"]: row["value"] for row in json.loads(shown.stdout)}
    assert values["server.port"] == 8080 and values["neolock.login"] == "other-shop"
    assert "9000" not in proc.stderr and "shop" not in proc.stderr.replace("/", " ").split()


def test_an_empty_config_file_warns(tmp_path: Path) -> None:
    """check-config on an empty file (comments only) passes with a warning naming the file."""
    path = write(tmp_path, "# nothing here yet\n")
    proc = subprocess.run([sys.executable, "-m", "syncd", "check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")})
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == [
        f"config warning: the config file {path} is empty: every setting is at its default "
        "unless a SYNCD_* variable sets it"]
    assert config.load(write(tmp_path, "[server]\nport = 8089\n")).empty_file is None


def test_check_config_exits_1_with_lines_and_never_prints_secrets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check-config prints one `config error:` line per problem, exits 1, and hides secret values."""
    secret = "s3cr3t-password-value"
    text = f"""
[neolock]
base_url = "nope"
login = ""
password = "{secret}"
webhook_secret = "short"
"""
    code = main(["--config", str(write(tmp_path, text)), "check-config"])
    out = capsys.readouterr()
    assert code == 1
    lines = out.err.strip().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("config error: neolock.") for line in lines)
    assert secret not in out.err + out.out
    assert "short" not in out.err  # a rejected secret value is not echoed either


def test_check_config_accepts_a_good_file(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file passes with exit 0 and lists the enabled vendors."""
    assert main(["--config", str(write(tmp_path, GOOD)), "check-config"]) == 0
    assert "vendors enabled: neolock" in capsys.readouterr().out


def test_run_refuses_to_start_on_bad_config(tmp_path: Path) -> None:
    """`syncd run` with a bad config exits 1 with the same lines, before doing anything."""
    path = write(tmp_path, "[server]\nport = -1\n")
    proc = subprocess.run([sys.executable, "-m", "syncd", "--config", str(path), "run"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "config error: server.port: Input should be greater than or equal to 0 (got -1)"]


def test_the_example_config_documents_every_key_and_validates(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd/syncd.toml.example loads (secrets from credential files) and names every section key."""
    example = Path(__file__).parent.parent / "systemd" / "syncd.toml.example"
    for name in ("neolock_password", "neolock_webhook_secret", "knoxguard_api_token",
                 "codelocks_api_key", "biotime_password"):
        (tmp_path / name).write_text("credential-value-long-enough-1234\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = config.load(example)
    text = example.read_text()
    for section in ("database", "server", "admin", "logging", "neolock", "knoxguard", "codelocks",
                    "biotime", "alerts", "registry", "heartbeat", "status", "tasks"):
        model = getattr(settings, section)
        assert model is not None, section
        for key in type(model).model_fields:
            assert f"{key} =" in text or f"{key}_file =" in text, f"{section}.{key} undocumented"


def test_heartbeat_windows_that_would_misjudge_a_live_replica_are_refused(tmp_path: Path) -> None:
    """A replica must miss three beats before its runs are abandoned and two before status calls
    it not up: windows shorter than that are refused, one line each."""
    path = write(tmp_path, "[heartbeat]\ninterval_seconds = 10\nabandon_after_seconds = 20\n"
                           "[tasks]\nrestart_limit = 0\n")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.problems == [
        "heartbeat: abandon_after_seconds must be at least 3 × interval_seconds: a replica that "
        "missed one beat is not dead",
        "tasks.restart_limit: Input should be greater than or equal to 1 (got 0)"]
    path = write(tmp_path, "[heartbeat]\ninterval_seconds = 10\nabandon_after_seconds = 30\n"
                           "[status]\nstale_after_seconds = 15\n")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.problems == [
        "status: stale_after_seconds must be at least 2 × heartbeat.interval_seconds: a daemon "
        "between two beats is up"]


def test_check_config_refuses_whsec_secrets_that_cannot_sign(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`whsec_abc!def` (not base64), `whsec_` (no key) and `whsec_abc` (not base64 either), and a
    key shorter than the 24 bytes Standard Webhooks asks for, are each refused on a line of their
    own naming the hook; the good hook beside them passes, and no secret is echoed."""
    good = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    short = "whsec_" + "c2hvcnQta2V5"  # "short-key": 9 bytes
    text = f"""
[alerts]
hooks = [
  {{url = "https://a.example.com/", secret = "{good}"}},
  {{url = "https://b.example.com/", secret = "whsec_abc!def"}},
  {{url = "https://c.example.com/", secret = "whsec_"}},
  {{url = "https://d.example.com/", secret = "whsec_abc"}},
  {{url = "https://e.example.com/", secret = "{good}", secrets = ["{short}"]}},
]
"""
    code = main(["--config", str(write(tmp_path, text)), "check-config"])
    out = capsys.readouterr()
    assert code == 1
    lines = out.err.strip().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith("config error: alerts.hooks.1.secret: is not valid base64")
    assert lines[1].startswith("config error: alerts.hooks.2.secret: has no key after 'whsec_'")
    assert lines[2].startswith("config error: alerts.hooks.3.secret: is not valid base64")
    assert lines[3].startswith("config error: alerts.hooks.4.secrets.0: decodes to 9 bytes")
    assert "24 to 64 bytes" in lines[3]
    for secret in (good, "abc!def", short.removeprefix("whsec_")):
        assert secret not in out.err + out.out
