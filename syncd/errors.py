"""syncd's own exception types. Transport and driver errors are translated into these at the edge."""

from __future__ import annotations


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""


class ConfigError(SyncdError):
    """The configuration is invalid; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class DatabaseError(SyncdError):
    """The database could not be reached or refused an operation."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached right now (connection refused, pool closed, timeout)."""


class DatabaseMissing(DatabaseError):
    """An embedded database was expected under data_dir and is not there (the command creates none)."""


class PoolExhausted(DatabaseUnavailable):
    """No pooled connection came free within database.acquire_timeout_seconds; names the pool."""


class JobLockLost(DatabaseError):
    """A job run's lock went with its connection (e.g. PostgreSQL restarted): the run was stopped
    so that no other runner can overlap it."""


class DataRejected(DatabaseError):
    """The database refused a value (e.g. JSON that jsonb cannot hold); retrying will not help."""


class MigrationError(DatabaseError):
    """Migrations cannot be applied (e.g. an applied migration was edited)."""


class ReaderRefused(SyncdError):
    """`syncd db reader` will not touch this role (a superuser, syncd's own login, not a reader)."""


class VendorError(SyncdError):
    """A vendor call failed. `vendor` names the vendor, never a secret."""

    def __init__(self, vendor: str, message: str) -> None:
        super().__init__(f"{vendor}: {message}")
        self.vendor = vendor


class VendorAuthError(VendorError):
    """The vendor refused our credentials (401/403 or an auth error body)."""

    token_refused = True  # a fresh token may help: renew once and repeat


class VendorNotFound(VendorError):
    """The vendor says the object does not exist."""


class VendorStateInvalid(VendorError):
    """The vendor refused an action in the object's current state (e.g. 4000310 DEVICE_STATE_INVALID)."""

    def __init__(self, vendor: str, message: str, code: str | int | None = None,
                 reason: str | None = None) -> None:
        super().__init__(vendor, message)
        self.code = code
        self.reason = reason


class VendorBadRequest(VendorError):
    """The vendor rejected the request as invalid (4xx other than auth/not found/rate limit)."""

    def __init__(self, vendor: str, message: str, code: str | int | None = None) -> None:
        super().__init__(vendor, message)
        self.code = code


class VendorRateLimited(VendorError):
    """The vendor answered 429 (or a quota refusal) after our retries ran out."""

    def __init__(self, vendor: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(vendor, message)
        self.retry_after = retry_after


class QuotaExhausted(VendorError):
    """A monthly call quota is used up; calls are refused until the next period."""


class VendorFault(VendorError):
    """The vendor answered 5xx, or a body that is not what its API documents."""


class VendorTransportError(VendorError):
    """The vendor could not be reached: DNS, connection, TLS or timeout."""


class VendorLicenceError(VendorAuthError):
    """The vendor's licence gate refused the call (e.g. BioTime's 403 for an unlicensed module)."""

    token_refused = False  # no token will get past a licence gate
