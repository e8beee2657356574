"""The HTML explorer in a real browser: headless Debian Chromium driven by Python playwright.

Every request other than the file itself is aborted and recorded (and the context is offline),
so these tests also show that the file needs no network. They need the operating system's
Chromium (``apt-get install chromium``) and the playwright package (``pip install
playwright``); playwright's own browser download is never used. Without either they skip.

The weights are synthetic (softmax of Gaussian logits with a pattern bias per head,
:func:`experiments.attention_explorer.synthetic_attention`): the trained models' attention comes
from the pretraining experiment. Render times are measured and printed (``-s``) and written to
``render_times.json`` in the test's temporary folder, never asserted: this machine is shared.
"""

from __future__ import annotations

import io
import json
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from experiments.attention_explorer import demo_sets, demo_trace, synthetic_attention
from seqjax.viz import Explorer, attention_html, explorer_html, write_html

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
ROOT = ".sqx-explorer"
API = f"document.querySelector('{ROOT}')._sqx"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the browser tests need the Python package playwright: "
                    "pip install playwright (the system Chromium is used; no browser download)")
    path = _chromium()
    if path is None:
        pytest.skip("the browser tests need the operating system's Chromium: "
                    "apt-get install -y chromium (Debian) or put chromium on PATH")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=path, args=ARGS)
        yield b
        b.close()


