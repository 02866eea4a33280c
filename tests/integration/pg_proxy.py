"""A TEST-ONLY TCP proxy that lets redshift_connector talk to a plain PostgreSQL server.

redshift_connector's start-up packet carries parameters only Redshift knows
(``client_protocol_version``, ``driver_version``, ``os_version``, ``plugin_name``, ...). Redshift
accepts them; plain PostgreSQL rejects the connection ("unrecognized configuration parameter").
This proxy does what Redshift does with them -- accepts and ignores them -- by removing them
from the start-up packet. The driver also parses the server's ``server_version`` as Redshift
reports it ("8.0.2"); PostgreSQL's "15.20 (Debian ...)" makes it fail, so the proxy reports
Redshift's version in that one start-up ParameterStatus message. After start-up it relays every
byte both ways unchanged. It also declines SSL (the
tests connect without it) and can drop every open connection on demand, to simulate a network
failure in the middle of a sync.

It exists only for the integration tests and the benchmark; production talks to Redshift.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

# What PostgreSQL itself accepts in a start-up packet; everything else is Redshift's.
_POSTGRES_STARTUP = {"user", "database", "application_name", "options", "replication"}
REDSHIFT_VERSION = b"8.0.2"
_SSL_REQUEST = 80877103
_GSS_REQUEST = 80877104


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client closed during start-up")
        data += chunk
    return data


def _rewrite_startup(body: bytes) -> bytes:
    """The start-up packet with Redshift-only parameters removed."""
    protocol = body[:4]
    fields = body[4:].split(b"\0")
    pairs = []
    for i in range(0, len(fields) - 1, 2):
        if not fields[i]:
            break
        pairs.append((fields[i], fields[i + 1]))
    kept = b"".join(
        k + b"\0" + v + b"\0" for k, v in pairs if k.decode() in _POSTGRES_STARTUP and v
    )
    payload = protocol + kept + b"\0"
    return struct.pack("!I", len(payload) + 4) + payload


class RedshiftProxy:
    """Listens on 127.0.0.1 (a free port) and relays to ``upstream`` (host, port)."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._stopped:
                # A closed proxy refuses, as a server that went away would.
                client.close()
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = None
        try:
            while True:
                (length,) = struct.unpack("!I", _recv_exact(client, 4))
                body = _recv_exact(client, length - 4)
                (code,) = struct.unpack("!I", body[:4])
                if code in (_SSL_REQUEST, _GSS_REQUEST):
                    client.sendall(b"N")
                    continue
                break
            server = socket.create_connection(self.upstream)
            # Relayed small messages must not wait for the peer's delayed ACK (about 40 ms a
            # round trip: a sync's dozens of short queries took seconds through the proxy).
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            server.sendall(_rewrite_startup(body))
            with self._lock:
                self.connections += 1
                self._open.update((client, server))
            # Client -> server is relayed raw from the start (authentication replies included).
            pump = threading.Thread(target=self._pump, args=(client, server), daemon=True)
            pump.start()
            self._relay_startup(server, client)
            self._pump(server, client)
            pump.join()
        except (OSError, ConnectionError, struct.error):
            pass
        finally:
            for s in (client, server):
                if s is not None:
                    with self._lock:
                        self._open.discard(s)
                    with contextlib.suppress(OSError):
                        s.close()

    @staticmethod
    def _relay_startup(server: socket.socket, client: socket.socket) -> None:
        """Relay server messages up to ReadyForQuery, reporting Redshift's server_version."""
        while True:
            kind = _recv_exact(server, 1)
            (length,) = struct.unpack("!I", _recv_exact(server, 4))
            body = _recv_exact(server, length - 4)
            if kind == b"S" and body.startswith(b"server_version\0"):
                body = b"server_version\0" + REDSHIFT_VERSION + b"\0"
            client.sendall(kind + struct.pack("!I", len(body) + 4) + body)
            if kind in (b"Z", b"E"):
                return

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def drop_all(self) -> int:
        """Cut every open connection, as a network failure would; returns how many."""
        with self._lock:
            sockets = list(self._open)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        return len(sockets) // 2

    def close(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop_all()
