"""Free loopback ports for the local servers, distinct within this process."""

from __future__ import annotations

import socket
import threading

from devstack.errors import StackError

__all__ = ["HOST", "free_ports", "port_accepts"]

HOST = "127.0.0.1"
# Ports other software on a developer machine expects to own; the kernel's ephemeral range
# rarely hands them out, but a clash would be confusing enough to rule out.
_AVOID_PORTS = frozenset({1883, 2181, 3306, 4222, 5432, 5672, 6379, 8080, 9092, 9093})

_port_lock = threading.Lock()
# Ports this process has handed out: between our probe socket's close() and the server's bind()
# the kernel may offer the same port again, so two stacks in one process could otherwise collide.
_ports_handed_out: set[int] = set()


def free_ports(count: int) -> list[int]:
    """`count` distinct ports on `HOST` that nothing listens on now and this process has not
    handed out before."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        with _port_lock:
            for _ in range(200):
                if len(ports) == count:
                    break
                # Keeping every probe socket bound until all are chosen makes the ports distinct.
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((HOST, 0))
                port = int(sock.getsockname()[1])
                if port not in _AVOID_PORTS and port not in _ports_handed_out:
                    ports.append(port)
            if len(ports) < count:
                raise StackError(f"could not find {count} free ports on {HOST}")
            _ports_handed_out.update(ports)
    finally:
        for sock in sockets:
            sock.close()
    return ports


def port_accepts(port: int) -> bool:
    """Whether something accepts TCP connections on `HOST`:`port`."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False
