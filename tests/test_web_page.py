"""The web page end to end: the real server, Debian's headless Chromium, real photos picked
in the file input; the drawn labels must be the API's answers. FACEGENDER_SCREENSHOT=PATH
also saves the page (docs/service-page.png was made so)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs the `serve` extra")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (extra service-test)")
import httpx  # noqa: E402

from .test_service import live_server, photos  # noqa: E402,F401  (photos is a fixture)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def test_page_boxes_and_labels_every_face(browser, photos):
    names = ["group.jpg", "astronaut.jpg", "notes.txt"]
    with live_server() as (url, _):
        files = [("files", (n, (photos / n).read_bytes())) for n in names]
        api = {r["file"]: r for r in httpx.post(url + "/v1/classify?detect=true", files=files, timeout=60).json()["results"]}
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        outside = []
        page.on("request", lambda req: req.url.startswith(url) or req.url.startswith("blob:") or outside.append(req.url))
        page.goto(url + "/")
        page.set_input_files("#pick", [str(photos / n) for n in names])
        page.wait_for_selector("#status:has-text('Done')", timeout=60_000)
        page.wait_for_function("[...document.querySelectorAll('.card')].filter(c => c.querySelector('img'))"
                               ".every(c => c.dataset.drawn !== undefined)", timeout=30_000)
        cards = {c.query_selector("h2").inner_text(): c for c in page.query_selector_all(".card")}
        assert set(cards) == set(names)
        for name in ("group.jpg", "astronaut.jpg"):
            drawn = [label.inner_text() for label in cards[name].query_selector_all(".box .label")]
            assert drawn == [f"{f['gender']} {f['probability']:.2f}" for f in api[name]["faces"]]
        assert len(cards["group.jpg"].query_selector_all(".box")) == 6
        assert len(cards["astronaut.jpg"].query_selector_all(".box")) == 1
        error = cards["notes.txt"].query_selector(".summary.error").inner_text()
        assert "not an image" in error and not cards["notes.txt"].query_selector("img")
        if os.environ.get("FACEGENDER_SCREENSHOT"):
            page.screenshot(path=os.environ["FACEGENDER_SCREENSHOT"], full_page=True)
        assert [c.query_selector("h2").inner_text() for c in page.query_selector_all(".card")] == names
        cards["astronaut.jpg"].query_selector("details.json summary").click()  # the JSON, one click away
        assert '"detector_confidence"' in cards["astronaut.jpg"].query_selector("details.json pre").inner_text()
        assert outside == []  # nothing loaded from outside the server
        page.close()


def test_docs_page_renders_offline(browser):
    with live_server() as (url, _):
        page = browser.new_page()
        outside = []
        page.on("request", lambda req: req.url.startswith(url) or outside.append(req.url))
        page.goto(url + "/docs")
        page.wait_for_selector("#swagger-ui .opblock-post", timeout=30_000)
        assert "/v1/classify" in page.inner_text("#swagger-ui")
        assert outside == []
        page.close()
