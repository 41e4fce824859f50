"""Fault injection for tests: a loopback TCP proxy that can be cut and restored on demand.

A real ResourceManager cannot be made unreachable for one test without stopping it for all;
this proxy stands between one edge instance and the real RM instead.
"""
from __future__ import annotations

import socket
import threading


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` refuses and drops connections, ``stall()`` takes new
    connections and never answers them (a server too slow to answer at all), ``restore()`` heals."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(64)
        self.up = True
        self.stalled = False
        self.closed = False
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()  # the "RM" is down: connection reset at once
                continue
            if self.stalled:  # taken, read by nobody, answered never (until restore or close)
                with self._lock:
                    self._conns.add(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown, not just close: close() does not wake the thread blocked in recv() on the
            # other direction, and no FIN would reach the client
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self.up = False
        with self._lock:
            for s in self._conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
                except OSError:
                    pass
            self._conns.clear()

    def stall(self) -> None:
        self.stalled = True

    def restore(self) -> None:
        was_stalled, self.stalled = self.stalled, False
        if was_stalled:
            self.cut()  # the stalled connections end (as the slow server's would, at last)
        self.up = True

    def close(self) -> None:
        self.closed = True
        self.cut()
        self.listener.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_port_url() -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"
