// rnnscope report: a small SVG renderer for the charts of one page (no library, no network).
// The page holds its data in <script type="application/json" id="rnnscope-data">; every
// <div class="chart" data-chart="ID"> is drawn from data.charts[ID]. Kinds:
//   line      series [{name, x, y, dash, kind: "line"|"points"|"bars", axis: "right"}], log_x, log_y,
//             int_x, int_y (integer ticks), hlines [{y, label}], bands [{x0, x1, opacity}],
//             marks [{x, y, label}], x_ticks (where to put them), categories (names of x = 0, 1, …), x_label, y_label, y2_label
//   heatmap   x (columns), y (rows), z[row][col] (null = no value), log, z_label, note
//   timeline  tracks [name], slices [[track, start_s, end_s, label, group, info]], groups {name: colour}
// Drag across a line chart or a timeline to zoom on x; double-click to zoom out. Hover shows values.
// Errors are written into the page (#rnnscope-errors) so that a headless browser's DOM shows them.
(function () {
  "use strict";
  var PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3",
                 "#8C8C8C", "#CCB974", "#64B5CD"];
  var NS = "http://www.w3.org/2000/svg";
  var M = {left: 64, right: 64, top: 14, bottom: 42};

  function reportError(message) {
    var box = document.getElementById("rnnscope-errors");
    if (!box) { return; }
    box.hidden = false;
    var line = document.createElement("div");
    line.className = "js-error";
    line.textContent = String(message);
    box.appendChild(line);
  }
  window.addEventListener("error", function (e) { reportError(e.message + " (" + e.lineno + ")"); });
  var consoleError = console.error;
  console.error = function () {
    reportError(Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };

  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c];
    });
  }
  function fmt(v) {
    if (v === null || v === undefined || (typeof v === "number" && !isFinite(v))) { return "—"; }
    if (typeof v !== "number") { return String(v); }
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) { return Number(v.toPrecision(3)).toExponential().replace("e+", "e"); }
    return Number(v.toPrecision(4)).toString();
  }
  function finite(v, log) { return typeof v === "number" && isFinite(v) && (!log || v > 0); }

  // -- scales and ticks ------------------------------------------------------------------------
  function scale(lo, hi, a, b, log) {
    var f = log ? Math.log10 : function (v) { return v; };
    var l = f(lo), h = f(hi);
    if (h === l) { h = l + 1; l = l - (log ? 0 : 1); }
    var s = function (v) { return a + (f(v) - l) / (h - l) * (b - a); };
    s.invert = function (p) {
      var u = l + (p - a) / (b - a) * (h - l);
      return log ? Math.pow(10, u) : u;
    };
    return s;
  }
  function ticks(lo, hi, log, integer) {
    var out = [], i;
    if (log) {  // 1, 2, 5 in each decade; only the powers of ten when that is too many
      [[1, 2, 5], [1]].forEach(function (mantissas) {
        if (out.length && out.length <= 8) { return; }
        out = [];
        for (i = Math.floor(Math.log10(lo)); i <= Math.ceil(Math.log10(hi)); i++) {
          mantissas.forEach(function (m) {
            var v = m * Math.pow(10, i);
            if (v >= lo * 0.999 && v <= hi * 1.001) { out.push(v); }
          });
        }
      });
      if (out.length > 8) {
        var step = Math.ceil(out.length / 7);
        out = out.filter(function (_, k) { return k % step === 0; });
      }
      if (out.length >= 2) { return out; }
      out = [];
    }
    var span = hi - lo || 1, raw = span / 5, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var unit = [1, 2, 5, 10].map(function (m) { return m * mag; }).filter(function (u) { return u >= raw; })[0];
    if (integer) { unit = Math.max(1, Math.round(unit)); }
    for (var t = Math.ceil(lo / unit) * unit; t <= hi + unit * 1e-9; t += unit) { out.push(Number(t.toPrecision(12))); }
    return out;
  }
  function extent(values, log) {
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (v) { if (finite(v, log)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    if (lo === Infinity) { return log ? [1, 10] : [0, 1]; }
    if (lo === hi) { var d = Math.abs(lo) * 0.1 || 1; return log ? [lo / 2, hi * 2] : [lo - d, hi + d]; }
    if (log) { return [lo / 1.2, hi * 1.2]; }
    var pad = (hi - lo) * 0.04;
    return [lo - pad, hi + pad];
  }

  // -- the pieces of an SVG --------------------------------------------------------------------
  function axes(w, h, xs, ys, spec, y2) {
    var out = [], xt = spec.x_ticks ? spec.x_ticks.filter(function (t) { return t >= spec.view[0] && t <= spec.view[1]; })
      : ticks(spec.view[0], spec.view[1], spec.log_x, spec.int_x);
    var yt = ys ? ticks(ys.lo, ys.hi, spec.log_y, spec.int_y) : [];
    xt.forEach(function (t) {
      var x = xs(t);
      out.push('<line class="grid" x1="' + x + '" x2="' + x + '" y1="' + M.top + '" y2="' + (h - M.bottom) + '"/>');
      var label = spec.categories ? spec.categories[t] : fmt(t);
      if (label === undefined) { return; }
      out.push('<text class="tick" x="' + x + '" y="' + (h - M.bottom + 14) + '" text-anchor="middle">' + esc(label) + "</text>");
    });
    yt.forEach(function (t) {
      var y = ys(t);
      out.push('<line class="grid" x1="' + M.left + '" x2="' + (w - M.right) + '" y1="' + y + '" y2="' + y + '"/>');
      out.push('<text class="tick" x="' + (M.left - 5) + '" y="' + (y + 4) + '" text-anchor="end">' + esc(fmt(t)) + "</text>");
    });
    if (y2) {
      ticks(y2.lo, y2.hi, false, false).forEach(function (t) {
        out.push('<text class="tick" x="' + (w - M.right + 5) + '" y="' + (y2(t) + 4) + '">' + esc(fmt(t)) + "</text>");
      });
      out.push('<text class="label" transform="translate(' + (w - 12) + "," + (h / 2) + ') rotate(90)" text-anchor="middle">' + esc(spec.y2_label || "") + "</text>");
    }
    out.push('<rect class="frame" x="' + M.left + '" y="' + M.top + '" width="' + (w - M.left - M.right) + '" height="' + (h - M.top - M.bottom) + '"/>');
    out.push('<text class="label" x="' + ((M.left + w - M.right) / 2) + '" y="' + (h - 6) + '" text-anchor="middle">' + esc(spec.x_label || "") + "</text>");
    out.push('<text class="label" transform="translate(14,' + (h / 2) + ') rotate(-90)" text-anchor="middle">' + esc(spec.y_label || "") + "</text>");
    return out.join("");
  }

  function legend(box, spec) {
    var items = (spec.series || []).map(function (s, k) {
      var c = s.color || PALETTE[k % PALETTE.length];
      return '<span class="key"><i style="background:' + c + '"></i>' + esc(s.name) + "</span>";
    });
    (spec.hlines || []).forEach(function (l) { items.push('<span class="key"><i class="dashed"></i>' + esc(l.label) + "</span>"); });
    var div = document.createElement("div");
    div.className = "legend";
    div.innerHTML = items.join("");
    box.appendChild(div);
  }

  // -- line charts -----------------------------------------------------------------------------
  function drawLine(box, spec) {
    var w = box.clientWidth || 720, h = spec.height || 280;
    var xsAll = [], left = [], right = [];
    spec.series.forEach(function (s) {
      xsAll = xsAll.concat(s.x);
      (s.axis === "right" ? right : left).push.apply(s.axis === "right" ? right : left, s.y);
    });
    (spec.hlines || []).forEach(function (l) { left.push(l.y); });
    if (spec.categories) { spec.full = [-0.5, spec.categories.length - 0.5]; spec.int_x = true; }
    if (!spec.full) { spec.full = extent(xsAll, spec.log_x); if (!spec.log_x && spec.int_x) { spec.full = [Math.min.apply(null, xsAll), Math.max.apply(null, xsAll)]; } }
    if (!spec.view) { spec.view = spec.full.slice(); }
    var xs = scale(spec.view[0], spec.view[1], M.left, w - M.right, spec.log_x);
    var inView = function (s, side) {
      var v = [];
      s.forEach(function (ser) { if ((ser.axis === "right") === side) { ser.x.forEach(function (x, i) { if (x >= spec.view[0] && x <= spec.view[1]) { v.push(ser.y[i]); } }); } });
      return v;
    };
    var ly = extent(inView(spec.series, false).concat((spec.hlines || []).map(function (l) { return l.y; })), spec.log_y);
    if (spec.y_min !== undefined) { ly[0] = spec.y_min; }
    if (spec.y_max !== undefined) { ly[1] = spec.y_max; }
    var ys = scale(ly[0], ly[1], h - M.bottom, M.top, spec.log_y); ys.lo = ly[0]; ys.hi = ly[1];
    var y2 = null;
    if (right.length) {
      var ry = extent(inView(spec.series, true), false); ry[0] = Math.min(0, ry[0]);
      y2 = scale(ry[0], ry[1], h - M.bottom, M.top, false); y2.lo = ry[0]; y2.hi = ry[1];
    }
    var parts = ['<svg xmlns="' + NS + '" width="' + w + '" height="' + h + '">', axes(w, h, xs, ys, spec, y2)];
    parts.push('<clipPath id="clip-' + box.dataset.chart + '"><rect x="' + M.left + '" y="' + M.top + '" width="' + (w - M.left - M.right) + '" height="' + (h - M.top - M.bottom) + '"/></clipPath><g clip-path="url(#clip-' + box.dataset.chart + ')">');
    (spec.bands || []).forEach(function (b) {
      var x0 = xs(Math.max(b.x0, spec.view[0])), x1 = xs(Math.min(b.x1, spec.view[1]));
      if (x1 > x0) { parts.push('<rect class="band" x="' + x0 + '" y="' + M.top + '" width="' + (x1 - x0) + '" height="' + (h - M.top - M.bottom) + '" opacity="' + (b.opacity || 0.1) + '"/>'); }
    });
    spec.series.forEach(function (s, k) {
      var c = s.color || PALETTE[k % PALETTE.length], sy = s.axis === "right" ? y2 : ys;
      var logY = s.axis === "right" ? false : spec.log_y;
      if (s.kind === "bars") {
        var bw = s.width || (s.x.length > 1 ? Math.abs(s.x[1] - s.x[0]) : 1);
        s.x.forEach(function (x, i) {
          if (!finite(s.y[i], logY)) { return; }
          var x0 = xs(x), x1 = xs(x + bw), y0 = sy(s.y[i]), base = sy(logY ? sy.lo : Math.max(sy.lo, 0));
          parts.push('<rect x="' + Math.min(x0, x1) + '" y="' + Math.min(y0, base) + '" width="' + Math.max(1, Math.abs(x1 - x0) - 0.5) + '" height="' + Math.abs(base - y0) + '" fill="' + c + '" opacity="' + (s.opacity || 0.45) + '"/>');
        });
        return;
      }
      var d = "", pen = false;
      s.x.forEach(function (x, i) {
        if (!finite(s.y[i], logY) || !finite(x, spec.log_x)) { pen = false; return; }
        d += (pen ? "L" : "M") + xs(x).toFixed(1) + "," + sy(s.y[i]).toFixed(1);
        pen = true;
      });
      if (s.kind !== "points") {
        parts.push('<path d="' + d + '" fill="none" stroke="' + c + '" stroke-width="' + (s.width || 1.6) + '"' + (s.dash ? ' stroke-dasharray="5,4"' : "") + "/>");
      }
      if (s.kind === "points" || s.markers) {
        s.x.forEach(function (x, i) {
          if (finite(s.y[i], logY)) { parts.push('<circle cx="' + xs(x) + '" cy="' + sy(s.y[i]) + '" r="3" fill="' + c + '"/>'); }
        });
      }
    });
    (spec.hlines || []).forEach(function (l) {
      var y = ys(l.y);
      parts.push('<line class="hline" x1="' + M.left + '" x2="' + (w - M.right) + '" y1="' + y + '" y2="' + y + '"/>');
      parts.push('<text class="tick" x="' + (w - M.right - 4) + '" y="' + (y - 4) + '" text-anchor="end">' + esc(l.label) + "</text>");
    });
    parts.push("</g>");
    (spec.marks || []).forEach(function (m) {  // outside the clip: a mark on the top point stays visible
      if (m.x < spec.view[0] || m.x > spec.view[1]) { return; }
      parts.push('<text class="mark" x="' + xs(m.x) + '" y="' + Math.max(ys(m.y) - 6, 12) + '" text-anchor="middle">' + esc(m.label) + "</text>");
    });
    parts.push('<line class="cursor" x1="-9" x2="-9" y1="' + M.top + '" y2="' + (h - M.bottom) + '"/><rect class="brush" x="0" y="' + M.top + '" width="0" height="' + (h - M.top - M.bottom) + '"/></svg>');
    box.querySelector(".plot").innerHTML = parts.join("");
    interact(box, spec, xs, w, h, function (x) { return lineTip(spec, x); });
  }

  function lineTip(spec, x) {
    var rows = [];
    spec.series.forEach(function (s, k) {
      if (!s.x.length) { return; }
      var best = 0;
      s.x.forEach(function (v, i) { if (Math.abs(v - x) < Math.abs(s.x[best] - x)) { best = i; } });
      rows.push('<i style="background:' + (s.color || PALETTE[k % PALETTE.length]) + '"></i>' + esc(s.name) + ": <b>" + esc(fmt(s.y[best])) + "</b> at " + esc(fmt(s.x[best])));
    });
    return rows.join("<br>");
  }

  // hover: a cursor line and a tooltip; drag: zoom on x; double-click: zoom out
  function interact(box, spec, xs, w, h, tip) {
    var svg = box.querySelector("svg"), cursor = svg.querySelector(".cursor"), brush = svg.querySelector(".brush");
    var tooltip = box.querySelector(".tip"), start = null;
    function px(e) { var r = svg.getBoundingClientRect(); return {x: e.clientX - r.left, y: e.clientY - r.top}; }
    svg.addEventListener("mousemove", function (e) {
      var p = px(e);
      if (p.x < M.left || p.x > w - M.right) { tooltip.hidden = true; return; }
      cursor.setAttribute("x1", p.x); cursor.setAttribute("x2", p.x);
      if (start !== null) {
        brush.setAttribute("x", Math.min(start, p.x)); brush.setAttribute("width", Math.abs(p.x - start));
      }
      var html = tip(xs.invert(p.x), p);
      if (!html) { tooltip.hidden = true; return; }
      tooltip.innerHTML = html; tooltip.hidden = false;
      tooltip.style.left = Math.min(p.x + 14, w - 260) + "px"; tooltip.style.top = (p.y + 10) + "px";
    });
    svg.addEventListener("mouseleave", function () { tooltip.hidden = true; start = null; brush.setAttribute("width", 0); });
    svg.addEventListener("mousedown", function (e) { start = px(e).x; e.preventDefault(); });
    svg.addEventListener("mouseup", function (e) {
      var end = px(e).x;
      if (start !== null && Math.abs(end - start) > 6) {
        var a = xs.invert(Math.min(start, end)), b = xs.invert(Math.max(start, end));
        spec.view = [a, b];
        draw(box);
      }
      start = null; brush.setAttribute("width", 0);
    });
    svg.addEventListener("dblclick", function () { spec.view = spec.full.slice(); draw(box); });
  }

  // -- heat maps -------------------------------------------------------------------------------
  function colour(u) {  // u in [0, 1]: dark blue → teal → yellow, readable on light and dark
    var stops = [[48, 18, 59], [40, 120, 190], [32, 180, 140], [170, 220, 60], [250, 230, 40]];
    u = Math.max(0, Math.min(1, u)) * (stops.length - 1);
    var i = Math.min(Math.floor(u), stops.length - 2), f = u - i, a = stops[i], b = stops[i + 1];
    return "rgb(" + [0, 1, 2].map(function (k) { return Math.round(a[k] + (b[k] - a[k]) * f); }).join(",") + ")";
  }
  function drawHeatmap(box, spec) {
    var w = box.clientWidth || 720, h = spec.height || 300, cols = spec.x.length, rows = spec.y.length;
    var R = 100;  // room for the colour bar and its labels
    var values = [];
    spec.z.forEach(function (r) { r.forEach(function (v) { if (finite(v, spec.log)) { values.push(spec.log ? Math.log10(v) : v); } }); });
    var lo = Math.min.apply(null, values.length ? values : [0]), hi = Math.max.apply(null, values.length ? values : [1]);
    if (hi === lo) { hi = lo + 1; }
    var pw = w - M.left - R, ph = h - M.top - M.bottom, cw = pw / cols, rh = ph / rows;
    var parts = ['<svg xmlns="' + NS + '" width="' + w + '" height="' + h + '">'];
    for (var r = 0; r < rows; r++) {
      for (var c = 0; c < cols; c++) {
        var v = spec.z[r][c], y = M.top + (rows - 1 - r) * rh;
        var fill = finite(v, spec.log) ? colour(((spec.log ? Math.log10(v) : v) - lo) / (hi - lo)) : "url(#none-" + box.dataset.chart + ")";
        parts.push('<rect x="' + (M.left + c * cw).toFixed(1) + '" y="' + y.toFixed(1) + '" width="' + (cw + 0.6).toFixed(1) + '" height="' + (rh + 0.6).toFixed(1) + '" fill="' + fill + '"/>');
      }
    }
    parts.push('<defs><pattern id="none-' + box.dataset.chart + '" width="6" height="6" patternUnits="userSpaceOnUse"><rect width="6" height="6" class="none-bg"/><path d="M0,6 L6,0" class="none-line"/></pattern></defs>');
    var xt = ticks(0, cols - 1, false, true), yt = ticks(0, rows - 1, false, true);
    xt.forEach(function (i) { parts.push('<text class="tick" x="' + (M.left + (i + 0.5) * cw) + '" y="' + (h - M.bottom + 14) + '" text-anchor="middle">' + esc(spec.x[i]) + "</text>"); });
    yt.forEach(function (i) { parts.push('<text class="tick" x="' + (M.left - 5) + '" y="' + (M.top + (rows - 0.5 - i) * rh + 4) + '" text-anchor="end">' + esc(spec.y[i]) + "</text>"); });
    for (var k = 0; k <= 20; k++) {  // the colour bar
      parts.push('<rect x="' + (w - R + 10) + '" y="' + (M.top + (20 - k) * ph / 21) + '" width="12" height="' + (ph / 21 + 0.5) + '" fill="' + colour(k / 20) + '"/>');
    }
    [0, 0.5, 1].forEach(function (u) {
      var v = lo + u * (hi - lo);
      parts.push('<text class="tick" x="' + (w - R + 25) + '" y="' + (M.top + (1 - u) * ph * 20 / 21 + 8) + '">' + esc(spec.log ? fmt(Math.pow(10, v)) : fmt(v)) + "</text>");
    });
    parts.push('<rect class="frame" x="' + M.left + '" y="' + M.top + '" width="' + pw + '" height="' + ph + '"/>');
    parts.push('<text class="label" x="' + (M.left + pw / 2) + '" y="' + (h - 6) + '" text-anchor="middle">' + esc(spec.x_label || "") + "</text>");
    parts.push('<text class="label" transform="translate(14,' + (h / 2) + ') rotate(-90)" text-anchor="middle">' + esc(spec.y_label || "") + "</text></svg>");
    box.querySelector(".plot").innerHTML = parts.join("");
    var svg = box.querySelector("svg"), tooltip = box.querySelector(".tip");
    svg.addEventListener("mousemove", function (e) {
      var b = svg.getBoundingClientRect(), px = e.clientX - b.left, py = e.clientY - b.top;
      var c = Math.floor((px - M.left) / cw), r = rows - 1 - Math.floor((py - M.top) / rh);
      if (c < 0 || c >= cols || r < 0 || r >= rows) { tooltip.hidden = true; return; }
      var v = spec.z[r][c];
      tooltip.innerHTML = esc(spec.x_label) + " " + esc(spec.x[c]) + ", " + esc(spec.y_label) + " " + esc(spec.y[r]) + "<br>" + esc(spec.z_label || "value") + ": <b>" + (v === null ? "none (underflowed to 0)" : esc(fmt(v))) + "</b>";
      tooltip.hidden = false; tooltip.style.left = Math.min(px + 14, w - 260) + "px"; tooltip.style.top = (py + 10) + "px";
    });
    svg.addEventListener("mouseleave", function () { tooltip.hidden = true; });
  }

  // -- timelines (one track per rank) ----------------------------------------------------------
  function drawTimeline(box, spec) {
    var w = box.clientWidth || 720, lane = 26, h = M.top + M.bottom + lane * spec.tracks.length;
    if (!spec.full) {
      var lo = Infinity, hi = -Infinity;
      spec.slices.forEach(function (s) { lo = Math.min(lo, s[1]); hi = Math.max(hi, s[2]); });
      spec.full = lo === Infinity ? [0, 1] : [lo, hi];
      spec.view = spec.full.slice();
    }
    var xs = scale(spec.view[0], spec.view[1], M.left, w - M.right, false);
    var groups = spec.groups || {}, parts = ['<svg xmlns="' + NS + '" width="' + w + '" height="' + h + '">'];
    parts.push(axes(w, h, xs, null, spec, null));
    spec.tracks.forEach(function (name, k) {
      parts.push('<text class="tick" x="' + (M.left - 5) + '" y="' + (M.top + k * lane + lane / 2 + 4) + '" text-anchor="end">' + esc(name) + "</text>");
    });
    parts.push('<clipPath id="clip-' + box.dataset.chart + '"><rect x="' + M.left + '" y="' + M.top + '" width="' + (w - M.left - M.right) + '" height="' + (h - M.top - M.bottom) + '"/></clipPath><g clip-path="url(#clip-' + box.dataset.chart + ')">');
    spec.slices.forEach(function (s) {
      if (s[2] < spec.view[0] || s[1] > spec.view[1]) { return; }
      var x0 = xs(s[1]), x1 = xs(s[2]), g = groups[s[4]] || {};
      var inset = g.inset || 0;
      parts.push('<rect x="' + x0.toFixed(1) + '" y="' + (M.top + s[0] * lane + 3 + inset) + '" width="' + Math.max(0.8, x1 - x0).toFixed(1) + '" height="' + (lane - 6 - 2 * inset) + '" fill="' + (g.colour || "#8C8C8C") + '" opacity="' + (g.opacity || 0.9) + '"/>');
    });
    parts.push('</g><line class="cursor" x1="-9" x2="-9" y1="' + M.top + '" y2="' + (h - M.bottom) + '"/><rect class="brush" x="0" y="' + M.top + '" width="0" height="' + (h - M.top - M.bottom) + '"/></svg>');
    box.querySelector(".plot").innerHTML = parts.join("");
    interact(box, spec, xs, w, h, function (t, p) {
      var track = Math.floor((p.y - M.top) / lane), hit = null;
      spec.slices.forEach(function (s) { if (s[0] === track && s[1] <= t && s[2] >= t && (!hit || (groups[s[4]] || {}).inset)) { hit = s; } });
      return hit ? "<b>" + esc(hit[3]) + "</b> (" + esc(spec.tracks[track]) + ")<br>" + esc(fmt(hit[2] - hit[1])) + " " + esc(spec.time_unit || "s") + (hit[5] ? "<br>" + esc(hit[5]) : "") : "";
    });
    var keys = Object.keys(groups).map(function (name) {
      return '<span class="key"><i style="background:' + groups[name].colour + '"></i>' + esc(name) + "</span>";
    });
    if (!box.querySelector(".legend")) {
      var div = document.createElement("div"); div.className = "legend"; div.innerHTML = keys.join(""); box.appendChild(div);
    }
  }

  var DRAW = {line: drawLine, heatmap: drawHeatmap, timeline: drawTimeline};
  var DATA = {};
  function draw(box) {
    var spec = DATA.charts[box.dataset.chart];
    if (!spec) { throw new Error("no data for chart " + box.dataset.chart); }
    if (!DRAW[spec.type]) { throw new Error("unknown chart type " + spec.type); }
    DRAW[spec.type](box, spec);
  }

  document.addEventListener("DOMContentLoaded", function () {
    DATA = JSON.parse(document.getElementById("rnnscope-data").textContent);
    var boxes = document.querySelectorAll("div.chart"), drawn = 0;
    boxes.forEach(function (box) {
      try {
        var spec = DATA.charts[box.dataset.chart];
        box.innerHTML = '<div class="plot"></div><div class="tip" hidden></div>';
        draw(box);
        if (spec && spec.type === "line") { legend(box, spec); }
        box.dataset.drawn = "yes";
        drawn += 1;
      } catch (err) {
        reportError("chart " + box.dataset.chart + ": " + err.message);
      }
    });
    document.body.dataset.charts = String(boxes.length);
    document.body.dataset.drawn = String(drawn);
    document.body.dataset.drawMs = String(Math.round(performance.now()));  // from navigation start
    var resize = null;
    window.addEventListener("resize", function () {
      clearTimeout(resize);
      resize = setTimeout(function () { boxes.forEach(function (box) { try { draw(box); } catch (err) { reportError(err.message); } }); }, 150);
    });
  });
}());
