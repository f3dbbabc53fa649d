"""Headless Chromium for the tests: Debian's /usr/bin/chromium driven by Playwright for Python.

Playwright's own browser download cannot work here, so it launches the system's chromium.
Locally a missing chromium or playwright skips with the reason; with CI set (.ci/run
installs both) it fails instead, so CI never passes by skipping a browser test.

`contrast_failures(page)` runs the WCAG contrast check in the page itself: every visible
text node's computed colour against its effective background (the first opaque
background-color up its ancestors, bgcolor on table cells included, blended where
translucent), as the browser computes them from the HTML as it is, not from our CSS.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

try:
    from playwright.sync_api import sync_playwright  # test-only dependency (the test extra)
except ImportError:  # pragma: no cover - reported by launched(): a skip locally, a failure in CI
    sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--mute-audio",
]
MIN_CONTRAST = 4.5  # WCAG 2.x level AA for normal text


def artifacts_dir() -> Path:
    """Where screenshots go: $TEST_ARTIFACTS, else tests/artifacts/ (gitignored). Not a
    NEWSLETTER_* name: conftest clears those for every test."""
    chosen = os.environ.get("TEST_ARTIFACTS")
    folder = Path(chosen) if chosen else Path(__file__).parent / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _missing(what: str, how: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed; CI must run the browser tests ({how})")
    pytest.skip(f"{what} is not installed ({how}); CI runs this test")


def chromium_path() -> str:
    """The system chromium, or skip (fail in CI)."""
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is None:
        _missing("chromium", "apt-get install -y chromium; .ci/run does it")
    assert path is not None
    return path


@contextmanager
def launched() -> Iterator[Any]:
    """A Playwright Browser on the system chromium; every request off this machine is refused."""
    if sync_playwright is None:
        _missing("playwright", "pip install -e '.[test]'")
    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_html(
    browser: Any, html: str, *, width: int, height: int = 900,
    files: Mapping[str, tuple[str, bytes]] | None = None,
) -> Any:
    """A new page of `width` CSS pixels showing `html`, with no network: data: URLs load, and
    `files` (URL -> content type and bytes) answers for the URLs it names; the rest fail."""
    page = browser.new_page(viewport={"width": width, "height": height})
    served = dict(files or {})

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith("data:"):
            request_route.continue_()
        elif url in served:
            content_type, body = served[url]
            request_route.fulfill(status=200, content_type=content_type, body=body)
        else:
            request_route.abort()

    page.route("**/*", route)
    page.set_content(html, wait_until="load")
    return page


# Runs in the page. Returns one entry per visible text node whose contrast is too low.
CONTRAST_JS = r"""
(minimum) => {
  function parse(value) {
    const m = value.match(/rgba?\(([^)]+)\)/);
    if (!m) { return null; }
    const parts = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return {r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1};
  }
  function over(top, bottom) {  // top composited over an opaque bottom
    const a = top.a;
    return {r: top.r * a + bottom.r * (1 - a), g: top.g * a + bottom.g * (1 - a),
            b: top.b * a + bottom.b * (1 - a), a: 1};
  }
  function background(element) {
    const layers = [];
    for (let el = element; el; el = el.parentElement) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) { break; } }
    }
    let result = {r: 255, g: 255, b: 255, a: 1};  // the canvas
    for (let i = layers.length - 1; i >= 0; i--) { result = over(layers[i], result); }
    return result;
  }
  function luminance(c) {
    const f = (v) => { v = v / 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  }
  function ratio(a, b) {
    const la = luminance(a), lb = luminance(b);
    return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
  }
  const failures = [];
  let checked = 0;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.replace(/[\s\u200b-\u200d\u2060\u00a0]+/g, " ").trim();
    const element = node.parentElement;
    if (!text || !element) { continue; }
    if (!element.checkVisibility({opacityProperty: true, visibilityProperty: true})) { continue; }
    const range = document.createRange();
    range.selectNodeContents(node);
    const box = range.getBoundingClientRect();
    if (box.width < 1 || box.height < 1) { continue; }
    const style = getComputedStyle(element);
    if (parseFloat(style.fontSize) < 2) { continue; }
    const back = background(element);
    const colour = over(parse(style.color), back);
    const value = ratio(colour, back);
    checked++;
    if (value < minimum) {
      failures.push({text: text.slice(0, 60), tag: element.tagName.toLowerCase(),
                     color: style.color, background: `rgb(${back.r}, ${back.g}, ${back.b})`,
                     ratio: Math.round(value * 100) / 100});
    }
  }
  return {checked: checked, failures: failures};
}
"""


def contrast_failures(page: Any) -> dict[str, Any]:
    """{checked: number of visible text nodes, failures: [...]} for the page's current content."""
    result: dict[str, Any] = page.evaluate(CONTRAST_JS, MIN_CONTRAST)
    return result
