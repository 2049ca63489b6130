"""The Knox Cloud signed-token flow (FIELD-NOTES "Samsung Knox Guard"), signing with PyJWT.

The tenant's keys.json holds base64 DER "Public" and "Private" keys. A client identifier JWT
signed with the private key (RS512) is exchanged for an access token, which is signed again into
the API token sent as `x-knox-apitoken`. Both JWTs get a fresh iat, exp and jti every time one is
built, so a long-running process never repeats a jti.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

AUDIENCE = "KnoxWSM"
ALGORITHM = "RS512"


class KnoxSigner:
    """Signs Knox JWTs with a tenant's private key; `public_key` is the base64 DER public key."""

    def __init__(self, keys_json: str) -> None:
        """Load keys.json; ValueError (naming no key material) if it is not one."""
        try:
            pair = json.loads(keys_json)
            public, private = pair["Public"], pair["Private"]
            if not isinstance(public, str) or not isinstance(private, str):
                raise TypeError("not strings")
            key = serialization.load_der_private_key(
                base64.b64decode("".join(private.split()), validate=True), password=None)
            base64.b64decode("".join(public.split()), validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error) as err:
            raise ValueError(f"knoxguard keys: not a usable Knox keys.json "
                             f"({type(err).__name__})") from None
        if not isinstance(key, RSAPrivateKey):
            raise ValueError("knoxguard keys: the private key is not an RSA key")
        self._key = key
        self.public_key = "".join(public.split())

    def client_identifier_jwt(self, client_identifier: str, now: float, lifetime: float) -> str:
        """The signed client identifier JWT for the access-token exchange."""
        return self._sign({"clientIdentifier": client_identifier}, now, lifetime)

    def api_token(self, access_token: str, now: float, expires_at: float) -> str:
        """The signed API token (`x-knox-apitoken`) for an access token, valid until expires_at."""
        return self._sign({"accessToken": access_token}, now, expires_at - now)

    def _sign(self, claims: dict[str, Any], now: float, lifetime: float) -> str:
        payload = {**claims, "publicKey": self.public_key, "aud": AUDIENCE, "iat": int(now),
                   "exp": int(now + lifetime), "jti": uuid.uuid4().hex + uuid.uuid4().hex}
        return jwt.encode(payload, self._key, algorithm=ALGORITHM)
