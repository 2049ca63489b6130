"""Samsung Knox Guard (direct tenant): client, signed-token flow and models."""

from syncd.vendors.knoxguard.client import KnoxGuardClient, TransactionPending
from syncd.vendors.knoxguard.models import (
    ActionResult,
    Blink,
    Device,
    DevicePage,
    KnoxRequestInvalid,
    TransactionResult,
    UploadDetail,
    UploadPage,
    UploadResult,
)

__all__ = [
    "ActionResult",
    "Blink",
    "Device",
    "DevicePage",
    "KnoxGuardClient",
    "KnoxRequestInvalid",
    "TransactionPending",
    "TransactionResult",
    "UploadDetail",
    "UploadPage",
    "UploadResult",
]