class Opened:
    """A page opened with the network off: console errors and every request recorded."""

    def __init__(self, browser, path: Path, *, wait: bool = True):
        self.url = path.resolve().as_uri()
        self.context = browser.new_context(offline=True, accept_downloads=True,
                                           viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.blocked: list[str] = []

        def route(r):
            if r.request.url == self.url:
                r.continue_()
            else:
                self.blocked.append(r.request.url)
                r.abort()

        self.context.route("**/*", route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        start = time.perf_counter()
        self.page.goto(self.url)
        if not wait:
            return
        self.page.wait_for_function(
            f"document.querySelector('{ROOT}') && "
            f"document.querySelector('{ROOT}').getAttribute('data-rendered') === 'true'",
            timeout=120_000)
        self.wall_s = time.perf_counter() - start
        # performance.now() counts from the navigation's start.
        self.render_ms = self.page.evaluate(f"{API}.renderedAt")

    def js(self, expr):
        return self.page.evaluate(expr)

    def canvas(self, cls: str) -> str:
        return self.js(f"document.querySelector('canvas.{cls}').toDataURL()")

    def pixels(self, cls: str) -> np.ndarray:
        png = self.page.locator(f"canvas.{cls}").screenshot()
        return _png_array(png)

    def clean(self):
        assert self.errors == [], self.errors
        assert self.blocked == [], self.blocked
        assert set(self.requests) <= {self.url}, self.requests
        assert self.js(f"{API}.errors") == []

    def close(self):
        self.context.close()


def _png_array(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)


@pytest.fixture(scope="module")
def small(browser, tmp_path_factory):
    """A file with the three demo sets (BERT-style pair, causal, cross) and an activation page."""
    path = write_html(tmp_path_factory.mktemp("viz") / "small.html",
                      explorer_html(demo_sets(3, 4), demo_trace(), title="browser test"))
    page = Opened(browser, path)
    yield page
    page.close()


@pytest.fixture(scope="module")
def times(tmp_path_factory):
    out = {}
    yield out
    path = tmp_path_factory.mktemp("timings") / "render_times.json"
    path.write_text(json.dumps(out, indent=2))
    print("\nrender times (loaded machine):", json.dumps(out, indent=2), "->", path)


def _set(opened, **state):
    opened.js(f"{API}.set({json.dumps(state)})")


def test_loads_offline_with_no_console_error_and_no_request(small):
    small.clean()
    assert small.js(f"{API}.state.view") == "head"
    assert small.page.locator("canvas.sqx-head-canvas").is_visible()


def test_layer_and_head_choice_change_the_drawing(small):
    _set(small, set=0, view="head", layer=0, hover=None)
    before = small.canvas("sqx-head-canvas")
    small.page.select_option("select.sqx-layer", "1")
    assert small.js(f"{API}.state.layer") == 1
    after_layer = small.canvas("sqx-head-canvas")
    assert after_layer != before
    small.page.dblclick(".sqx-swatch[data-head='2']")
    assert small.js(f"{API}.state.heads") == [False, False, True, False]
    only_two = small.canvas("sqx-head-canvas")
    assert only_two != after_layer
    small.page.click(".sqx-swatch[data-head='0']")
    small.page.wait_for_function(f"{API}.state.heads[0] === true")
    assert small.canvas("sqx-head-canvas") != only_two
    small.page.click("button:text('all')")
    small.clean()


def test_hovering_a_token_isolates_it(small):
    _set(small, set=0, view="head", layer=0, hover=None)
    small.page.click("button:text('all')")
    g = small.js(f"{API}.geometry().head")
    box = small.page.locator("canvas.sqx-head-canvas").bounding_box()
    full = small.pixels("sqx-head-canvas")
    row = 2
    small.page.mouse.move(box["x"] + g["x1"] - 20, box["y"] + g["top"] + (row + 0.5) * g["rowH"])
    small.page.wait_for_function(f"{API}.state.hover !== null")
    hover = small.js(f"{API}.state.hover")
    tokens = demo_sets(3, 4)["encoder self (synthetic)"].tokens
    assert hover["side"] == "query" and hover["index"] == g["queries"][row]
    assert hover["token"] == tokens[g["queries"][row]]
    isolated = small.pixels("sqx-head-canvas")
    # Fewer lines: the space between the columns is mostly white now.
    mid = slice(int(g["x1"]) + 5, int(g["x2"]) - 5)
    ink = lambda a: float((a[:, mid] < 250).any(axis=-1).mean())  # noqa: E731
    assert ink(isolated) < 0.5 * ink(full)
    assert "query" in small.page.locator(".sqx-status").first.inner_text()
    small.page.mouse.move(box["x"] + g["x1"] + 40, box["y"] + 2)  # off the tokens
    small.page.wait_for_function(f"{API}.state.hover === null")


def test_model_view_thumbnails_and_click_to_enlarge(small):
    _set(small, set=0, view="model", hover=None)
    small.page.wait_for_function(f"{API}.thumbsDone === true")
    thumbs = small.page.locator(".sqx-grid canvas")
    assert thumbs.count() == 3 * (4 + 1)  # layers x (heads + rollout)
    small.page.click(".sqx-grid canvas[data-layer='2'][data-head='1']")
    st = small.js(f"{API}.state")
    assert st["view"] == "matrix" and st["layer"] == 2 and st["heads"] == [False, True, False, False]
    small.page.click("button[data-view='model']")
    small.page.click(".sqx-grid canvas[data-layer='1'][data-head='-1']")
    st = small.js(f"{API}.state")
    assert st["view"] == "matrix" and st["layer"] == 1 and st["rollout"] is True
    _set(small, rollout=False)
    small.clean()


def test_rollout_and_sentence_filter_change_the_drawing(small):
    _set(small, set=0, view="matrix", layer=2, rollout=False, filter="all", hover=None)
    raw = small.canvas("sqx-matrix-canvas")
    small.page.check("input.sqx-rollout")
    assert small.js(f"{API}.state.rollout") is True
    assert small.canvas("sqx-matrix-canvas") != raw
    small.page.uncheck("input.sqx-rollout")
    options = small.page.locator("select.sqx-filter option").all_inner_texts()
    assert options == ["all", "A \u2192 A", "A \u2192 B", "B \u2192 A", "B \u2192 B"]
    small.page.select_option("select.sqx-filter", "0>1")
    g = small.js(f"{API}.geometry().matrix")
    seg = demo_sets(3, 4)["encoder self (synthetic)"].segment_ids
    assert all(seg[i] == 0 for i in g["queries"]) and all(seg[j] == 1 for j in g["keys"])
    assert len(g["queries"]) + len(g["keys"]) == len(seg)
    small.page.select_option("select.sqx-filter", "all")
    small.clean()


def test_causal_set_is_drawn_lower_triangular(small):
    _set(small, set=1, view="matrix", hover=None)
    small.page.click("button[data-view='matrix']")
    g = small.js(f"{API}.geometry().matrix")
    px = small.pixels("sqx-matrix-canvas")
    c = g["cell"]
    n = len(g["queries"])
    above = [px[int(g["top"] + (i + 0.5) * c), int(g["left"] + (j + 0.5) * c)]
             for i in range(n) for j in range(i + 1, n)]
    diag = [px[int(g["top"] + (i + 0.5) * c), int(g["left"] + (i + 0.5) * c)] for i in range(n)]
    assert np.all(np.asarray(above) >= 254)          # masked: nothing drawn
    assert np.mean(np.asarray(diag) < 250) > 0.5     # the diagonal carries weight
    small.clean()


def test_png_and_svg_export(small, tmp_path):
    for view, element in [("head", "line"), ("matrix", "rect"), ("model", "image")]:
        _set(small, set=0, view=view, layer=0, hover=None, rollout=False)
        if view == "model":
            small.page.wait_for_function(f"{API}.thumbsDone === true")
        with small.page.expect_download() as dl:
            small.page.click("button.sqx-png:visible")
        png = Path(dl.value.path()).read_bytes()
        assert png[:8] == PNG_MAGIC and len(png) > 2000, (view, len(png))
        assert dl.value.suggested_filename.endswith(".png")
        img = _png_array(png)
        assert img.std() > 5  # not blank
        with small.page.expect_download() as dl:
            small.page.click("button.sqx-svg:visible")
        svg = Path(dl.value.path()).read_text(encoding="utf-8")
        root = ET.fromstring(svg)
        assert root.tag == SVG + "svg"
        drawn = root.findall(f".//{SVG}{element}")
        texts = root.findall(f".//{SVG}text")
        assert len(drawn) > 10 and len(texts) > 3, (view, len(drawn), len(texts))
        (tmp_path / f"{view}.svg").write_text(svg, encoding="utf-8")
    small.clean()


def test_activation_page(small):
    small.page.click("button[data-page='activations']")
    spans = small.page.locator(".sqx-text span")
    assert spans.count() == len(demo_trace().tokens)
    colours = lambda: small.js("Array.from(document.querySelectorAll('.sqx-text span')).slice(0, 40).map(s => s.style.background).join('|')")  # noqa: E731,E501
    before = colours()
    small.page.fill("input.sqx-unit", "3")
    small.page.wait_for_function(f"{API}.state.unit === 3")
    assert colours() != before
    small.page.select_option("select.sqx-colorby", "1")  # the forget gate
    assert colours() != before
    spans.nth(5).hover()
    small.page.wait_for_function(f"{API}.state.hoverStep === 5")
    status = small.page.locator(".sqx-status").nth(1).inner_text()
    assert "step 5" in status and "forget" in status
    with small.page.expect_download() as dl:
        small.page.click("button.sqx-png:visible")
    assert Path(dl.value.path()).read_bytes()[:8] == PNG_MAGIC
    with small.page.expect_download() as dl:
        small.page.click("button.sqx-svg:visible")
    root = ET.fromstring(Path(dl.value.path()).read_text(encoding="utf-8"))
    assert root.tag == SVG + "svg"
    rects = root.findall(f".//{SVG}rect")[1:]  # after the background
    assert len(rects) == len(demo_trace().tokens)
    assert len({r.get("fill") for r in rects}) > 5  # coloured by the values
    small.page.click("button[data-page='attention']")
    small.clean()


def test_screenshot_is_not_blank(small, tmp_path):
    _set(small, page="attention", set=0, view="head", layer=0, hover=None)
    path = tmp_path / "explorer.png"
    small.page.screenshot(path=str(path))
    img = _png_array(path.read_bytes())
    assert img.shape[0] > 100 and img.std() > 10
    # Colour, not only text: the head lines use the head palette.
    assert (np.ptp(img, axis=-1) > 60).mean() > 0.001


def test_two_explorers_in_one_page_as_notebooks_show_them(browser, tmp_path):
    """Two iframes (Explorer._repr_html_) and two inline copies (scripts re-run, as JupyterLab
    does for trusted output) in one page: each renders on its own, no error, no request."""
    a = attention_html(synthetic_attention(2, 2, 6, seed=1), list("abcdef"))
    b = attention_html(synthetic_attention(2, 3, 5, seed=2), list("vwxyz"))
    host = tmp_path / "host.html"
    inline = json.dumps([a, b]).replace("</", "<\\/")
    host.write_text(
        "<!DOCTYPE html><html><body>"
        + Explorer(a, height=300)._repr_html_() + Explorer(b, height=300)._repr_html_()
        + "<div id='cells'></div><script>"
        "const docs = " + inline + ";"
        "for (const d of docs) { const cell = document.createElement('div');"
        " cell.innerHTML = d; document.getElementById('cells').appendChild(cell);"
        " for (const old of cell.querySelectorAll('script')) {"
        "  const s = document.createElement('script');"
        "  for (const at of old.attributes) s.setAttribute(at.name, at.value);"
        "  s.textContent = old.textContent; old.replaceWith(s); } }"
        "</script></body></html>", encoding="utf-8")
    opened = Opened(browser, host, wait=False)
    try:
        page = opened.page
        page.wait_for_function(
            "Array.from(document.querySelectorAll('#cells .sqx-explorer'))"
            ".every(e => e.getAttribute('data-rendered') === 'true')", timeout=60_000)
        heads = page.evaluate(
            "Array.from(document.querySelectorAll('#cells .sqx-explorer')).map(e => e._sqx.state.heads.length)")
        assert heads == [2, 3]
        for i, n in enumerate([2, 3]):
            frame = page.frames[i + 1]
            frame.wait_for_function(
                "document.querySelector('.sqx-explorer') && "
                "document.querySelector('.sqx-explorer').getAttribute('data-rendered') === 'true'",
                timeout=60_000)
            assert frame.evaluate("document.querySelector('.sqx-explorer')._sqx.state.heads.length") == n
        assert opened.errors == [] and opened.blocked == []
        assert {u for u in opened.requests if not u.startswith("about:")} <= {opened.url}
    finally:
        opened.close()


def _timed_file(browser, tmp_path, times, name, layers, heads, t, causal=False):
    w = synthetic_attention(layers, heads, t, causal=causal).astype(np.float32)
    tokens = [f"tok{i}" for i in range(t)]
    path = write_html(tmp_path / f"{name}.html",
                      attention_html(w, tokens, kind="causal" if causal else "encoder"))
    del w
    opened = Opened(browser, path)
    try:
        opened.clean()
        size = path.stat().st_size
        opened.js(f"{API}.set({{view: 'model'}})")
        t0 = time.perf_counter()
        opened.page.wait_for_function(f"{API}.thumbsDone === true", timeout=300_000)
        times[name] = {"bytes": size, "MB": round(size / 1e6, 2), "levels": None,
                       "render_ms": round(opened.render_ms), "decoded_ms": round(opened.js(f"{API}.decodedAt")),
                       "model_view_all_thumbnails_s": round(time.perf_counter() - t0, 2)}
        times[name]["levels"] = json.loads(opened.js(
            f"document.getElementById(document.querySelector('{ROOT}').id + '-data').textContent"
        ))["levels"] if size < 20e6 else None
        return times[name]
    finally:
        opened.close()


def test_512_token_page(browser, tmp_path, times):
    out = _timed_file(browser, tmp_path, times, "2x4x512", 2, 4, 512)
    assert out["bytes"] < 5e6


def test_12x12x256_file_is_under_5_mb(browser, tmp_path, times):
    out = _timed_file(browser, tmp_path, times, "12x12x256", 12, 12, 256)
    assert out["bytes"] < 5e6
    assert out["levels"] >= 15


@pytest.mark.slow
def test_24x16x512_page(browser, tmp_path, times):
    _timed_file(browser, tmp_path, times, "24x16x512", 24, 16, 512)
    _timed_file(browser, tmp_path, times, "24x16x512 causal", 24, 16, 512, causal=True)


def test_the_network_guard_catches_a_request(browser, tmp_path):
    """The guard the other tests rely on: a page that loads a remote script is caught."""
    path = tmp_path / "leaky.html"
    path.write_text("<!DOCTYPE html><html><body><script src='https://cdn.example.org/d3.js'>"
                    "</script></body></html>", encoding="utf-8")
    opened = Opened(browser, path, wait=False)
    try:
        opened.page.wait_for_load_state("load")
        assert opened.blocked == ["https://cdn.example.org/d3.js"]
        with pytest.raises(AssertionError):
            opened.clean()
    finally:
        opened.close()
