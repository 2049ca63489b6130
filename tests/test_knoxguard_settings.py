"""`[knoxguard]` settings: exactly one auth mode, keys.json from a secret file, derived URLs."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from syncd.devtools.simulators.common import serve
from syncd.devtools.simulators.knoxguard import BASE_PATH, KnoxGuardSim, create_app
from syncd.devtools.simulators.knoxguard_auth import generate_keys
from syncd.devtools.simulators.runner import knox_key_flow
from syncd.errors import ConfigError
from syncd.settings import core as config
from syncd.sync.knoxguard import knoxguard_client


def load(tmp_path: Path, section: str) -> config.Settings:
    path = tmp_path / "syncd.toml"
    path.write_text("[knoxguard]\n" + section)
    return config.load(path)


def test_region_and_environment_give_the_documented_urls(tmp_path: Path) -> None:
    """No base_url: the API base and the token exchange follow region and environment."""
    knox = load(tmp_path, 'region = "us"\napi_token = "static-token-123"\n').knoxguard
    assert knox is not None
    assert knox.api_url == "https://us-kcs-api.samsungknox.com/kcs/v1.1/kg"
    assert knox.token_url == "https://us-kcs-api.samsungknox.com/ams/v1/users/accesstoken"
    dev = load(tmp_path, 'environment = "development"\napi_token = "t-123"\n').knoxguard
    assert dev is not None and dev.api_url == "https://eu-kcs-api.samsungknox.com/integration"
    custom = load(tmp_path, 'base_url = "http://127.0.0.1:9/kcs/v1.1/kg"\napi_token = "t-1"\n')
    assert custom.knoxguard is not None
    assert custom.knoxguard.token_url == "http://127.0.0.1:9/ams/v1/users/accesstoken"


def test_keys_file_is_read_as_a_secret_and_never_printed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """keys_file (relative: from $CREDENTIALS_DIRECTORY) and client_identifier enable the flow."""
    keys = generate_keys(1024)
    (tmp_path / "knox_keys.json").write_text(keys)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = load(tmp_path, 'keys_file = "knox_keys.json"\nclient_identifier = "cid-1"\n')
    assert settings.knoxguard is not None and settings.knoxguard.keys is not None
    assert settings.knoxguard.keys.get_secret_value() == keys
    assert keys not in repr(settings) and keys in settings.secrets()


@pytest.mark.parametrize(("section", "problem"), [
    ("", "give exactly one of api_token"),
    ('api_token = "t-1"\nkeys_file = "k.json"\nclient_identifier = "c"\n',
     "give exactly one of api_token"),
    ('keys_file = "k.json"\n', "needs both keys_file and client_identifier"),
    ('client_identifier = "c"\n', "needs both keys_file and client_identifier"),
    ('keys_file = "bad.json"\nclient_identifier = "c"\n', "not a Knox keys.json"),
    ('api_token = "t-1"\ntoken_validity_minutes = 31\n', "less than or equal to 30"),
])
def test_invalid_auth_settings_give_one_clear_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section: str, problem: str) -> None:
    """Missing, doubled or malformed credentials are refused, naming the section, no secret."""
    (tmp_path / "k.json").write_text(generate_keys(1024))
    (tmp_path / "bad.json").write_text('{"Public": "only half"}')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load(tmp_path, section)
    [line] = err.value.problems
    assert line.startswith("knoxguard") and problem in line
    assert "only half" not in line


async def test_simulate_prints_a_working_key_flow_config(tmp_path: Path) -> None:
    """The keys_file/client_identifier lines `syncd simulate` prints authorize against the sim."""
    sim = KnoxGuardSim(api_token="")
    lines = knox_key_flow(sim, tmp_path)
    async with serve(create_app(sim), prefix=BASE_PATH) as running, \
            aiohttp.ClientSession() as http:
        section = f'base_url = "{running.url}"\n' + "".join(
            line.removeprefix("# ") + "\n" for line in lines.splitlines()[1:])
        settings = load(tmp_path, section)
        assert settings.knoxguard is not None
        client = knoxguard_client(settings.knoxguard, http)
        assert (await client.authorization()).result == "SUCCESS"
    assert sim.auth.exchanges == 1
