"""One self-contained HTML page: sections of text, tables and charts, with nothing fetched.

    page = Page("run /tmp/run1", "sine · 1×16 sigmoid · 200 steps")
    part = page.section("loss", "Loss", "Training loss at every metrics line.")
    part.chart({"type": "line", "series": [{"name": "loss", "x": [...], "y": [...]}], "log_y": True})
    part.table(["key", "value"], [["lr", "0.15"]])
    page.write("report.html")

Charts are data (a JSON block in the page) drawn by `page.js`, a small SVG renderer inlined in
the page: hover shows values, dragging zooms on x, a double-click zooms out. Colours follow the
reader's light or dark setting. Errors while drawing are written into the page (#rnnscope-errors),
so that a headless browser's DOM shows them.
"""

from __future__ import annotations

import base64
import html
import json
import math
from importlib import resources
from pathlib import Path

from rnnscope.errors import UserError

CSS = """
:root { color-scheme: light dark; --bg: #ffffff; --fg: #1d2128; --muted: #5d6470; --line: #d5d9e0;
  --panel: #f5f7fa; --accent: #4C72B0; --warn: #b3261e; --tip: #ffffffee; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #15181d; --fg: #e4e7ec; --muted: #9aa3ae; --line: #3a404a; --panel: #1e232a;
    --accent: #7aa2e0; --warn: #ff8a80; --tip: #1e232aee; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { padding: 18px 28px 10px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 20px; }
header p { margin: 0; color: var(--muted); }
nav { padding: 6px 28px; border-bottom: 1px solid var(--line); font-size: 13px; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; }
main { padding: 8px 28px 40px; max-width: 1180px; }
section { margin-top: 22px; }
section h2 { font-size: 17px; margin: 0 0 4px; border-bottom: 1px solid var(--line); padding-bottom: 3px; }
section h3 { font-size: 14px; margin: 14px 0 2px; }
.intro, .note { color: var(--muted); margin: 4px 0 8px; max-width: 900px; }
.note.warn { color: var(--warn); }
.tables { display: flex; flex-wrap: wrap; gap: 0 18px; align-items: flex-start; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: var(--panel); }
caption { text-align: left; font-weight: 600; padding: 2px 0; }
td:first-child, th:first-child { text-align: left; }
.chart { position: relative; margin: 6px 0 4px; user-select: none; }
.chart svg { display: block; width: 100%; overflow: hidden; }
.chart .grid { stroke: var(--line); stroke-width: 0.6; }
.chart .frame { fill: none; stroke: var(--muted); stroke-width: 0.8; }
.chart .tick { fill: var(--muted); font-size: 11px; }
.chart .label { fill: var(--fg); font-size: 12px; }
.chart .mark { fill: var(--fg); font-size: 14px; }
.chart .hline { stroke: var(--warn); stroke-dasharray: 4,4; stroke-width: 1.2; }
.chart .cursor { stroke: var(--muted); stroke-width: 0.7; }
.chart .band { fill: var(--warn); }
.chart .brush { fill: var(--accent); opacity: 0.15; }
.chart .none-bg { fill: var(--panel); } .chart .none-line { stroke: var(--muted); stroke-width: 0.7; }
.chart .tip { position: absolute; pointer-events: none; background: var(--tip); border: 1px solid var(--line);
  padding: 4px 8px; font-size: 12px; border-radius: 4px; max-width: 260px; }
.legend { font-size: 12px; color: var(--muted); margin-left: 64px; }
.key { margin-right: 12px; white-space: nowrap; }
.key i, .tip i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
.key i.dashed { border-top: 2px dashed var(--warn); height: 0; }
.caption { color: var(--muted); font-size: 12px; margin: 0 0 10px 64px; }
img.figure { max-width: 100%; background: #fff; border-radius: 4px; }
#rnnscope-errors { color: var(--warn); border: 1px solid var(--warn); padding: 6px 10px; margin: 10px 28px; }
"""


def compact(value):
    """Floats to 5 significant digits (the page's size), non-finite ones to null; recursively."""
    if isinstance(value, float):
        return float(f"{value:.5g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: compact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [compact(v) for v in value]
    return value


class Section:
    """One titled part of the page; what is added to it appears in order."""

    def __init__(self, page: Page, key: str, title: str, intro: str) -> None:
        self.page, self.key, self.title = page, key, title
        self.parts: list[str] = [f'<p class="intro">{intro}</p>'] if intro else []

    def text(self, markup: str, css: str = "note") -> Section:
        """A paragraph of HTML (the caller escapes what came from outside)."""
        self.parts.append(f'<p class="{css}">{markup}</p>')
        return self

    def heading(self, title: str) -> Section:
        """A sub-heading inside the section."""
        self.parts.append(f"<h3>{html.escape(title)}</h3>")
        return self

    def chart(self, spec: dict, caption: str = "") -> Section:
        """A chart drawn by page.js from `spec` (see page.js for the kinds and their keys)."""
        key = f"c{len(self.page.charts)}"
        self.page.charts[key] = compact(spec)
        self.parts.append(f'<div class="chart" data-chart="{key}"></div>')
        if caption:
            self.parts.append(f'<p class="caption">{caption}</p>')
        return self

    def table(self, headers: list[str], rows: list[list], caption: str = "") -> Section:
        """A plain table; cells are escaped."""
        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                       for row in rows)
        cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
        self.parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def tables(self, tables: list[tuple[str, list[str], list[list]]]) -> Section:
        """Several small tables side by side: (caption, headers, rows) each."""
        self.parts.append('<div class="tables">')
        for caption, headers, rows in tables:
            self.table(headers, rows, caption)
        self.parts.append("</div>")
        return self

    def image(self, png: bytes, alt: str) -> Section:
        """A PNG, inlined as a data URL."""
        data = base64.b64encode(png).decode("ascii")
        self.parts.append(f'<img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')
        return self

    def render(self) -> str:
        return (f'<section id="{self.key}" class="report-section"><h2>{html.escape(self.title)}</h2>'
                + "".join(self.parts) + "</section>")


class Page:
    """A report page: a title, sections, and the data of its charts."""

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title, self.subtitle = title, subtitle
        self.sections: list[Section] = []
        self.charts: dict[str, dict] = {}

    def section(self, key: str, title: str, intro: str = "") -> Section:
        """Add a section (its `key` is the HTML id, used by the navigation and the tests)."""
        part = Section(self, key, title, intro)
        self.sections.append(part)
        return part

    def render(self) -> str:
        """The whole page as one HTML string: CSS, data and script inline."""
        script = resources.files("rnnscope.report").joinpath("page.js").read_text(encoding="utf-8")
        data = json.dumps({"charts": self.charts}, separators=(",", ":"), allow_nan=False)
        data = data.replace("</", "<\\/")  # a "</script>" inside a string must not end the block
        nav = "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in self.sections)
        body = "".join(s.render() for s in self.sections)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{html.escape(self.title)}</h1><p>{html.escape(self.subtitle)}</p></header>"
            f"<nav>{nav}</nav><div id=\"rnnscope-errors\" hidden></div><main>{body}</main>"
            f"<script type=\"application/json\" id=\"rnnscope-data\">{data}</script>"
            f"<script>{script}</script></body></html>\n")

    def write(self, path: str | Path) -> Path:
        """Write the page; a path that cannot be written is the user's to fix."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(self.render(), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write the report to {path} ({exc.strerror}); "
                            "choose a writable path with -o") from None
        return path
