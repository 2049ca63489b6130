"""The Knox Cloud token flow of the Knox Guard simulator (FIELD-NOTES "Samsung Knox Guard").

A tenant registers a key pair (the portal's keys.json: base64 DER "Public" and "Private") for a
client identifier. `POST /ams/v1/users/accesstoken` takes `{clientIdentifierJwt,
base64EncodedStringPublicKey, validityForAccessTokenInMinutes}` and answers `{accessToken}`; the
API is then called with `x-knox-apitoken`: a JWT signed (RS512) with the same private key carrying
aud "KnoxWSM", accessToken, publicKey, iat, exp and jti.

Where the docs are silent the simulator is strict (guesses, each refused with 401 4010000):
- both JWTs must be RS512, carry aud "KnoxWSM", a jti, iat and exp, and exp must not be past;
- a jti is one token: the same API token may be sent again until it expires, but a different token
  (or a second exchange) carrying a jti already seen is a replay and is refused;
- access tokens live `validityForAccessTokenInMinutes` (1..30, default 30) and can be revoked.

The clock is injectable so tests can move time without waiting half an hour.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "KnoxWSM"
ALGORITHM = "RS512"
MAX_VALIDITY_MINUTES = 30


class AuthRefused(Exception):
    """The token or exchange is refused (answered 401 4010000 AUTHORIZATION_FAIL)."""


class BadExchange(Exception):
    """The exchange request is malformed (answered 400 4000000 RESOURCE_INVALID_PARAM)."""


def generate_keys(bits: int = 2048) -> str:
    """A new tenant key pair as the Knox portal's keys.json text (base64 DER Public/Private)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return json.dumps({"Public": base64.b64encode(public).decode(),
                       "Private": base64.b64encode(private).decode()})


def public_of(keys_json: str) -> str:
    """The base64 "Public" key of a keys.json text."""
    value = json.loads(keys_json)["Public"]
    assert isinstance(value, str)
    return value


@dataclasses.dataclass
class AccessGrant:
    """An access token the exchange issued."""

    client_identifier: str
    public_key: str
    expires_at: float


class TokenAuthority:
    """Registered client identifiers, issued access tokens and every jti seen."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.clients: dict[str, str] = {}  # client identifier -> base64 DER public key
        self.grants: dict[str, AccessGrant] = {}
        self.jtis: dict[str, str] = {}  # jti -> SHA-256 of the token that first carried it
        self.exchanged: set[str] = set()  # jtis of client identifier JWTs already exchanged
        self.exchanges = 0
        self.jti_replays = 0
        self.expired = 0

    def register(self, client_identifier: str, keys_json: str | None = None) -> str:
        """Register a client identifier with a key pair (new if not given); return keys.json."""
        keys_json = keys_json or generate_keys()
        self.clients[client_identifier] = public_of(keys_json)
        return keys_json

    def revoke_all(self) -> None:
        """Revoke every issued access token (the next API call with any of them gets 401)."""
        self.grants.clear()

    def exchange(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /ams/v1/users/accesstoken: a verified client identifier JWT → an access token."""
        signed, public = body.get("clientIdentifierJwt"), body.get("base64EncodedStringPublicKey")
        validity = body.get("validityForAccessTokenInMinutes", MAX_VALIDITY_MINUTES)
        if not isinstance(signed, str) or not signed or not isinstance(public, str) or not public:
            raise BadExchange("clientIdentifierJwt and base64EncodedStringPublicKey are required")
        if not isinstance(validity, int) or isinstance(validity, bool) or \
                not 1 <= validity <= MAX_VALIDITY_MINUTES:
            raise BadExchange(f"validityForAccessTokenInMinutes must be 1..{MAX_VALIDITY_MINUTES}")
        if public not in self.clients.values():
            raise AuthRefused("The public key is not registered")
        claims = self._verify(signed, public)
        client = claims.get("clientIdentifier")
        if not isinstance(client, str) or self.clients.get(client) != public:
            raise AuthRefused("The client identifier does not match the public key")
        if claims["jti"] in self.exchanged:  # a client identifier JWT is good for one exchange
            self.jti_replays += 1
            raise AuthRefused("The client identifier JWT was already exchanged")
        self.exchanged.add(claims["jti"])
        self.exchanges += 1
        token = secrets.token_urlsafe(32)
        self.grants[token] = AccessGrant(client, public, self.clock() + validity * 60)
        return {"accessToken": token}

    def check_api_token(self, token: str) -> str:
        """Verify an x-knox-apitoken; return the client identifier it acts for (AuthRefused if not)."""
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as err:
            raise AuthRefused("The x-knox-apitoken is not a JWT") from err
        public = unverified.get("publicKey")
        if not isinstance(public, str) or public not in self.clients.values():
            raise AuthRefused("The token's publicKey is not registered")
        claims = self._verify(token, public)
        grant = self.grants.get(str(claims.get("accessToken")))
        if grant is None or grant.public_key != public:
            raise AuthRefused("The accessToken is unknown or revoked")
        if grant.expires_at <= self.clock():
            self.expired += 1
            raise AuthRefused("The accessToken has expired")
        return grant.client_identifier

    def _verify(self, token: str, public: str) -> dict[str, Any]:
        """Signature (RS512, the given public key), audience, iat/exp/jti present, exp, jti once."""
        try:
            key = serialization.load_der_public_key(base64.b64decode(public, validate=True))
            claims: dict[str, Any] = jwt.decode(
                token, key=key, algorithms=[ALGORITHM], audience=AUDIENCE,  # type: ignore[arg-type]
                options={"require": ["aud", "iat", "exp", "jti"], "verify_exp": False,
                         "verify_iat": False})
        except (jwt.PyJWTError, ValueError, binascii.Error) as err:
            raise AuthRefused(f"The token is invalid: {type(err).__name__}") from err
        exp = claims["exp"]
        if not isinstance(exp, int | float) or exp <= self.clock():
            self.expired += 1
            raise AuthRefused("The token has expired")
        jti, digest = str(claims["jti"]), hashlib.sha256(token.encode()).hexdigest()
        if self.jtis.setdefault(jti, digest) != digest:
            self.jti_replays += 1
            raise AuthRefused("The jti was already used by another token")
        return claims
