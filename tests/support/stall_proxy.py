"""A TCP proxy on 127.0.0.1 that can stall: while stalled it forwards no byte either way and
closes nothing, as a hung network path or a frozen peer would (connections stay open, new
ones are accepted and then hang too). Unstalled, whatever was held is forwarded."""

from __future__ import annotations

import contextlib
import socket
import threading


class StallProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = False
        self.connections = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="stall-proxy", daemon=True)

    def start(self) -> StallProxy:
        self._thread.start()
        return self

    def stall(self) -> None:
        self.flowing.clear()

    def unstall(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            sockets, self._sockets = self._sockets, []
        for sock in [self.listener, *sockets]:
            _shut(sock)
            sock.close()
        self.flowing.set()  # the pumps find their sockets closed and end
        self._thread.join(5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self.closed:
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
                self.connections += 1
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self.flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                self.flowing.wait()  # read just before a stall: held until unstalled
                dst.sendall(data)
        except OSError:
            pass
        finally:  # either side gone: end both directions (HTTP needs no half-close)
            _shut(src)
            _shut(dst)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
