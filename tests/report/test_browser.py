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


PROBE = """<script>
window.addEventListener("load", function () {
  var box = document.querySelector('div.chart[data-drawn="yes"]'), svg = box.querySelector("svg");
  var r = svg.getBoundingClientRect(), y = r.top + r.height / 2;
  function at(kind, x) { svg.dispatchEvent(new MouseEvent(kind, {clientX: x, clientY: y, bubbles: true})); }
  at("mousemove", r.left + r.width / 2);
  var tip = box.querySelector(".tip");
  document.body.dataset.hover = tip.hidden ? "hidden" : tip.textContent;
  var before = Array.from(svg.querySelectorAll("text.tick")).map(function (t) { return t.textContent; }).join("|");
  at("mousedown", r.left + r.width * 0.3); at("mousemove", r.left + r.width * 0.5); at("mouseup", r.left + r.width * 0.5);
  var zoomed = box.querySelector("svg");
  var after = Array.from(zoomed.querySelectorAll("text.tick")).map(function (t) { return t.textContent; }).join("|");
  document.body.dataset.zoomed = String(after !== before);
  zoomed.dispatchEvent(new MouseEvent("dblclick", {bubbles: true}));
  var reset = Array.from(box.querySelector("svg").querySelectorAll("text.tick")).map(function (t) { return t.textContent; }).join("|");
  document.body.dataset.reset = String(reset === before);
});
</script></body>"""


def test_hover_shows_values_and_dragging_zooms(single_run, tmp_path):
    path = build_run_page(single_run).write(tmp_path / "report.html")
    path.write_text(path.read_text().replace("</body>", PROBE))  # the probe runs after the page drew
    dom = headless(path, tmp_path / "profile", "--window-size=1280,2000", "--dump-dom").stdout
    body = dom[dom.index("<body"): dom.index(">", dom.index("<body"))]
    assert 'data-hover="' in body and 'data-hover="hidden"' not in body
    assert "training loss:" in body  # the tooltip names the series and its value
    assert 'data-zoomed="true"' in body and 'data-reset="true"' in body
