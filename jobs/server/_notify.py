"""systemd's readiness protocol (sd_notify): datagrams to ``$NOTIFY_SOCKET``.

With ``Type=notify`` systemd waits for ``READY=1`` before it counts the service
as started (and starts what is ordered after it), and shows ``STOPPING=1`` and
``STATUS=...`` in ``systemctl status``. Outside systemd the variable is unset
and nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["notify"]

log = logging.getLogger(__name__)


def notify(*assignments: str) -> bool:
    """Send ``READY=1``-style assignments to the service manager, if there is one;
    whether they were sent. A failure is logged, never raised: the server serves on."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    # "@name" is a socket in the abstract namespace, whose name starts with NUL.
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(assignments).encode(), address)
    except OSError as exc:
        log.warning("cannot notify the service manager at %s: %s", path, exc)
        return False
    return True
