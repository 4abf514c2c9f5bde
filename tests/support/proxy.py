"""A TCP forwarder in front of a node, that a test can cut: an RPC URL that dies mid-run while
the node behind it lives on (for failover tests)."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # restart on the port of a proxy just cut
    daemon_threads = True


class Proxy:
    """Forwards ``127.0.0.1:<port>`` (a free one unless given: a proxy cut before may be
    restarted on its port) to ``target_port``; :meth:`cut` closes the listening socket and every
    open connection, so the URL refuses from then on."""

    def __init__(self, target_port: int, port: int = 0) -> None:
        proxy = self
        self.connections: list[socket.socket] = []

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                upstream = socket.create_connection(("127.0.0.1", target_port))
                proxy.connections += [self.request, upstream]

                def pump(a: socket.socket, b: socket.socket) -> None:
                    try:
                        while data := a.recv(65536):
                            b.sendall(data)
                    except OSError:
                        pass
                    finally:
                        for s in (a, b):
                            with contextlib.suppress(OSError):
                                s.shutdown(socket.SHUT_RDWR)

                back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
                back.start()
                pump(self.request, upstream)
                back.join(timeout=5)

        self.server = _Server(("127.0.0.1", port), Pipe)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for s in self.connections:
            with contextlib.suppress(OSError):
                s.close()
