"""Deployment files: the systemd unit, the Dockerfile and its build context.

The unit is checked by systemd's own tools (skipped only where systemd-analyze is absent); the
Dockerfile cannot be built here (no Docker engine), so it is parsed and its structure asserted.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "syncd.service"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

INSTALLED_SYNCD = "/opt/syncd/bin/syncd"
MAX_EXPOSURE = 2.0
DRAIN_DEADLINE_S = 10
SECRETS = {
    "neolock_password",
    "neolock_webhook_secret",
    "knoxguard_api_token",
    "codelocks_api_key",
    "biotime_password",
}

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None,
    reason="systemd-analyze is not installed (Debian package systemd): cannot check the unit",
)


# ---- systemd unit ----------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Return {section: {key: [values in order]}}; systemd keys may repeat, so keep them all."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if not line or line.startswith(("#", ";")):
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"setting outside any section: {line!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(timespan: str) -> float:
    """Convert a simple systemd time span ("20s", "1min 30s", "90") to seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", timespan):
        total += float(number) * units[unit]
    return total


def run_systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    """Run systemd-analyze without pager or colours and capture its output."""
    assert SYSTEMD_ANALYZE is not None
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=60,
        check=False,
    )


def service() -> dict[str, list[str]]:
    """The [Service] section of the unit."""
    return parse_unit(UNIT.read_text(encoding="utf-8"))["Service"]


def one(settings: dict[str, list[str]], key: str) -> str:
    """The effective (last) value of a setting that must be present."""
    assert key in settings, f"{key}= is not set"
    return settings[key][-1]


