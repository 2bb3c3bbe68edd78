"""A claim whose reply is lost after Redis ran it (the connection drops between the two): the child's connection
reconnects and claims again at once. Both claims happened, so neither may overwrite the other's in-flight
entries, and the tasks of the unanswered claim must come back. A small TCP proxy drops the reply on demand."""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import redis

from wakaq import _wakaq

pytestmark = pytest.mark.timeout(30)


class DroppingProxy:
    """Forwards TCP to Redis; with `drop_next_reply` set, the next bytes Redis sends are swallowed and the
    client's connection is closed (Redis already ran the command)."""

    def __init__(self, port: int) -> None:
        self.upstream = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.drop_next_reply = threading.Event()
        self.dropped = 0
        self.closing = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self.closing.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._pump, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _pump(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        try:
            while not self.closing.is_set():
                ready, _, _ = select.select([client, server], [], [], 0.1)
                for s in ready:
                    try:
                        data = s.recv(65536)
                    except ConnectionResetError:
                        return  # NOTE: wakaq's connections close with an RST (SO_LINGER 0)
                    if not data:
                        return
                    if s is server and self.drop_next_reply.is_set():
                        self.drop_next_reply.clear()
                        self.dropped += 1
                        return
                    (server if s is client else client).sendall(data)
        finally:
            client.close()
            server.close()

    def close(self) -> None:
        self.closing.set()
        self.listener.close()
        for t in self.threads:
            t.join(2)


@pytest.fixture
def proxy(redis_url: str) -> Iterator[DroppingProxy]:
    p = DroppingProxy(urlparse(redis_url).port or 6379)
    try:
        yield p
    finally:
        p.close()


def test_claim_reply_lost_after_redis_ran_it(redis_url: str, proxy: DroppingProxy) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        producer = _wakaq.Broker(redis_url)
        for i in range(3):
            producer.push("faults", "work", [i], {})
        consumer = _wakaq.Consumer(f"redis://127.0.0.1:{proxy.port}/0", "wakaq", "d1", ["faults"], 0.5, 2.0, 2.0)
        [(seq0, _, first)] = consumer.claim([], 1)  # a proven connection, the script loaded
        proxy.drop_next_reply.set()
        second = consumer.claim([seq0], 1)  # Redis claims task 1, the reply is dropped, the retry claims task 2
        assert proxy.dropped == 1
        held = client.hgetall("wakaq:inflight:d1")
        assert len(held) == 2, f"both claims are in flight, neither overwrote the other: {held}"
        # the next claim hands back what the unanswered claim took; then everything is accounted for
        third = consumer.claim([s for s, _, _ in second], 3)
        elements = [first, *(e for _, _, e in second), *(e for _, _, e in third)]
        ids = sorted(_wakaq.decode_task(_wakaq.split_element(e)[1])[1][0] for e in elements)
        assert ids == [0, 1, 2]
        consumer.claim([s for s, _, _ in third], 0)
        assert client.hlen("wakaq:inflight:d1") == 0 and client.llen("wakaq:faults") == 0
    finally:
        client.close()
