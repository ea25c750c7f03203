"""The HTTP service's contract (issue #15), through FastAPI's TestClient, plus one live server
for SIGTERM. Answers are compared with `process --details` on the same real files."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs the `serve` extra")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from facegender.api import load_model  # noqa: E402
from facegender.engines.local import process_folder  # noqa: E402
from facegender.options import ProcessOptions  # noqa: E402
from facegender.service import Settings, create_app  # noqa: E402
from facegender.service.batching import Batcher  # noqa: E402

from .conftest import DATA, ROOT  # noqa: E402
from .test_detect import shipped  # noqa: E402


def app_client(**settings) -> TestClient:
    return TestClient(create_app(Settings(**settings), classifier=load_model()))


@pytest.fixture(scope="module")
def client():
    with app_client() as c:
        yield c


def upload(files: list[tuple[str, bytes]]) -> list:
    return [("files", (name, data, "application/octet-stream")) for name, data in files]


def details_of(folder: Path, tmp: Path, detect: bool = False) -> dict:
    """`process FOLDER --details` (--detect with detect): file -> record."""
    opts = ProcessOptions(output=str(tmp / "r.json"), details=str(tmp / "d.json"), threads=1, progress=False,
                          detect=detect)
    process_folder(folder, opts, load_model())
    return json.loads((tmp / "d.json").read_text())["files"]


@pytest.fixture(scope="module")
def crops(face_folder, tmp_path_factory) -> Path:
    """40 real faces and three files that are not images, as a user's folder might hold."""
    d = tmp_path_factory.mktemp("crops")
    for p in face_folder.iterdir():
        shutil.copy(p, d / p.name)
    (d / "empty.jpg").write_bytes(b"")
    (d / "notes.txt").write_text("not an image")
    jpeg = (face_folder / sorted(os.listdir(face_folder))[0]).read_bytes()
    (d / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    return d


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("photos")
    Image.open(shipped("insightface", "data/images/t1.jpg")).save(d / "group.jpg")  # six people
    Image.open(shipped("skimage", "data/astronaut.png")).convert("RGB").save(d / "astronaut.jpg")
    Image.open(shipped("skimage", "data/coffee.png")).convert("RGB").save(d / "coffee.jpg")  # no one
    (d / "notes.txt").write_text("not a photo")
    return d


def test_healthz_answers_once_it_can_classify(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_crop_mode_equals_process_in_the_order_sent(client, crops, tmp_path):
    expected = details_of(crops, tmp_path)
    names = sorted(os.listdir(crops))
    random.Random(0).shuffle(names)
    r = client.post("/v1/classify", files=upload([(n, (crops / n).read_bytes()) for n in names]))
    assert r.status_code == 200
    results = r.json()["results"]
    assert [rec["file"] for rec in results] == names
    for rec in results:
        want = expected[rec["file"]]
        if "error" in want:  # same reason; process's message names the path, the server's cannot
            assert rec["error"] == want["error"] and rec["message"]
        else:
            assert {k: v for k, v in rec.items() if k != "file"} == want
    assert {rec["error"] for rec in results if "error" in rec} == {"empty_file", "not_an_image", "truncated"}


def test_detect_mode_equals_process_detect(client, photos, tmp_path):
    expected = details_of(photos, tmp_path, detect=True)
    names = sorted(os.listdir(photos))
    r = client.post("/v1/classify?detect=true", files=upload([(n, (photos / n).read_bytes()) for n in names]))
    assert r.status_code == 200
    got = {rec.pop("file"): rec for rec in r.json()["results"]}
    assert got.pop("notes.txt")["error"] == expected.pop("notes.txt")["error"] == "not_an_image"
    assert got == expected
    assert len(got["group.jpg"]["faces"]) == 6 and got["coffee.jpg"] == {"faces": [], "reason": "no face found"}


def test_max_faces_keeps_the_largest(client, photos):
    files = upload([("group.jpg", (photos / "group.jpg").read_bytes())])
    every = client.post("/v1/classify", params={"detect": "true"}, files=files).json()["results"][0]["faces"]
    two = client.post("/v1/classify", params={"detect": "true", "max_faces": 2}, files=files).json()["results"][0]["faces"]
    assert two == every[:2]
    assert client.post("/v1/classify", params={"detect": "true", "max_faces": -1}, files=files).status_code == 422


def test_json_base64_gives_the_same_records(client, crops):
    names = sorted(os.listdir(crops))[:4]
    multipart = client.post("/v1/classify", files=upload([(n, (crops / n).read_bytes()) for n in names])).json()
    images = [{"name": n, "data": base64.b64encode((crops / n).read_bytes()).decode()} for n in names]
    images[1]["data"] = "data:image/jpeg;base64," + images[1]["data"]  # as a browser's FileReader gives it
    assert client.post("/v1/classify", json={"images": images}).json() == multipart
    bad = client.post("/v1/classify", json={"images": [{"name": "x", "data": "not base64!"}]}).json()["results"]
    assert bad[0]["file"] == "x" and bad[0]["error"] == "bad_base64" and bad[0]["message"]


def test_requests_bad_as_a_whole_get_a_4xx_with_a_detail(client):
    face = sorted((DATA / "utkface" / "male").iterdir())[0].read_bytes()
    cases = [
        (415, dict(content=b"hello", headers={"content-type": "text/plain"})),
        (415, dict(content=face)),  # no content type at all
        (422, dict(content=b"--x--", headers={"content-type": "multipart/form-data"})),  # no boundary
        (422, dict(files=[("other", ("a.jpg", face))])),  # no part named files
        (422, dict(content=b"{not json", headers={"content-type": "application/json"})),
        (422, dict(json={"images": []})),
        (422, dict(json={"pictures": [1]})),
    ]
    for status, kwargs in cases:
        r = client.post("/v1/classify", **kwargs)
        assert r.status_code == status, (kwargs, r.text)
        assert r.json()["detail"]
    assert client.get("/v1/classify").status_code == 405


def test_limits_each_with_a_clear_error(crops):
    face = (crops / sorted(n for n in os.listdir(crops) if n.endswith(".jpg") and "cut" not in n and "empty" not in n)[0])
    data = face.read_bytes()
    with app_client(max_request_bytes=3 * len(data), max_files=2, max_pixels=1000) as c:
        r = c.post("/v1/classify", files=upload([("a.jpg", data)] * 4))
        assert r.status_code == 413 and "limit" in r.json()["detail"]
        r = c.post("/v1/classify", files=upload([("a.jpg", data)] * 2 + [("b", b"")]))
        assert r.status_code == 413 and "3 files" in r.json()["detail"]
        images = [{"data": base64.b64encode(b"x").decode()}] * 3
        assert c.post("/v1/classify", json={"images": images}).status_code == 413
        r = c.post("/v1/classify", files=upload([("a.jpg", data)]))  # pixels: a per-file error, in a 200
        rec = r.json()["results"][0]
        assert r.status_code == 200 and rec["error"] == "too_large" and "1,000" in rec["message"]
    with app_client(request_timeout=1e-6) as c:
        r = c.post("/v1/classify", files=upload([("a.jpg", data)]))
        assert r.status_code == 504 and "longer than" in r.json()["detail"]
    with pytest.raises(ValueError):
        Settings(max_pixels=10**9)  # never above process's decompression-bomb guard


def test_api_key(crops, monkeypatch):
    files = upload([("a.jpg", (crops / "notes.txt").read_bytes())])
    monkeypatch.setenv("FACEGENDER_API_KEY", "s3cret")
    with TestClient(create_app(Settings.from_env(), classifier=load_model())) as c:
        assert c.post("/v1/classify", files=files).status_code == 401
        assert c.post("/v1/classify", files=files, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/v1/classify", files=files, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.post("/v1/classify", files=files, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/v1/model").status_code == 401 and c.get("/metrics").status_code == 401
        assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200
        assert "detail" in c.get("/v1/model").json()


@pytest.mark.parametrize("vnni, precision, expected", [(False, "auto", "float"), (True, "auto", "int8"),
                                                      (True, "float", "float"), (False, "int8", "int8")])
def test_model_metadata_names_the_file_that_runs(monkeypatch, vnni, precision, expected):
    """The answer describes the graph loaded, whichever precision the CPU (faked here) led to."""
    import facegender.classifier as classifier
    monkeypatch.setattr(classifier, "has_vnni", lambda cpuinfo=None: vnni)
    with TestClient(create_app(Settings(precision=precision))) as c:
        m = c.get("/v1/model").json()
    shipped = classifier.DEFAULT_INT8 if expected == "int8" else classifier.DEFAULT_MODEL
    assert m["precision"] == expected and m["file"] == shipped.name
    assert m["sha256"] == (shipped.parent / (shipped.name + ".sha256")).read_text().split()[0]
    assert ("VNNI" in m["chosen_because"]) == (precision == "auto")
    assert m["detector"].startswith("scrfd-2.5g.int8.onnx (" if expected == "int8" else "scrfd-2.5g.onnx (")
    assert m["labels"] == ["male", "female"] and m["input_size"] == {"width": 80, "height": 96}
    assert m["validation"]["aligned_frames"]["all"]["accuracy"] > 0.9 and m["version"] and m["card"]["licence"]
    assert set(m["validation"]["aligned_frames"]) >= {"allagefaces", "utkface", "scut-fbp5500", "celeba-64x64"}


def test_metrics_count_requests_faces_and_errors(crops):
    with app_client() as c:
        c.post("/v1/classify", files=upload([(n, (crops / n).read_bytes()) for n in ("notes.txt", "empty.jpg")]))
        c.post("/v1/classify", content=b"x", headers={"content-type": "text/plain"})
        face = next(n for n in sorted(os.listdir(crops)) if n.endswith(".jpg") and n not in ("empty.jpg", "cut.jpg"))
        c.post("/v1/classify", files=upload([(face, (crops / face).read_bytes())]))
        text = c.get("/metrics").text
    assert 'facegender_requests_total{method="POST",path="/v1/classify",status="200"} 2.0' in text
    assert 'facegender_requests_total{method="POST",path="/v1/classify",status="415"} 1.0' in text
    assert 'facegender_file_errors_total{reason="not_an_image"} 1.0' in text
    assert 'facegender_file_errors_total{reason="empty_file"} 1.0' in text
    assert 'facegender_request_seconds_bucket{le="0.5",path="/v1/classify"}' in text
    assert "facegender_faces_total{" in text and 'mode="crop"' in text


def test_docs_and_page_load_nothing_from_outside(client):
    for page in ("/docs", "/"):
        html = client.get(page).text
        assert "http://" not in html and "https://" not in html and "//cdn" not in html
    for asset in ("/static/swagger-ui-bundle.js", "/static/swagger-ui.css", "/static/app.js", "/static/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and len(r.content) > 1000
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]["/v1/classify"]["post"]["requestBody"]["content"]) == {"multipart/form-data", "application/json"}


def test_request_paths_never_reach_the_file_system(client):
    for path in ("/static/../../pyproject.toml", "/static/%2e%2e%2fapp.py", "/static/app.py", "/static/settings.py"):
        assert client.get(path).status_code == 404


def test_cors_is_off_unless_configured():
    preflight = {"Origin": "http://example.org", "Access-Control-Request-Method": "POST"}
    with app_client() as c:
        assert "access-control-allow-origin" not in c.options("/v1/classify", headers=preflight).headers
    with app_client(cors_origins="http://example.org") as c:
        assert c.options("/v1/classify", headers=preflight).headers["access-control-allow-origin"] == "http://example.org"


def test_settings_from_the_environment():
    s = Settings.from_env({"FACEGENDER_PORT": "9001", "FACEGENDER_MAX_FILES": "3", "FACEGENDER_CORS_ORIGINS": "a,b",
                           "FACEGENDER_REQUEST_TIMEOUT": "2.5"}, max_files=5)
    assert (s.port, s.max_files, s.cors_origins, s.request_timeout, s.host) == (9001, 5, ["a", "b"], 2.5, "127.0.0.1")


def test_decoded_inputs_are_bounded(crops):
    """max_decoded=1 with two pool threads: never two inputs held at once."""
    names = [n for n in sorted(os.listdir(crops)) if n.endswith(".jpg")][:8]
    with app_client(max_decoded=1, workers=2) as c:
        engine = c.app.state.engine
        held, peak, lock = [0], [0], threading.Lock()
        decode = engine._decode

        def counting(*args):
            with lock:
                held[0] += 1
                peak[0] = max(peak[0], held[0])
            try:
                time.sleep(0.01)
                return decode(*args)
            finally:
                with lock:
                    held[0] -= 1
        engine._decode = counting
        assert c.post("/v1/classify", files=upload([(n, (crops / n).read_bytes()) for n in names])).status_code == 200
        assert peak[0] == 1 and engine.decoded_slots._value == 1


class _Failing:
    """The shipped classifier, until told to fail."""

    def __init__(self, clf):
        self.clf, self.fail = clf, False

    def __getattr__(self, name):
        return getattr(self.clf, name)

    def predict(self, faces, flip=False):
        if self.fail:
            raise RuntimeError("model call failed")
        return self.clf.predict(faces, flip)


def test_a_failed_model_call_is_a_per_file_error_not_a_500(crops):
    clf = _Failing(load_model())
    with TestClient(create_app(Settings(), classifier=clf)) as c:
        clf.fail = True
        r = c.post("/v1/classify", files=upload([("a.jpg", (crops / sorted(os.listdir(crops))[0]).read_bytes())]))
    assert r.status_code == 200 and r.json()["results"][0]["error"] == "unexpected"


class _D:  # a decoded input as the batcher sees it
    def __init__(self, faces):
        self.arrays = [None] * faces


def test_batcher_puts_inputs_that_arrive_together_in_one_call():
    calls = []

    def run(decoded, detecting):
        calls.append((len(decoded), detecting))
        return [len(d.arrays) for d in decoded]

    async def main(max_faces):
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(2) as pool:
            b = Batcher(run, pool, max_faces=max_faces, wait_s=0.001)
            b.start()
            answers = await asyncio.gather(*(b.submit(_D(k), k == 3) for k in (1, 2, 1, 3, 1)))
            await b.stop()
            return answers

    assert asyncio.run(main(64)) == [1, 2, 1, 3, 1]
    assert sorted(calls) == [(1, True), (4, False)]  # one call per mode
    calls.clear()
    asyncio.run(main(2))
    assert sum(n for n, _ in calls) == 5 and len(calls) >= 3  # never more than 2 faces a call


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(*args: str, env: dict | None = None):
    """`facegender serve` in a subprocess on a free loopback port: yields (base url, process)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "facegender.cli", "serve", "--port", str(port), *args],
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError("server did not become healthy in 60 s")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_finishes_in_flight_refuses_new_and_exits(photos):
    """Requests still uploading when SIGTERM comes are all answered in full; new connections
    are refused; the process exits within its grace period."""
    with live_server() as (url, proc):
        boundary = "b0undary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"astronaut.jpg\"\r\n\r\n"
                .encode() + (photos / "astronaut.jpg").read_bytes() + f"\r\n--{boundary}--\r\n".encode())
        half = len(body) // 2
        go_on, answers = threading.Event(), {}

        def chunks():
            yield body[:half]
            go_on.wait(20)
            yield body[half:]

        def post(i):
            with httpx.Client(timeout=30) as h:
                answers[i] = h.post(url + "/v1/classify?detect=true", content=chunks(),
                                    headers={"content-type": f"multipart/form-data; boundary={boundary}",
                                             "content-length": str(len(body))})
        threads = [threading.Thread(target=post, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.5)  # the requests are under way: headers and half of each body sent
        proc.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        time.sleep(1.0)
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/healthz", timeout=2)
        go_on.set()
        for t in threads:
            t.join(30)
        assert sorted(answers) == [0, 1, 2, 3], "every request in flight was answered"
        for r in answers.values():
            assert r.status_code == 200 and len(r.json()["results"][0]["faces"]) == 1
        # uvicorn re-raises the signal once shut down, so the exit status says "ended by SIGTERM"
        assert proc.wait(15) in (0, -signal.SIGTERM) and time.monotonic() - stopped_at < 10
        assert "Finished server process" in proc.stderr.read()


def test_load_benchmark_runs():
    """benchmarks/load.py end to end on tiny inputs, so it cannot rot (nothing is timed)."""
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "load.py"), "--clients", "2", "--seconds", "1",
                        "--max-requests", "6", "--crops", "8", "--photos", "2"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in r.stdout.splitlines() if line.startswith("| ") and "scenario" not in line]
    assert [row[0].strip() for row in rows] == ["crop, 1 per request", "photo 640x480 detect=true", "crops, 64 per request"]
    assert all(row[8].strip() == "0" for row in rows)  # no errors
    assert "process.py" in r.stdout
