"""The report opened in a real headless browser: every section and chart drawn, no script errors.

Chromium comes from the OS packages (.ci/run installs it where apt-get exists); without it the
test is skipped and says so. The screenshots are kept in test-artifacts/ (git ignores it).
"""

from __future__ import annotations

import pytest
from report_browser import check_in_browser, drawn, headless, requires_browser

from rnnscope.report.html import Page
from rnnscope.report.run_page import build_run_page

pytestmark = requires_browser


@pytest.mark.parametrize("run", ["single_run", "pipeline_run"])
def test_every_section_renders_without_errors(run, request, tmp_path):
    page = build_run_page(request.getfixturevalue(run))
    assert len(page.charts) > 0
    check_in_browser(page, tmp_path, f"report_{run}")


def test_a_chart_that_fails_to_draw_shows_in_the_dom(tmp_path):
    """The check above can fail: a broken chart writes its error into the page."""
    page = Page("broken")
    page.section("s", "S").chart({"type": "no-such-kind"})
    dom = headless(page.write(tmp_path / "broken.html"), tmp_path / "profile", "--dump-dom").stdout
    assert drawn(dom) == (1, 0)
    assert "unknown chart type no-such-kind" in dom
