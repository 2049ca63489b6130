"""Who is asking (the client IP, through trusted proxies only) and how often (a per-IP token bucket)."""

from __future__ import annotations

import collections
import ipaddress
import math
import time
from collections.abc import Callable, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> IPAddress | None:
    """An IP from a peer or X-Forwarded-For hop, tolerating `[v6]:port` and `v4:port`; else None."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.scope_id:  # fe80::1%eth0: PostgreSQL's inet has no zone
            return ipaddress.IPv6Address(text.split("%", 1)[0])
    return addr


class ClientAddress:
    """The client's IP: the peer, or, when the peer is a trusted proxy, X-Forwarded-For's last hop
    that is not itself a trusted proxy (walking from the right, as each proxy appends its peer)."""

    MAX_PEERS = 10_000  # peers remembered (address text, trusted?) before the memo starts over

    def __init__(self, trusted_proxies: Sequence[IPNetwork]) -> None:
        self.trusted = tuple(trusted_proxies)
        # Parsing a peer with ipaddress costs more than the rest of a registration's bookkeeping,
        # and an app's installs come back from the same few addresses (or one proxy's).
        self._peers: dict[str, tuple[str, bool] | None] = {}

    def _is_trusted(self, addr: IPAddress) -> bool:
        return any(addr.version == net.version and addr in net for net in self.trusted)

    def resolve(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """The client IP as text, or "" when the peer is not an IP (e.g. a unix socket)."""
        if not peer:
            return ""
        try:
            known = self._peers[peer]
        except KeyError:
            addr = _address(peer)
            known = None if addr is None else (str(addr), self._is_trusted(addr))
            if len(self._peers) >= self.MAX_PEERS:
                self._peers.clear()
            self._peers[peer] = known
        if known is None:
            return ""
        text, trusted = known
        if not trusted:
            return text
        hops = [hop for header in forwarded_for for hop in header.split(",")]
        for hop in reversed(hops):
            hop_addr = _address(hop)
            if hop_addr is None:  # a forged or garbled hop: trust nothing to its left
                break
            text = str(hop_addr)
            if not self._is_trusted(hop_addr):
                break
        return text


class RateLimiter:
    """A token bucket per key (`per_minute` refill, `burst` capacity) in bounded memory.

    Only the `max_keys` most recently seen keys are remembered: a key pushed out starts again
    with a full bucket, which is harmless (a client with that many addresses is not slowed by a
    per-IP limit anyway) and keeps memory flat under a scan of many addresses.
    """

    def __init__(self, per_minute: float, burst: int, *, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def retry_after(self, key: str) -> int:
        """Take one token for `key`: 0 if allowed, else whole seconds until one is available."""
        now = self.clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return 0 if allowed else max(1, math.ceil((1.0 - tokens) / self.rate))
