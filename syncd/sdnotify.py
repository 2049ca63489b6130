"""systemd's sd_notify protocol: datagrams to $NOTIFY_SOCKET (READY, WATCHDOG, STOPPING, STATUS)."""

from __future__ import annotations

import socket

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends sd_notify messages; does nothing when not run under systemd (no socket)."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        if address:
            # A leading "@" is the abstract namespace, written as a leading NUL byte.
            self._target = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens."""
        return self._sock is not None

    def notify(self, *fields: str) -> None:
        """Send one message made of `KEY=value` fields; failures are logged, never raised."""
        if self._sock is None:
            return
        try:
            self._sock.sendto("\n".join(fields).encode(), self._target)
        except OSError as err:
            log.warning("sdnotify.failed", error=str(err))

    def ready(self, status: str) -> None:
        """READY=1 with a human status line."""
        self.notify("READY=1", f"STATUS={status}")

    def watchdog(self) -> None:
        """WATCHDOG=1: the service is alive."""
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        """STOPPING=1: shutdown has begun."""
        self.notify("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
