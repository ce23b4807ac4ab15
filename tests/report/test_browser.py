"""The report opened in a real headless browser: every section and chart drawn, no script errors.

Chromium comes from the OS packages (.ci/run installs it where apt-get exists); without it the
test is skipped and says so. The screenshots are kept in test-artifacts/ (git ignores it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rnnscope.report.run_page import build_run_page

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium on this machine (apt-get install "
                                "chromium; .ci/run does it where apt-get is available)")


def headless(page: Path, profile: Path, *flags: str) -> subprocess.CompletedProcess:
    """Run the browser headless on a file: no sandbox (CI runs as root), a profile of its own."""
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000", *flags, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("run", ["single_run", "pipeline_run"])
def test_every_section_renders_without_errors(run, request, tmp_path):
    run_dir = request.getfixturevalue(run)
    page = build_run_page(run_dir)
    path = page.write(tmp_path / "report.html")
    dom = headless(path, tmp_path / "profile", "--dump-dom").stdout
    assert "<body" in dom, "the browser printed no DOM"
    errors = re.findall(r'<div class="js-error">(.*?)</div>', dom)
    assert errors == [], errors
    body = re.search(r"<body[^>]*>", dom).group(0)
    drawn = re.search(r'data-drawn="(\d+)"', body)
    assert drawn is not None, "the page's script did not run"
    assert int(drawn.group(1)) == len(page.charts) > 0
    for section in page.sections:  # each one in the DOM, and each of its charts holds an SVG
        html = dom[dom.index(f'<section id="{section.key}"'):]
        html = html[: html.index("</section>")]
        assert html.count('data-drawn="yes"') == html.count('class="chart"')
        assert html.count("<svg") >= html.count('class="chart"')

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"report_{run}.png"
    shot.unlink(missing_ok=True)
    headless(path, tmp_path / "profile", "--window-size=1280,2600", f"--screenshot={shot}", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_chart_that_fails_to_draw_shows_in_the_dom(tmp_path):
    """The check above can fail: a broken chart writes its error into the page."""
    from rnnscope.report.html import Page

    page = Page("broken")
    page.section("s", "S").chart({"type": "no-such-kind"})
    dom = headless(page.write(tmp_path / "broken.html"), tmp_path / "profile", "--dump-dom").stdout
    assert 'data-drawn="0"' in dom
    assert "unknown chart type no-such-kind" in dom
