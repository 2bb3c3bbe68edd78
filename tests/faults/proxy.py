"""A TCP proxy in front of the test Redis, for faults a real network has: latency, a connection cut after the
request was forwarded (Redis ran it, the reply is lost), and a stall (bytes accepted, nothing answered)."""

from __future__ import annotations

import select
import signal
import socket
import threading
import time


class Proxy:
    """Forwards TCP from `127.0.0.1:<port>` to Redis on `upstream_port`.

    - `latency`: seconds each reply from Redis is held before it is forwarded.
    - `drop_next_reply`: the next reply from Redis is swallowed and the client's connection closed.
    - `drop_after`: the reply to the next request containing these bytes is swallowed, the connection closed.
    - `cut()`: resets every open connection at once.
    - `stall`: while set, nothing is forwarded in either direction (new connections are accepted and hang).
    """

    def __init__(self, upstream_port: int, latency: float = 0.0) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.latency = latency
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.drop_next_reply = threading.Event()
        self.drop_after: bytes | None = None
        self.stall = threading.Event()
        self.dropped = 0
        self.live: set[socket.socket] = set()
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        # NOTE: the test's signals (SIGTERM to itself in a few tests) belong to the main thread
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGQUIT, signal.SIGINT])
        self.listener.settimeout(0.1)
        while not self.closing.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._pump, args=(conn,), daemon=True)
            with self._lock:
                self.threads.append(t)
            t.start()

    def _take_drop(self, request: bytes) -> bool:
        with self._lock:
            if self.drop_after is not None and self.drop_after in request:
                self.drop_after = None
                return True
        return False

    def _pump(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.upstream)
        except OSError:
            client.close()
            return
        cut = False
        with self._lock:
            self.live.add(client)
        try:
            while not self.closing.is_set():
                if self.stall.is_set():
                    time.sleep(0.01)
                    continue
                ready, _, _ = select.select([client, server], [], [], 0.1)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is client:
                        cut = cut or self._take_drop(data)
                        server.sendall(data)
                        continue
                    if cut or self.drop_next_reply.is_set():
                        self.drop_next_reply.clear()
                        self.dropped += 1
                        return
                    if self.latency:
                        time.sleep(self.latency)
                    client.sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self.live.discard(client)
            client.close()
            server.close()

    def cut(self) -> int:
        """Reset every connection open now (what a Redis restart or a network blip does); returns how many."""
        with self._lock:
            live = list(self.live)
        for s in live:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return len(live)

    def close(self) -> None:
        self.closing.set()
        self.listener.close()
        with self._lock:
            threads = list(self.threads)
        for t in threads:
            t.join(2)
