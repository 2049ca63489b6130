"""The health verdict `syncd status` and `/api/v1/status` give, kept light: the CLI reads its
exit codes while building its parser."""

from __future__ import annotations

import enum


class Health(enum.IntEnum):
    """Overall health; the value is `syncd status`'s exit code (0 OK, 1 WARNING, 2 CRITICAL,
    3 UNKNOWN)."""

    OK = 0
    DEGRADED = 1
    DOWN = 2
    UNKNOWN = 3
