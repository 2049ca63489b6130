# syntax=docker/dockerfile:1
#
# syncd container image.
#
#   docker build -t syncd .
#   docker run -d --name syncd -p 8080:8080 -v syncd-data:/var/lib/syncd \
#       --stop-timeout 20 -v /etc/syncd:/etc/syncd:ro syncd
#
# Configuration is mounted one way, as on a systemd host: the directory /etc/syncd, read-only,
# holding syncd.toml (read from there by default) and credentials/ (secret files, named
# relatively in syncd.toml: `password_file = "neolock_password"`; CREDENTIALS_DIRECTORY
# points there). Start it from the example this version ships:
#
#   docker run --rm syncd config example > /etc/syncd/syncd.toml
#
# SYNCD_* variables override single keys, and they beat the mounted file. The image sets three
# of them (ENV below): data_dir (the volume), server.host (0.0.0.0, reachable from outside the
# container) and server.port (8080, what EXPOSE and HEALTHCHECK use). A data_dir, [server] host
# or port in syncd.toml is therefore ignored (`syncd check-config` warns about each); change
# them with `-e SYNCD_SERVER__PORT=9000 -p 9000:9000`, not in the file.
#
# linux/amd64 only: pgserver (the embedded PostgreSQL) publishes x86_64 wheels only, so on
# an arm64 host build with `--platform linux/amd64`. Give `docker stop` / compose's
# stop_grace_period at least 20 s: syncd drains for up to 10 s and then stops its
# embedded postgres; Docker's default of 10 s would SIGKILL it mid-shutdown.
#
# Checked by tests/test_deploy_files.py.

# The base image, pinned by digest so a rebuild gets the same bytes (tags move). This digest was
# taken from public material that names it as a verified python:3.11-slim-bookworm digest; it
# could not be checked against Docker Hub from the machine this was written on. Check or renew
# it with `docker buildx imagetools inspect python:3.11-slim-bookworm` (the index digest) and
# change both FROM lines and the base.digest label together.
# ---- builder: a venv at /opt/syncd with syncd and its pinned dependencies ----------------
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS builder

# No compilers: every pinned runtime dependency ships a manylinux x86_64 wheel, and syncd
# itself is pure Python.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/syncd

WORKDIR /src
# syncd/sql is a symlink to ../sql: both directories are copied side by side so it resolves
# and the wheel ships syncd/sql/**/*.sql. Likewise syncd/settings/syncd.toml.example links to
# ../../systemd/syncd.toml.example (`syncd config example` prints it). README.md is the
# project's readme in pyproject.toml.
COPY pyproject.toml constraints.txt README.md ./
COPY sql/ sql/
COPY systemd/syncd.toml.example systemd/
COPY syncd/ syncd/
# constraints.txt pins every runtime and dev dependency; only the runtime ones are installed.
# compileall: the image runs with PYTHONDONTWRITEBYTECODE, so every .pyc must exist before it
# ships, or each `syncd` command would compile its modules again (0.13 s of a start; pip
# compiles what it installs, this makes sure of it).
RUN /opt/syncd/bin/pip install --no-cache-dir -c constraints.txt . \
    && /opt/syncd/bin/python -m compileall -q /opt/syncd/lib \
    && /opt/syncd/bin/python -c "import importlib.resources as r; assert any(r.files('syncd').joinpath('sql', 'migrations').iterdir()); assert r.files('syncd').joinpath('settings', 'syncd.toml.example').is_file()"

# ---- final: the same Python minor, the venv, tini, an unprivileged user -------------------
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

ARG SYNCD_VERSION=0.1.0
LABEL org.opencontainers.image.title="syncd" \
      org.opencontainers.image.description="Keeps PostgreSQL in step with device vendors (NeoLock, Knox Guard, Codelocks, BioTime) and alerts on drift" \
      org.opencontainers.image.version="${SYNCD_VERSION}" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm" \
      org.opencontainers.image.base.digest="sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91"

# tini runs as PID 1: pg_ctl starts the postmaster detached, so when it exits it is reparented
# to PID 1, which must reap it. tini forwards SIGTERM to syncd only (no -g): syncd drains
# while its database is still up and then stops postgres itself.
# DL3008: tini comes from the base image's own Debian release, pinning its exact revision
# would only break the build on the next security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid (10001) with a passwd entry: initdb refuses to run as root and looks its own uid
# up with getpwuid(), so an arbitrary `--user` without a passwd entry would not work.
# /run/syncd is pgserver's XDG runtime dir (lock file, socket when the data path is long).
RUN groupadd --system --gid 10001 syncd \
    && useradd --system --uid 10001 --gid syncd --no-create-home \
        --home-dir /var/lib/syncd --shell /usr/sbin/nologin syncd \
    && install -d -o syncd -g syncd -m 0700 /var/lib/syncd /run/syncd

COPY --from=builder /opt/syncd /opt/syncd

# The three SYNCD_* keys below beat the mounted syncd.toml (see the top of this file).
ENV PATH=/opt/syncd/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    XDG_RUNTIME_DIR=/run/syncd \
    CREDENTIALS_DIRECTORY=/etc/syncd/credentials \
    SYNCD_DATA_DIR=/var/lib/syncd \
    SYNCD_SERVER__HOST=0.0.0.0 \
    SYNCD_SERVER__PORT=8080

# Embedded PostgreSQL and the spool: keep it on a volume.
VOLUME ["/var/lib/syncd"]
EXPOSE 8080

USER 10001:10001
WORKDIR /var/lib/syncd

# Liveness only (/healthz); slim images have no curl, so Python's urllib does the request.
# The start period covers initdb and migrations on first start.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/syncd/bin/python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SYNCD_SERVER__PORT', '8080'), timeout=4)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/syncd/bin/syncd"]
CMD ["run"]
