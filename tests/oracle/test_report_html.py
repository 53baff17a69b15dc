"""`embedrank report RUN` writes RUN/report.html; opened in Debian's headless Chromium (through
chromedriver's WebDriver HTTP API) it shows no broken image, one grid row per shown query
(seeded sample + worst), and each query's top-k outlined green/red exactly as an independent
numpy kNN over `embedrank embed`'s embeddings says (higher score first, ties to the lower index).
Skipped, with the reason, only where Chromium or chromedriver is not installed (`make test`
installs them)."""

import base64
import io
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

import embedrank_cli as er
from fashion_like import TEST_PER_CLASS, fashion_like

# Each test class has 5 images: a query's top 6 holds at most 4 of its class, so both outlines show.
K, SAMPLE, WORST = 6, 3, 2
assert K > TEST_PER_CLASS - 1


def browser_paths():
    """(chromium, chromedriver) or the reason they cannot be used."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        return None, "Debian's chromium and chromium-driver are not installed (make test installs them with apt-get)"
    return (chromium, driver), None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    """The few WebDriver commands the test needs, over HTTP with urllib."""

    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.session = None

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read())["value"]

    def wait_ready(self, seconds=30):
        end = time.time() + seconds
        while time.time() < end:
            try:
                if self.call("GET", "/status").get("ready"):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"chromedriver did not start within {seconds} s")

    def start(self, chromium):
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,2400"]}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def s(self, method, path, body=None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def js(self, script):
        return self.s("POST", "/execute/sync", {"script": script, "args": []})


@pytest.fixture
def browser():
    paths, reason = browser_paths()
    if paths is None:
        pytest.skip(reason)
    chromium, driver = paths
    port = free_port()
    proc = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wd = WebDriver(port)
    try:
        wd.wait_ready()
        wd.start(chromium)
        yield wd
    finally:
        if wd.session:
            try:
                wd.s("DELETE", "")
            except OSError:
                pass
        proc.terminate()
        proc.wait(timeout=30)


def top_k_flags(emb, labels, query, k):
    """Correct flags of `query`'s k nearest other rows (inner product, ties to the lower index)."""
    scores = emb @ emb[query]
    order = sorted((i for i in range(len(emb)) if i != query), key=lambda i: (-scores[i], i))
    return [bool(labels[i] == labels[query]) for i in order[:k]]


def test_report_html_in_headless_chromium(tmp_path, browser):
    fashion_like(tmp_path / "fm", np.random.default_rng(1))
    run = tmp_path / "run"
    er.run(["train", "--data", tmp_path / "fm", "--out", run, "--dim", "16", "--m", "4",
            "--batch-size", "24", "--threads", "1", "--seed", "3", "--epochs", "1"])
    proc = er.run(["report", run, "--k", K, "--queries", SAMPLE, "--worst", WORST, "--threads", "1"])
    page = run / "report.html"
    assert str(page) in proc.stdout
    assert "no retrieval grid" not in proc.stderr, proc.stderr

    browser.s("POST", "/url", {"url": page.resolve().as_uri()})
    assert browser.js("return document.readyState") == "complete"
    images = browser.js("return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
    assert len(images) == 2 + (SAMPLE + WORST) * (1 + K)  # loss and retrieval charts, grid thumbnails
    broken = [alt for complete, width, alt in images if not (complete and width > 0)]
    assert not broken, f"broken images: {broken}"
    rows = browser.js("""return Array.from(document.querySelectorAll('tr.grid-row')).map(r => [
        r.dataset.group, r.querySelector('figure.query img').alt,
        Array.from(r.querySelectorAll('figure.hit')).map(f => f.classList.contains('correct')),
        Array.from(r.querySelectorAll('figure.hit img')).map(i => getComputedStyle(i).outlineColor)])""")
    assert [g for g, *_ in rows] == ["sample"] * SAMPLE + ["worst"] * WORST

    # The outlines say what an independent kNN over `embedrank embed`'s embeddings says.
    er.run(["embed", "--checkpoint", run, "--out", tmp_path / "emb", "--threads", "1"])
    emb = np.load(tmp_path / "emb" / "test_embeddings.npy").astype(np.float64)
    labels = np.load(tmp_path / "emb" / "test_labels.npy")
    flags = {q: top_k_flags(emb, labels, q, K) for q in range(len(emb))}
    shown = []
    for group, alt, correct, colours in rows:
        q = int(re.match(r"query #(\d+) · label (\d+)", alt).group(1))
        assert alt.endswith(f"label {labels[q]}"), alt
        assert correct == flags[q], (group, q)
        green, red = "rgb(26, 156, 26)", "rgb(221, 34, 34)"
        assert colours == [green if c else red for c in correct], colours
        shown.append(q)
    assert len(set(shown)) == SAMPLE + WORST
    outlined = [c for _, _, correct, _ in rows for c in correct]
    assert True in outlined and False in outlined
    others = [sum(flags[q]) for q in flags if q not in shown]
    assert max(sum(flags[q]) for q in shown[SAMPLE:]) <= min(others), "the worst rows are not the worst"

    shot = base64.b64decode(browser.s("GET", "/screenshot"))
    assert shot.startswith(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "report.png").write_bytes(shot)
    img = Image.open(io.BytesIO(shot)).convert("RGB")
    assert img.width >= 800 and img.height >= 600, img.size
    colours = img.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the screenshot is blank"


def test_report_html_without_a_checkpoint_still_renders(tmp_path, browser):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"epoch":1,"loss":0.9,"precision_at_1":0.5,"recall_at_k":{"1":0.5},"mean_average_precision_at_r":0.3}\n')
    proc = er.run(["report", run])
    assert "no retrieval grid" in proc.stderr and "checkpoint" in proc.stderr, proc.stderr
    browser.s("POST", "/url", {"url": (run / "report.html").resolve().as_uri()})
    assert browser.js("return document.querySelectorAll('tr.grid-row').length") == 0
    images = browser.js("return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    assert images == [True, True]