@needs_systemd_analyze
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit and warns about none of its lines.

    verify fails any unit whose ExecStart binary is missing, and /opt/syncd/bin/syncd is only
    there on an installed host. So the unit is copied, under its own name, into a temporary
    directory with ExecStart's program (and nothing else) rewritten to this interpreter,
    sys.executable, an executable that exists; every other line is verified as written.
    verify exits 0 even for unknown keys or unparsable values, so its output is checked too.
    """
    text = UNIT.read_text(encoding="utf-8")
    original = f"ExecStart={INSTALLED_SYNCD} "
    assert text.count(original) == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(original, f"ExecStart={sys.executable} "), encoding="utf-8")

    result = run_systemd_analyze("verify", "--man=no", str(copy))

    output = result.stdout + result.stderr
    about_unit = [line for line in output.splitlines() if "syncd" in line]
    assert result.returncode == 0, output
    assert about_unit == [], output


@needs_systemd_analyze
def test_unit_security_exposure_is_at_most_two() -> None:
    """`systemd-analyze security --offline=yes` rates the unit's overall exposure at most 2.0."""
    result = run_systemd_analyze("security", "--offline=yes", "--no-pager", str(UNIT))

    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"Overall exposure level for syncd\.service: (\d+(?:\.\d+)?)", result.stdout)
    assert match is not None, result.stdout
    assert float(match.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_is_a_watchdogged_notify_service_that_restarts_on_failure() -> None:
    """The unit waits for READY=1 from syncd alone, has a 30 s watchdog and restarts on failure."""
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    svc = unit["Service"]

    assert one(svc, "Type") == "notify"
    assert one(svc, "NotifyAccess") == "main"
    assert seconds(one(svc, "WatchdogSec")) == 30
    assert one(svc, "Restart") == "on-failure"
    assert seconds(one(svc, "RestartSec")) > 0
    assert {"StartLimitIntervalSec", "StartLimitBurst"} <= unit["Unit"].keys()
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_unit_stops_after_the_drain_deadline_and_signals_syncd_first() -> None:
    """SIGTERM reaches syncd alone, and SIGKILL waits longer than syncd's 10 s drain."""
    svc = service()

    assert one(svc, "KillSignal") == "SIGTERM"
    assert one(svc, "KillMode") == "mixed"
    assert DRAIN_DEADLINE_S < seconds(one(svc, "TimeoutStopSec")) <= 3 * DRAIN_DEADLINE_S


def test_unit_runs_installed_syncd_with_state_in_var_lib() -> None:
    """syncd runs from its /opt venv with /etc config and its data_dir in /var/lib/syncd."""
    svc = service()

    assert one(svc, "ExecStart") == f"{INSTALLED_SYNCD} run --config /etc/syncd/syncd.toml"
    assert one(svc, "StateDirectory") == "syncd"
    assert one(svc, "ConfigurationDirectory") == "syncd"
    assert one(svc, "DynamicUser") == "yes"
    environment = dict(value.partition("=")[::2] for value in svc["Environment"])
    assert environment["PYTHONUNBUFFERED"] == "1"
    assert environment["SYNCD_DATA_DIR"] == "%S/syncd"


def test_unit_passes_every_vendor_secret_as_a_credential() -> None:
    """Each vendor secret is a LoadCredential= named after it, read from /etc/syncd/credentials."""
    credentials = dict(value.split(":", 1) for value in service()["LoadCredential"])

    assert credentials.keys() == SECRETS
    for name, path in credentials.items():
        assert path == f"/etc/syncd/credentials/{name}"


def test_unit_sandbox_leaves_embedded_postgres_working() -> None:
    """The sandbox keeps what the embedded postgres needs: unix sockets, /proc/stat, syscalls.

    pgserver's psutil reads /proc/stat (so no ProcSubset=pid), postgres talks over AF_UNIX, and
    it forks and uses SysV/POSIX shared memory, all within @system-service.
    """
    svc = service()

    assert svc.get("ProcSubset", ["all"])[-1] == "all"
    assert "AF_UNIX" in one(svc, "RestrictAddressFamilies").split()
    assert svc["SystemCallFilter"][0] == "@system-service"
    assert one(svc, "SystemCallErrorNumber") == "EPERM"
    assert "PrivateNetwork" not in svc


# ---- Dockerfile ------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    """A build stage: its FROM image, its name and its instructions after FROM."""

    image: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[str]:
        """The arguments of every instruction with this keyword, in order."""
        return [i.args for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> str:
        """The arguments of the effective (last) instruction with this keyword."""
        found = self.all(keyword)
        assert found, f"no {keyword} in stage FROM {self.image}"
        return found[-1]


def parse_dockerfile(text: str) -> list[Stage]:
    """Split a Dockerfile into stages, dropping comments and joining continuation lines."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = pending + stripped
        pending = ""
        if line:
            keyword, _, args = line.partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip()))

    stages: list[Stage] = []
    for index, instruction in enumerate(instructions):
        if instruction.keyword != "FROM":
            continue
        words = [w for w in instruction.args.split() if not w.startswith("--")]
        name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
        body = []
        for following in instructions[index + 1 :]:
            if following.keyword == "FROM":
                break
            body.append(following)
        stages.append(Stage(words[0], name, tuple(body)))
    return stages


def stages() -> list[Stage]:
    """The repository Dockerfile's stages."""
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def exec_form(args: str) -> list[str]:
    """Parse an exec-form (JSON array) ENTRYPOINT/CMD/HEALTHCHECK CMD argument list."""
    parsed = json.loads(args)
    assert isinstance(parsed, list), args
    return [str(word) for word in parsed]


def python_minor(image: str) -> str:
    """'3.11' for python:3.11-slim-bookworm; fails for anything but an official slim tag."""
    match = re.fullmatch(r"python:(3\.\d+)(?:\.\d+)?-slim(?:-[a-z]+)?(?:@sha256:[0-9a-f]{64})?",
                         image)
    assert match is not None, f"{image} is not a python:3.X-slim image"
    return match.group(1)


def test_dockerfile_is_multi_stage_on_one_slim_python() -> None:
    """The image is built in at least two stages, all on python:3.X-slim of one minor version."""
    all_stages = stages()

    assert len(all_stages) >= 2
    assert len({python_minor(stage.image) for stage in all_stages}) == 1


def test_every_stage_pins_one_base_image_by_digest_and_labels_it() -> None:
    """Each FROM names a sha256 digest (the same one); the final stage has OCI labels naming it."""
    images = {stage.image for stage in stages()}
    assert len(images) == 1
    image = images.pop()
    assert re.fullmatch(r"python:[^@]+@sha256:[0-9a-f]{64}", image), image
    labels = " ".join(stages()[-1].all("LABEL"))
    for key in ("title", "description", "version", "licenses", "base.name", "base.digest"):
        assert f"org.opencontainers.image.{key}=" in labels, key
    assert f'base.digest="{image.split("@")[1]}"' in labels


def test_config_is_mounted_as_on_systemd() -> None:
    """One config mount: /etc/syncd (syncd.toml, credentials/), like the systemd unit's paths."""
    final = stages()[-1]
    env = dict(word.partition("=")[::2] for args in final.all("ENV") for word in shlex.split(args))
    assert env["CREDENTIALS_DIRECTORY"] == "/etc/syncd/credentials"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "-v /etc/syncd:/etc/syncd:ro" in text
    readme = (DOCKERFILE.parent / "README.md").read_text(encoding="utf-8")
    assert "-v /etc/syncd:/etc/syncd:ro" in readme
    assert "/etc/syncd/syncd.toml:/etc/syncd/syncd.toml" not in readme


def test_final_stage_copies_only_the_builders_venv() -> None:
    """The final stage takes /opt/syncd from the builder, which installs the pinned project."""
    *builders, final = stages()
    copies = [args.split() for args in final.all("COPY") if args.startswith("--from=")]
    assert copies == [["--from=builder", "/opt/syncd", "/opt/syncd"]]
    builder = next(stage for stage in builders if stage.name == "builder")

    installs = " ".join(builder.all("RUN"))
    assert re.search(r"pip install [^&]*-c constraints\.txt \.", installs), installs


def test_builder_context_resolves_the_sql_symlink() -> None:
    """syncd/sql links to ../sql, and the builder copies both side by side so the wheel has SQL."""
    builder = next(stage for stage in stages() if stage.name == "builder")
    copied = {tuple(args.split()) for args in builder.all("COPY")}

    assert (REPO / "syncd" / "sql").is_symlink()
    assert (REPO / "syncd" / "sql").resolve() == (REPO / "sql").resolve()
    assert {("sql/", "sql/"), ("syncd/", "syncd/")} <= copied


def test_the_example_config_ships_in_the_wheel_and_the_image() -> None:
    """syncd/settings/syncd.toml.example links to systemd/syncd.toml.example; it is package
    data (so the wheel, and the image's venv, carry it), the builder copies its target beside
    the package and checks the installed package has it."""
    link = REPO / "syncd" / "settings" / "syncd.toml.example"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "systemd" / "syncd.toml.example").resolve()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "settings/syncd.toml.example" in \
        pyproject["tool"]["setuptools"]["package-data"]["syncd"]
    builder = next(stage for stage in stages() if stage.name == "builder")
    copied = {tuple(args.split()) for args in builder.all("COPY")}
    assert ("systemd/syncd.toml.example", "systemd/") in copied
    assert any("'settings', 'syncd.toml.example').is_file()" in run for run in builder.all("RUN"))


def test_the_images_syncd_variables_are_documented_as_beating_the_file() -> None:
    """Every SYNCD_* the image sets is named in the Dockerfile's and the README's Docker notes
    as beating the mounted syncd.toml."""
    final = stages()[-1]
    env = [word.partition("=")[0] for args in final.all("ENV") for word in shlex.split(args)]
    set_by_image = {name for name in env if name.startswith("SYNCD_")}
    assert set_by_image == {"SYNCD_DATA_DIR", "SYNCD_SERVER__HOST", "SYNCD_SERVER__PORT"}
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "they beat the mounted file" in text
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    docker = readme[readme.index("### Docker"):readme.index("### Backup and restore")]
    assert "beat the mounted" in docker
    for name in set_by_image:
        assert name in docker, name


def test_final_stage_runs_as_unprivileged_user() -> None:
    """The final stage switches to uid 10001, which it creates, and never back to root."""
    final = stages()[-1]
    user = final.last("USER").split(":")[0]

    assert user not in {"root", "0"}
    assert user == "10001"
    assert any("--uid 10001" in run for run in final.all("RUN"))


def test_final_stage_installs_no_compilers() -> None:
    """Nothing in the final stage installs a compiler, build tools or -dev headers."""
    runs = " ".join(stages()[-1].all("RUN"))

    assert not re.search(r"\b(gcc|g\+\+|clang|build-essential|make|\S+-dev)\b", runs), runs


def test_final_stage_reaps_children_with_tini_and_runs_syncd_run() -> None:
    """PID 1 is tini (it reaps the detached postmaster), which execs `syncd run` on SIGTERM."""
    final = stages()[-1]
    argv = exec_form(final.last("ENTRYPOINT")) + exec_form(final.last("CMD"))

    assert PurePosixPath(argv[0]).name == "tini"
    assert "-g" not in argv  # SIGTERM to syncd only, so it drains before stopping postgres
    syncd = next(i for i, word in enumerate(argv) if PurePosixPath(word).name == "syncd")
    assert argv[syncd] == INSTALLED_SYNCD
    assert argv[syncd + 1 :] == ["run"]
    assert final.last("STOPSIGNAL") == "SIGTERM"
    assert any(re.search(r"apt-get install [^&]*\btini\b", run) for run in final.all("RUN"))


def test_final_stage_healthcheck_probes_healthz_with_python() -> None:
    """HEALTHCHECK asks /healthz on loopback with Python's urllib: slim images have no curl."""
    healthcheck = stages()[-1].last("HEALTHCHECK")

    assert "/healthz" in healthcheck
    assert "http://127.0.0.1:" in healthcheck
    assert "urllib.request" in healthcheck
    assert not re.search(r"\b(curl|wget)\b", healthcheck)


def test_final_stage_listens_on_8080_and_keeps_state_on_a_volume() -> None:
    """The image exposes 8080, listens on all interfaces and keeps data_dir on a volume."""
    final = stages()[-1]
    env: dict[str, str] = {}
    for args in final.all("ENV"):
        for word in shlex.split(args):
            key, _, value = word.partition("=")
            env[key] = value

    assert "8080" in " ".join(final.all("EXPOSE")).split()
    assert ipaddress.ip_address(env["SYNCD_SERVER__HOST"]).is_unspecified
    assert env["SYNCD_DATA_DIR"] == "/var/lib/syncd"
    assert "/var/lib/syncd" in exec_form(final.last("VOLUME"))


# ---- .dockerignore -----------------------------------------------------------------------


def ignore_pattern(pattern: str) -> re.Pattern[str]:
    """Translate a .dockerignore glob into a regex over slash-separated context paths."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def excluded_from_context(path: str, rules: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for rule in rules:
        negated = rule.startswith("!")
        regex = ignore_pattern(rule.lstrip("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_sends_only_the_build_inputs() -> None:
    """The build context keeps the package, its SQL and pins, and drops venvs, VCS and caches."""
    rules = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    kept = [
        "pyproject.toml",
        "constraints.txt",
        "README.md",
        "sql/migrations/0001_baseline.sql",
        "syncd/__init__.py",
        "syncd/sql",
        "syncd/settings/syncd.toml.example",
        "systemd/syncd.toml.example",
    ]
    dropped = [
        ".venv/bin/python",
        ".git/HEAD",
        "syncd.egg-info/PKG-INFO",
        "syncd/__pycache__/errors.cpython-311.pyc",
        "tests/test_deploy_files.py",
        ".mypy_cache/3.11/x.json",
        "systemd/syncd.service",
    ]

    assert [p for p in kept if excluded_from_context(p, rules)] == []
    assert [p for p in dropped if not excluded_from_context(p, rules)] == []


# ---- the working tree ----------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(),
                    reason="not a git checkout")
def test_simulate_state_is_ignored_by_git() -> None:
    """The state `syncd simulate`'s printed config keeps (data_dir = ".syncd-sim") is never
    offered for a commit, nor is .syncd's; the sources are."""
    def ignored(path: str) -> bool:
        proc = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", path],
                              check=False)
        return proc.returncode == 0

    assert ignored(".syncd-sim/postgres/PG_VERSION") and ignored(".syncd/postgres/PG_VERSION")
    assert not ignored("syncd/cli/main.py")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_clean_removes_local_state_and_nothing_else(tmp_path: Path) -> None:
    """`make clean` removes the embedded databases of `make demo`/`syncd run` (.syncd) and of the
    simulate walk-through (.syncd-sim), and leaves the sources alone."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    for state in (".syncd-sim/postgres", ".syncd/postgres"):
        (tmp_path / state).mkdir(parents=True)
        (tmp_path / state / "PG_VERSION").write_text("16\n")
    (tmp_path / "sim.toml").write_text('data_dir = ".syncd-sim"\n')
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True, capture_output=True,
                   timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile", "sim.toml"]
