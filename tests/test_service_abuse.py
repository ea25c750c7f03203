"""The service under abuse (issue #27), on a real socket: slow clients are dropped by their
deadlines while others are answered, overload is a quick 503 with Retry-After, readiness says
when the service is saturated, and a multipart body is held about once in memory.

Servers here run in a thread with short deadlines (1.5 s), and every timing bound has seconds
of margin, so a busy machine slows the tests without failing them."""
from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import threading
import time
import tracemalloc

import pytest

pytest.importorskip("fastapi", reason="the service needs the `serve` extra")
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from starlette.requests import Request  # noqa: E402

from facegender.api import load_model  # noqa: E402
from facegender.service import Settings, create_app  # noqa: E402
from facegender.service.admission import Admission  # noqa: E402
from facegender.service.body import read_multipart  # noqa: E402
from facegender.service.server import uvicorn_config  # noqa: E402

from .conftest import real_images  # noqa: E402

FACE = real_images("utkface", "female", 1)[0].read_bytes()
DEADLINE = 1.5  # header_timeout and body_timeout of these servers
BOUNDARY = "abuse"


@pytest.fixture(scope="module")
def classifier():
    return load_model()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(classifier, **overrides):
    """The app on uvicorn with serve's configuration, in a thread: yields (port, app)."""
    given = dict(header_timeout=DEADLINE, body_timeout=DEADLINE, body_chunk_bytes=1024, workers=1)
    settings = Settings(port=free_port(), **{**given, **overrides})
    app = create_app(settings, classifier=classifier)
    server = uvicorn.Server(uvicorn_config(app, settings, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(300):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{settings.port}/healthz", timeout=1).status_code == 200:
                break
        time.sleep(0.1)
    try:
        yield settings.port, app
    finally:
        server.should_exit = True
        thread.join(20)


def multipart(data: bytes, name: str = "face.jpg") -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n\r\n".encode()
            + data + f"\r\n--{BOUNDARY}--\r\n".encode())


def post_head(length: int) -> bytes:
    return (f"POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def trickle(port: int, first: bytes, step: bytes, n: int, every: float = 0.3, limit: float = 10.0):
    """`n` connections sending `first`, then `step` every `every` s until the server closes them:
    each one's (seconds open, what the server sent). A healthz probe each round: its latencies."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]
    opened = time.monotonic()
    for s in socks:
        s.sendall(first)
    closed, answers, probes = {}, {}, []
    with httpx.Client(timeout=5) as probe:
        while len(closed) < n and time.monotonic() - opened < limit:
            time.sleep(every)
            t = time.perf_counter()
            assert probe.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            probes.append(time.perf_counter() - t)
            for i, s in enumerate(socks):
                if i in closed:
                    continue
                readable, _, _ = select.select([s], [], [], 0)
                data = b""
                try:
                    data = s.recv(65536) if readable else None
                    if data is None:
                        s.sendall(step)
                        continue
                    while chunk := s.recv(65536):
                        data += chunk
                except OSError:
                    pass
                closed[i], answers[i] = time.monotonic() - opened, data
    for s in socks:
        s.close()
    return closed, answers, probes


def metric(app, text: str) -> float:
    for line in app.state.metrics.render().decode().splitlines():
        if line.startswith(text + " "):
            return float(line.split()[-1])
    return 0.0


def test_slowloris_is_dropped_and_health_answers_throughout(classifier):
    with running(classifier) as (port, app):
        closed, answers, probes = trickle(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n", b"X-Slow: 1\r\n", 30)
        assert len(closed) == 30, "every slow head dropped"
        assert all(DEADLINE - 0.5 < t < DEADLINE + 3 for t in closed.values()), sorted(closed.values())
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers.values())
        assert max(probes) < 1.0, probes
        assert metric(app, 'facegender_timeouts_total{phase="header"}') == 30


def test_a_trickling_body_is_dropped_and_a_slow_but_steady_one_is_not(classifier):
    with running(classifier) as (port, app):
        part_head = multipart(b"")[:-len(f"\r\n--{BOUNDARY}--\r\n")]  # then its data, a byte a round
        closed, answers, probes = trickle(port, post_head(5000) + part_head, b"x", 20)
        assert len(closed) == 20
        assert all(DEADLINE - 0.5 < t < DEADLINE + 3 for t in closed.values()), sorted(closed.values())
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers.values())
        assert max(probes) < 1.0, probes
        assert metric(app, 'facegender_timeouts_total{phase="body"}') == 20
        # 1 KB (body_chunk_bytes) every 0.5 s: slow, but each chunk within the deadline -> answered
        body = multipart(FACE)
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(post_head(len(body)))
            started = time.monotonic()
            for i in range(0, len(body), 1024):
                time.sleep(0.5)
                s.sendall(body[i:i + 1024])
            s.settimeout(20)
            answer = s.recv(65536)
        assert time.monotonic() - started > 2 * DEADLINE, "the whole body took longer than one deadline"
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


def test_overload_is_a_quick_503_with_retry_after_and_readiness_says_so(classifier):
    with running(classifier, max_in_flight=2, body_timeout=30) as (port, app):
        url = f"http://127.0.0.1:{port}"
        body = multipart(FACE)
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        for s in held:  # admitted, then waiting for the rest of their bodies
            s.sendall(post_head(len(body)) + body[:100])
        for _ in range(100):
            if app.state.admission.requests == 2:
                break
            time.sleep(0.05)
        t = time.perf_counter()
        r = httpx.post(url + "/v1/classify", files=[("files", ("a.jpg", FACE))], timeout=10)
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "capacity" in r.json()["detail"]
        assert time.perf_counter() - t < 1.0
        ready = httpx.get(url + "/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "requests" and ready.json()["in_flight"] == 2
        assert httpx.get(url + "/healthz").status_code == 200  # liveness is not readiness
        for s in held:
            s.settimeout(20)
            s.sendall(body[100:])
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            s.close()
        assert httpx.get(url + "/readyz").json() == {"status": "ok", "in_flight": 0, "max_in_flight": 2,
                                                     "body_bytes": 0, "max_body_bytes": app.state.settings.max_body_memory}
        assert metric(app, 'facegender_rejected_total{reason="requests"}') == 1
        assert 'path="/v1/classify",status="503"} 1.0' in app.state.metrics.render().decode()
        app.state.admission.stopping = True  # as on SIGTERM
        r = httpx.post(url + "/v1/classify", files=[("files", ("a.jpg", FACE))], timeout=10)
        assert r.status_code == 503 and "shutting down" in r.json()["detail"] and r.headers["retry-after"]
        assert httpx.get(url + "/readyz").json()["status"] == "stopping"


def test_connections_beyond_the_cap_get_503(classifier):
    with running(classifier, max_connections=3) as (port, _):
        kept = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", port)) as extra:
            extra.settimeout(5)
            assert extra.recv(65536).startswith(b"HTTP/1.1 503")
        for s in kept:
            s.close()
        time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200  # slots freed


def test_admission_budgets_body_bytes_with_json_charged_more():
    mb = 1 << 20
    adm = Admission(max_requests=10, max_bytes=3 * mb, max_request_bytes=2 * mb, retry_after=1)
    multipart_head = {b"content-length": str(mb).encode(), b"content-type": b"multipart/form-data; boundary=x"}
    assert adm.cost(multipart_head) == mb and adm.cost({b"content-type": b"application/json"}) == 6 * mb
    assert adm.cost({b"content-length": b"999999999"}) == 2 * mb  # refused with 413 before its body is read
    adm.take(mb)
    adm.take(mb)
    assert adm.refusal(mb) is None and adm.saturated() == "memory"
    adm.take(mb)
    assert adm.refusal(1) == "memory"
    adm.take(mb, -1)
    assert adm.refusal(mb) is None and (adm.requests, adm.bytes) == (2, 2 * mb)


def _request(body: bytes, chunk: int = 64 * 1024) -> Request:
    view, sent = memoryview(body), [0]

    async def receive():
        i = sent[0]
        sent[0] += chunk
        return {"type": "http.request", "body": bytes(view[i:i + chunk]), "more_body": i + chunk < len(body)}

    headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
               (b"content-length", str(len(body)).encode())]
    return Request({"type": "http", "method": "POST", "path": "/v1/classify", "headers": headers}, receive)


@pytest.mark.parametrize("parts", [1, 4])
def test_a_multipart_body_is_held_about_once(parts):
    """tracemalloc's peak while parsing 24 MB: the parts themselves plus a little, never 2x."""
    size = 24 << 20
    datas = [bytes([65 + i]) * (size // parts) for i in range(parts)]
    body = b"".join(multipart(d, f"{i}.jpg")[:-len(f"--{BOUNDARY}--\r\n")] for i, d in enumerate(datas))
    body += f"--{BOUNDARY}--\r\n".encode()
    request = _request(body)

    async def parse():  # the peak of the parse alone, before the event loop's own teardown
        got = await read_multipart(request, {b"boundary": BOUNDARY.encode()}, 32 << 20, 8)
        return got, tracemalloc.get_traced_memory()[1]

    tracemalloc.start()
    try:
        files, peak = asyncio.run(parse())
    finally:
        tracemalloc.stop()
    assert [name for name, _ in files] == [f"{i}.jpg" for i in range(parts)]
    assert all(got == want for (_, got), want in zip(files, datas))
    assert peak < 1.3 * size + (1 << 20), f"peak {peak / 2**20:.1f} MB for {size / 2**20:.0f} MB of parts"


def test_the_nginx_config_agrees_with_the_settings():
    """deploy/nginx.conf (docs/load.md) sets the same limits as the service's defaults."""
    import re

    from .conftest import ROOT

    conf = (ROOT / "deploy" / "nginx.conf").read_text()

    def value(name: str) -> str:
        found = re.search(rf"^\s*{name}\s+([^;]+);", conf[conf.index("\nserver {"):], re.M)  # the server's own
        assert found, name
        return found.group(1).strip()

    s = Settings()
    assert value("client_header_timeout") == f"{s.header_timeout:g}s"
    assert value("client_body_timeout") == f"{s.body_timeout:g}s"
    assert value("keepalive_timeout") == f"{s.keep_alive_seconds}s"
    assert int(value("client_max_body_size").rstrip("m")) * 2**20 == s.max_request_bytes
    assert float(value("proxy_read_timeout").rstrip("s")) > s.request_timeout
    assert float(re.search(r"upstream facegender \{[^}]*keepalive_timeout (\d+)s", conf).group(1)) < s.keep_alive_seconds
    assert value("proxy_request_buffering") == "on"


def test_the_abuse_benchmark_runs(tmp_path):
    """benchmarks/abuse.py end to end on small inputs, so it cannot rot: every row printed, the
    slow clients dropped by the default 10 s deadlines, schemathesis clean, the soak error-free."""
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    r = subprocess.run([sys.executable, "-m", "benchmarks.abuse", "--slow-clients", "5", "--every", "1",
                        "--slow-seconds", "13", "--uploads", "2", "--upload-mb", "2", "--examples", "5",
                        "--soak-seconds", "2", "--clients", "2", "--json", str(tmp_path / "a.json")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line.split(" | ") for line in r.stdout.splitlines() if line.startswith("| ") and "tried" not in line]
    assert len(rows) == 6
    slowloris, trickle, _, _, fuzz, soak = rows
    assert all(row[-1].strip(" |") == "yes" for row in (slowloris, trickle, fuzz, soak)), r.stdout
