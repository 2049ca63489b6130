"""The one token discipline of every vendor client: a token cache and renew-once-on-refusal.

`TokenKeeper` caches a token and renews it shortly before it expires. `TokenAuth` sends a call
with the token taken when the attempt's turn comes (after pacing), records which token *that*
call was sent with, and when the vendor refuses it (the client's decoder raises
`VendorAuthError`) drops exactly that token and repeats the call once. Concurrent refusals of the
same token therefore cost one renewal: the first drops it, the others find it already replaced
and simply repeat with the new one. No call is lost and none is repeated more than once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from syncd.errors import VendorAuthError

AuthHeaders = Callable[[], Awaitable[dict[str, str]]]
R = TypeVar("R")
T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Token:
    """An access token and, when known, its expiry as a Unix time."""

    value: str = dataclasses.field(repr=False)
    expires_at: float | None = None


class TokenKeeper:
    """Caches one access token: fetched on first use, renewed shortly before it expires.

    The renewal margin is `margin` seconds, or a fifth of the token's lifetime if that is shorter.
    A token whose expiry is unknown (or already past by our clock: skew) lives until a 401, when
    the client calls `invalidate()` with the token that was refused.
    """

    def __init__(self, fetch: Callable[[], Awaitable[Token]], *, margin: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._margin = margin
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: Token | None = None
        self._renew_at: float | None = None
        self.fetches = 0

    async def get(self) -> str:
        """The current token, fetching a fresh one if there is none or it is about to expire."""
        async with self._lock:
            if self._token is None or (self._renew_at is not None
                                       and self._clock() >= self._renew_at):
                token = await self._fetch()
                self.fetches += 1
                now = self._clock()
                self._token, self._renew_at = token, None
                if token.expires_at is not None and token.expires_at > now:
                    lifetime = token.expires_at - now
                    self._renew_at = token.expires_at - min(self._margin, lifetime / 5)
            return self._token.value

    @property
    def current(self) -> str | None:
        """The cached token, if any (for scrubbing it from vendor text)."""
        return self._token.value if self._token is not None else None

    def invalidate(self, value: str) -> None:
        """Drop `value` if it is still the cached token (another caller may have renewed it)."""
        if self._token is not None and self._token.value == value:
            self._token = None


class TokenAuth:
    """Sends calls with a kept token; a refused token is renewed once, however many calls saw it."""

    def __init__(self, keeper: TokenKeeper, headers: Callable[[str], dict[str, str]]) -> None:
        self.keeper = keeper
        self._headers = headers

    async def call(self, send: Callable[[AuthHeaders], Awaitable[R]],
                   accept: Callable[[R], T]) -> T:
        """`send(auth)` the call, `accept` its reply; on VendorAuthError renew and repeat once."""
        for attempt in (1, 2):
            sent: list[str] = []  # the token this call went out with (per call, never shared)
            reply = await send(self._recording(sent))
            try:
                return accept(reply)
            except VendorAuthError as err:
                if attempt == 2 or not sent or not err.token_refused:
                    raise
                self.keeper.invalidate(sent[-1])  # a no-op if another call already renewed it
        raise AssertionError("unreachable")  # pragma: no cover

    def _recording(self, sent: list[str]) -> AuthHeaders:
        """Headers for one attempt, the token taken when its turn comes and noted in `sent`."""

        async def auth() -> dict[str, str]:
            token = await self.keeper.get()
            sent.append(token)
            return self._headers(token)

        return auth
