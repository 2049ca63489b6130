"""Configuration: TOML + environment + secret files, and check-config's one line per problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from syncd import settings as config
from syncd.cli import main
from syncd.errors import ConfigError

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


def test_invalid_toml_is_one_clear_line(tmp_path: Path) -> None:
    """A syntax error in the file is reported with the file name."""
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, "[server\nport = 1"))
    assert len(info.value.problems) == 1
    assert "is not valid TOML" in info.value.problems[0]


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
    proc = subprocess.run([sys.executable, "-m", "syncd.cli", "--config", str(path), "run"],
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
                    "biotime", "alerts", "registry"):
        model = getattr(settings, section)
        assert model is not None, section
        for key in type(model).model_fields:
            assert f"{key} =" in text or f"{key}_file =" in text, f"{section}.{key} undocumented"
