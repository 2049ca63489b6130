"""NeoLock (reseller API over Samsung Knox Guard): client and models."""

from syncd.vendors.neolock.client import NeoLockClient
from syncd.vendors.neolock.models import (
    AccessToken,
    ActionResult,
    ApiReply,
    Device,
    InvalidReason,
    OfflineLockPin,
    Upload,
    UploadPage,
    UploadResult,
)

__all__ = [
    "AccessToken",
    "ActionResult",
    "ApiReply",
    "Device",
    "InvalidReason",
    "NeoLockClient",
    "OfflineLockPin",
    "Upload",
    "UploadPage",
    "UploadResult",
]
