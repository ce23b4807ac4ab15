"""Headless Chromium for the report tests: where it is, how to run it, what the DOM says."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # screenshots; git ignores it
requires_browser = pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine (apt-get "
                                      "install chromium; .ci/run does it where apt-get is available)")


def headless(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess:
    """Run the browser headless on a file: no sandbox (CI runs as root), a profile of its own."""
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000", *flags, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def dom_errors(dom: str) -> list[str]:
    """The errors the page's script wrote into #rnnscope-errors."""
    return re.findall(r'<div class="js-error">(.*?)</div>', dom)


def drawn(dom: str) -> tuple[int, int] | None:
    """(charts on the page, charts drawn) as the page's script left them on <body>."""
    body = re.search(r"<body[^>]*>", dom)
    charts = re.search(r'data-charts="(\d+)"', body.group(0)) if body else None
    done = re.search(r'data-drawn="(\d+)"', body.group(0)) if body else None
    return (int(charts.group(1)), int(done.group(1))) if charts and done else None


def check_in_browser(page, tmp_path: Path, name: str) -> str:
    """Open `page` headless: no script error, every chart of every section drawn as an SVG; keep a
    screenshot as test-artifacts/<name>.png. Returns the DOM."""
    path = page.write(tmp_path / f"{name}.html")
    dom = headless(path, tmp_path / "profile", "--dump-dom").stdout
    assert "<body" in dom, "the browser printed no DOM"
    assert dom_errors(dom) == []
    assert drawn(dom) == (len(page.charts), len(page.charts)), "the page's script did not draw every chart"
    for section in page.sections:  # each one in the DOM, and each of its charts holds an SVG
        html = dom[dom.index(f'<section id="{section.key}"'):]
        html = html[: html.index("</section>")]
        assert html.count('data-drawn="yes"') == html.count('class="chart"')
        assert html.count("<svg") >= html.count('class="chart"')
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    headless(path, tmp_path / "profile", "--window-size=1280,2600", f"--screenshot={shot}", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return dom
