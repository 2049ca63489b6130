"""Codelocks Connect: K3Connect smart locks and KitLock NetCodes."""

from syncd.vendors.codelocks.client import (
    VENDOR,
    CodelocksClient,
    QuotaRefusedByVendor,
    check_lock_model,
)
from syncd.vendors.codelocks.models import (
    NETCODE,
    UTILITY,
    AccountInfo,
    AuditEntry,
    ClientPage,
    ClientResult,
    Duration,
    DurationInfo,
    InitSequence,
    K3Client,
    K3Lock,
    Mode,
    NetCode,
)

__all__ = [
    "NETCODE", "UTILITY", "VENDOR", "AccountInfo", "AuditEntry", "ClientPage", "ClientResult",
    "CodelocksClient", "Duration", "DurationInfo", "InitSequence", "K3Client", "K3Lock", "Mode",
    "NetCode", "QuotaRefusedByVendor", "check_lock_model",
]
