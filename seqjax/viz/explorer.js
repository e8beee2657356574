/* seqjax explorer: attention (head, model, matrix views; rollout; A/B filter; PNG/SVG export)
   and recurrent activations. Self-contained: no library, no network. One call per explorer:
   seqjaxExplorer(rootElement); its data is the JSON in <script id="ROOTID-data">. All state is in
   this closure and on root._sqx, so several explorers can live in one page. */
function seqjaxExplorer(root) {
  "use strict";
  if (!root || root._sqx) return;
  var api = { state: null, rendered: false, renderedAt: null, thumbsDone: false, errors: [] };
  root._sqx = api;
  (window.seqjaxExplorers = window.seqjaxExplorers || {})[root.id] = api;
  var SVGNS = "http://www.w3.org/2000/svg";

  // ---------------------------------------------------------------- small helpers
  function el(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (k === "class") e.className = attrs[k]; else e.setAttribute(k, attrs[k]);
    }
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function b64bytes(s) {
    var bin = atob(s), n = bin.length, out = new Uint8Array(n);
    for (var i = 0; i < n; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function inflate(bytes) {
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (b) { return new Uint8Array(b); });
  }
  function decodeBlock(block) {
    if (!block) return Promise.resolve(null);
    return Promise.all([inflate(b64bytes(block.data)), inflate(b64bytes(block.lo)),
                        inflate(b64bytes(block.step))]).then(function (p) {
      var shape = block.shape, n = shape[shape.length - 1], rps = 1;
      // Rows sharing one (lo, step): a whole [t, s] matrix when scale_axes = 2.
      for (var i = shape.length - (block.scale_axes || 1); i < shape.length - 1; i++) rps *= shape[i];
      return { shape: shape, n: n, rps: rps, codes: p[0],
               lo: new Float32Array(p[1].buffer, 0, p[1].length / 4),
               step: new Float32Array(p[2].buffer, 0, p[2].length / 4) };
    });
  }
  // Row r of a decoded block into a Float32Array (dequantised).
  function row(a, r, out) {
    var n = a.n, g = Math.floor(r / a.rps), lo = a.lo[g], st = a.step[g], off = r * n, c = a.codes;
    out = out || new Float32Array(n);
    for (var k = 0; k < n; k++) out[k] = lo + c[off + k] * st;
    return out;
  }
  function hsl(h, s, l) {
    s /= 100; l /= 100;
    var a = s * Math.min(l, 1 - l);
    function f(n) { var k = (n + h / 30) % 12; return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1)))); }
    return [f(0), f(8), f(4)];
  }
  function headColor(h, H) { return hsl((h * 360 / Math.max(H, 1) + 200) % 360, 72, 42); }
  var GREY = [70, 70, 70];
  function rgb(c, a) { return a === undefined ? "rgb(" + c.join(",") + ")" : "rgba(" + c.join(",") + "," + a + ")"; }
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; }); }
  function short(s, n) { s = String(s); return s.length > n ? s.slice(0, n - 1) + "\u2026" : s; }
  function fmt(v) { return (Math.abs(v) >= 0.01 || v === 0) ? v.toFixed(3) : v.toExponential(2); }
  function download(name, blob) {
    var a = el("a", { href: URL.createObjectURL(blob), download: name, style: "display:none" }, root);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 2000);
  }
  function dprFor(w, h) {
    var d = Math.min(window.devicePixelRatio || 1, 2);
    while (d > 1 && w * h * d * d > 16e6) d /= 2;
    return d;
  }
  function sizeCanvas(c, w, h) {
    var d = dprFor(w, h);
    c.width = Math.max(1, Math.round(w * d)); c.height = Math.max(1, Math.round(h * d));
    c.style.width = w + "px"; c.style.height = h + "px";
    var ctx = c.getContext("2d");
    ctx.setTransform(d, 0, 0, d, 0, 0);
    return ctx;
  }
  function safeName(s) { return String(s).replace(/[^A-Za-z0-9_.-]+/g, "_").slice(0, 60); }

  // ---------------------------------------------------------------- data
  var data = JSON.parse(document.getElementById(root.id + "-data").textContent);
  var FONT = "12px system-ui,-apple-system,'Segoe UI',Roboto,sans-serif";

  function start() {
    var jobs = [];
    data.attention.forEach(function (s) {
      jobs.push(decodeBlock(s.weights).then(function (a) { s.W = a; }));
      jobs.push(decodeBlock(s.rollout).then(function (a) { s.R = a; }));
    });
    data.activations.forEach(function (s) {
      jobs.push(decodeBlock(s.values).then(function (a) { s.V = a; }));
      jobs.push(decodeBlock(s.gates).then(function (a) { s.G = a; }));
    });
    return Promise.all(jobs).then(function () { api.decodedAt = performance.now(); build(); });
  }

  // ---------------------------------------------------------------- layout
  var st = {
    page: data.attention.length ? "attention" : "activations",
    set: 0, view: "head", layer: 0, heads: [], rollout: false, filter: "all",
    hover: null, trace: 0, unit: 0, colorBy: -1, hoverStep: null
  };
  api.state = st;
  var ui = {};

  function build() {
    root.innerHTML = "";
    el("div", { "class": "sqx-title" }, root, data.title);
    if (data.attention.length && data.activations.length) {
      var tabs = el("div", { "class": "sqx-tabs" }, root);
      ui.tabA = el("button", { "data-page": "attention" }, tabs, "Attention");
      ui.tabR = el("button", { "data-page": "activations" }, tabs, "Activations");
      [ui.tabA, ui.tabR].forEach(function (b) {
        b.onclick = function () { st.page = b.getAttribute("data-page"); showPage(); };
      });
    }
    ui.attn = el("div", {}, root);
    ui.acts = el("div", {}, root);
    if (data.attention.length) buildAttention();
    if (data.activations.length) buildActivations();
    showPage();
  }

  function showPage() {
    if (ui.tabA) {
      ui.tabA.className = st.page === "attention" ? "sqx-on" : "";
      ui.tabR.className = st.page === "activations" ? "sqx-on" : "";
    }
    ui.attn.style.display = st.page === "attention" ? "" : "none";
    ui.acts.style.display = st.page === "activations" ? "" : "none";
    if (st.page === "attention") drawAttention(); else drawActivations();
  }

  // ================================================================ attention page
  function cur() { return data.attention[st.set]; }
  function segLetters(ids) {
    var u = []; ids.forEach(function (v) { if (u.indexOf(v) < 0) u.push(v); });
    return u.sort(function (a, b) { return a - b; });
  }
  function letter(v, u) { return String.fromCharCode(65 + u.indexOf(v)); }

  function buildAttention() {
    var bar = el("div", { "class": "sqx-bar" }, ui.attn);
    if (data.attention.length > 1) {
      var l0 = el("label", {}, bar, "Attention ");
      ui.setSel = el("select", { "class": "sqx-set" }, l0);
      data.attention.forEach(function (s, i) { el("option", { value: i }, ui.setSel, s.name + " (" + s.kind + ")"); });
      ui.setSel.onchange = function () { st.set = +ui.setSel.value; resetSet(); drawAttention(); };
    }
    ui.viewBtns = {};
    var vb = el("span", {}, bar);
    [["head", "Head view"], ["model", "Model view"], ["matrix", "Matrix view"]].forEach(function (v) {
      var b = el("button", { "data-view": v[0] }, vb, v[1]);
      b.onclick = function () { st.view = v[0]; drawAttention(); };
      ui.viewBtns[v[0]] = b;
    });
    var l1 = el("label", {}, bar, "Layer ");
    ui.layerSel = el("select", { "class": "sqx-layer" }, l1);
    ui.layerSel.onchange = function () { st.layer = +ui.layerSel.value; st.hover = null; drawAttention(); };
    ui.rollLab = el("label", { title: "Abnar & Zuidema 2020: heads averaged, identity added for the residual, rows renormalised, multiplied through the layers up to this one" }, bar);
    ui.rollChk = el("input", { type: "checkbox", "class": "sqx-rollout" }, ui.rollLab);
    ui.rollLab.appendChild(document.createTextNode("rollout"));
    ui.rollChk.onchange = function () { st.rollout = ui.rollChk.checked; drawAttention(); };
    ui.filtLab = el("label", {}, bar, "Sentences ");
    ui.filtSel = el("select", { "class": "sqx-filter" }, ui.filtLab);
    ui.filtSel.onchange = function () { st.filter = ui.filtSel.value; st.hover = null; drawAttention(); };
    var ex = el("span", {}, bar);
    ui.pngBtn = el("button", { "class": "sqx-png" }, ex, "PNG");
    ui.svgBtn = el("button", { "class": "sqx-svg" }, ex, "SVG");
    ui.pngBtn.onclick = function () {
      api.exportPNG().then(function (blob) { download(exportName() + ".png", blob); });
    };
    ui.svgBtn.onclick = function () {
      download(exportName() + ".svg", new Blob([api.exportSVG()], { type: "image/svg+xml" }));
    };
    var hb = el("div", { "class": "sqx-bar" }, ui.attn);
    el("span", {}, hb, "Heads");
    ui.swatches = el("span", { "class": "sqx-swatches" }, hb);
    ui.allBtn = el("button", {}, hb, "all");
    ui.allBtn.onclick = function () { st.heads = st.heads.map(function () { return true; }); drawAttention(); };
    el("span", { "class": "sqx-note" }, hb, "click: toggle a head, double-click: only that head; hover a token to isolate it");
    ui.status = el("div", { "class": "sqx-status" }, ui.attn);
    ui.main = el("div", { "class": "sqx-main" }, ui.attn);
    ui.headCanvas = el("canvas", { "class": "sqx-head-canvas" });
    ui.matrixCanvas = el("canvas", { "class": "sqx-matrix-canvas" });
    ui.grid = el("div", { "class": "sqx-grid" });
    el("div", { "class": "sqx-note" }, ui.attn,
       "Weights quantised to " + data.levels + " levels per attention matrix (" + data.levels + " = its largest weight). Colour scales: the matrix is normalised to its maximum, a thumbnail shows the square root of weight / its maximum (faint patterns stay visible); head-view line opacity is the weight.");
    ui.headCanvas.addEventListener("mousemove", headHover);
    ui.headCanvas.addEventListener("mouseleave", function () { if (st.hover) { st.hover = null; drawAttention(); } });
    ui.matrixCanvas.addEventListener("mousemove", matrixHover);
    ui.matrixCanvas.addEventListener("mouseleave", function () { if (st.hover) { st.hover = null; drawAttention(); } });
    resetSet();
  }

  function resetSet() {
    var s = cur();
    st.layer = Math.min(st.layer, s.layers - 1);
    st.heads = []; for (var h = 0; h < s.heads; h++) st.heads.push(true);
    st.hover = null; st.filter = "all";
    if (!s.R) st.rollout = false;
    ui.layerSel.innerHTML = "";
    for (var l = 0; l < s.layers; l++) el("option", { value: l }, ui.layerSel, String(l));
    ui.layerSel.value = st.layer;
    ui.rollLab.style.display = s.R ? "" : "none";
    ui.rollChk.checked = st.rollout;
    ui.filtSel.innerHTML = "";
    el("option", { value: "all" }, ui.filtSel, "all");
    if (s.segment_ids && s.source_segment_ids) {
      var uq = segLetters(s.segment_ids), uk = segLetters(s.source_segment_ids);
      uq.forEach(function (a) { uk.forEach(function (b) {
        el("option", { value: a + ">" + b }, ui.filtSel, letter(a, uq) + " \u2192 " + letter(b, uk));
      }); });
      ui.filtLab.style.display = "";
    } else ui.filtLab.style.display = "none";
    ui.swatches.innerHTML = "";
    ui.sw = [];
    for (h = 0; h < s.heads; h++) (function (h) {
      var d = el("span", { "class": "sqx-swatch", title: "head " + h, "data-head": h }, ui.swatches, String(h));
      d.style.background = rgb(headColor(h, s.heads));
      var timer = null;
      d.onclick = function () {
        if (timer) return;
        timer = setTimeout(function () { timer = null; st.heads[h] = !st.heads[h]; drawAttention(); }, 220);
      };
      d.ondblclick = function () {
        clearTimeout(timer); timer = null;
        st.heads = st.heads.map(function (_, i) { return i === h; }); drawAttention();
      };
      ui.sw.push(d);
    })(h);
    thumbCache = {};
  }

  // Indices of queries and keys shown under the A/B filter.
  function shown() {
    var s = cur(), q = [], k = [], i;
    var f = st.filter === "all" ? null : st.filter.split(">").map(Number);
    for (i = 0; i < s.t; i++) if (!f || s.segment_ids[i] === f[0]) q.push(i);
    for (i = 0; i < s.s; i++) if (!f || s.source_segment_ids[i] === f[1]) k.push(i);
    return { q: q, k: k };
  }
  function selectedHeads() {
    var out = []; st.heads.forEach(function (on, h) { if (on) out.push(h); }); return out;
  }
  // Full [t, s] matrix of one head (or of the rollout when head < 0) at the current layer.
  function headMatrix(s, layer, head) {
    var out = new Float32Array(s.t * s.s), tmp = new Float32Array(s.s), r, q, k;
    for (q = 0; q < s.t; q++) {
      r = head < 0 ? layer * s.t + q : (layer * s.heads + head) * s.t + q;
      row(head < 0 ? s.R : s.W, r, tmp);
      for (k = 0; k < s.s; k++) out[q * s.s + k] = tmp[k];
    }
    return out;
  }
  // What the matrix view shows: the mean of the chosen heads, or the rollout.
  function viewMatrix() {
    var s = cur();
    if (st.rollout && s.R) return { m: headMatrix(s, st.layer, -1), label: "rollout to layer " + st.layer, color: GREY };
    var hs = selectedHeads(), m = new Float32Array(s.t * s.s);
    hs.forEach(function (h) { var a = headMatrix(s, st.layer, h); for (var i = 0; i < a.length; i++) m[i] += a[i] / hs.length; });
    var color = hs.length === 1 ? headColor(hs[0], s.heads) : [38, 84, 160];
    return { m: m, label: "layer " + st.layer + ", " + (hs.length === s.heads ? "mean of all heads" : hs.length ? "mean of heads " + hs.join(",") : "no head chosen"), color: color };
  }

  function drawAttention() {
    var s = cur();
    for (var v in ui.viewBtns) ui.viewBtns[v].className = v === st.view ? "sqx-on" : "";
    ui.layerSel.value = st.layer;
    ui.rollChk.checked = st.rollout;
    ui.sw.forEach(function (d, h) { d.className = "sqx-swatch" + (st.heads[h] && !(st.rollout && st.view !== "model") ? "" : " sqx-off"); });
    ui.main.innerHTML = "";
    if (st.view === "head") { ui.main.appendChild(ui.headCanvas); drawHead(); }
    else if (st.view === "matrix") { ui.main.appendChild(ui.matrixCanvas); drawMatrix(); }
    else { ui.main.appendChild(ui.grid); drawModel(); }
    if (st.view !== "model" && !api.rendered) flush(st.view === "head" ? ui.headCanvas : ui.matrixCanvas);
    if (!st.hover) ui.status.textContent = s.name + " (" + s.kind + "): " + s.layers + " layers \u00d7 " + s.heads + " heads, " + s.t + " queries \u00d7 " + s.s + " keys" +
      (st.view === "head" && st.linesCapped ? "; the head view draws the " + st.linesCapped + " strongest lines per query and head (hover a token for all of its lines)" : "");
    markRendered();
  }

  // ---------------------------------------------------------------- head view
  var HG = null;  // geometry of the last head view
  function headGeometry() {
    var s = cur(), sh = shown(), ctx = ui.headCanvas.getContext("2d");
    ctx.font = FONT;
    var lw = 30;
    sh.q.forEach(function (i) { lw = Math.max(lw, ctx.measureText(short(s.tokens[i], 24)).width); });
    sh.k.forEach(function (i) { lw = Math.max(lw, ctx.measureText(short(s.source_tokens[i], 24)).width); });
    lw = Math.min(Math.ceil(lw) + 6, 170);
    var n = Math.max(sh.q.length, sh.k.length);
    var rowH = n <= 40 ? 20 : n <= 120 ? 14 : Math.max(2400 / n, 1.5);
    var pad = 8, top = 26, gap = 260;
    var x1 = pad + lw + 6, x2 = x1 + gap;
    return { sh: sh, lw: lw, rowH: rowH, top: top, x1: x1, x2: x2, pad: pad,
             w: x2 + 6 + lw + pad, h: top + n * rowH + 8 };
  }
  // Calls fn(x1, y1, x2, y2, weight, color) for every line of the head view. Lines below minW
  // are invisible and skipped; without a hovered token at most LINE_BUDGET lines are drawn (the
  // strongest per query and head), so 16 heads x 512 x 512 stays interactive.
  var LINE_BUDGET = 20000;
  function forEachLine(g, fn) {
    var s = cur(), hov = st.hover, sq = g.sh.q, sk = g.sh.k;
    var heads = st.rollout && s.R ? [-1] : selectedHeads();
    var minW = hov ? 0.002 : 0.01;
    var cap = hov ? Infinity : Math.max(2, Math.floor(LINE_BUDGET / Math.max(1, heads.length * sq.length)));
    var tmp = new Float32Array(s.s), a, b, q, k, r, w, capped = false;
    var kpos = new Int32Array(s.s).fill(-1);
    for (b = 0; b < sk.length; b++) kpos[sk[b]] = b;
    heads.forEach(function (h) {
      var color = h < 0 ? GREY : headColor(h, s.heads);
      for (a = 0; a < sq.length; a++) {
        q = sq[a];
        if (hov && hov.side === "query" && hov.index !== q) continue;
        r = h < 0 ? st.layer * s.t + q : (st.layer * s.heads + h) * s.t + q;
        row(h < 0 ? s.R : s.W, r, tmp);
        var ya = g.top + (a + 0.5) * g.rowH, keep = [];
        for (k = 0; k < s.s; k++) {
          w = tmp[k];
          if (w < minW || kpos[k] < 0) continue;
          if (s.kind === "causal" && k > q) continue;
          if (hov && hov.side === "key" && hov.index !== k) continue;
          keep.push(k);
        }
        if (keep.length > cap) {
          keep.sort(function (x, y) { return tmp[y] - tmp[x]; });
          keep.length = cap; capped = true;
        }
        for (b = 0; b < keep.length; b++) {
          k = keep[b];
          fn(g.x1, ya, g.x2, g.top + (kpos[k] + 0.5) * g.rowH, tmp[k], color);
        }
      }
    });
    st.linesCapped = capped ? cap : 0;
  }
  function labelStep(rowH) { return rowH >= 9 ? 1 : Math.ceil(9 / rowH); }
  function drawHead() {
    var s = cur(), g = headGeometry(); HG = g;
    var ctx = sizeCanvas(ui.headCanvas, g.w, g.h);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, g.w, g.h);
    ctx.font = FONT; ctx.textBaseline = "middle"; ctx.fillStyle = "#333";
    var caption = (st.rollout && s.R ? "rollout to layer " + st.layer : "layer " + st.layer) + (s.kind === "causal" ? "  (causal)" : "");
    // Key shading while a query is hovered: the mean weight of the drawn heads.
    var hov = st.hover, shade = null, heads = st.rollout && s.R ? [-1] : selectedHeads();
    if (hov) {
      shade = new Float32Array(hov.side === "query" ? s.s : s.t);
      var tmp = new Float32Array(s.s);
      heads.forEach(function (h) {
        var q, r;
        if (hov.side === "query") {
          r = h < 0 ? st.layer * s.t + hov.index : (st.layer * s.heads + h) * s.t + hov.index;
          row(h < 0 ? s.R : s.W, r, tmp);
          for (var k = 0; k < s.s; k++) shade[k] += tmp[k] / heads.length;
        } else {
          for (q = 0; q < s.t; q++) {
            r = h < 0 ? st.layer * s.t + q : (st.layer * s.heads + h) * s.t + q;
            row(h < 0 ? s.R : s.W, r, tmp);
            shade[q] += tmp[hov.index] / heads.length;
          }
        }
      });
    }
    // Lines, grouped per colour and opacity bucket: one stroke per group.
    var NB = 24, groups = {};
    forEachLine(g, function (x1, y1, x2, y2, w, color) {
      var b = Math.min(NB - 1, Math.floor(w * NB)), key = color.join(",") + "|" + b;
      (groups[key] = groups[key] || { color: color, b: b, pts: [] }).pts.push(x1, y1, x2, y2);
    });
    // Hairlines: Skia strokes a path of many wide segments far more slowly than 1px lines.
    ctx.lineWidth = 1;
    ctx.fillStyle = "#333"; ctx.font = FONT; ctx.textAlign = "left";
    ctx.fillText(caption + (st.linesCapped ? "  (top " + st.linesCapped + " per query and head)" : ""), g.pad, 12);
    for (var key in groups) {
      var gr = groups[key], p = gr.pts;
      ctx.strokeStyle = rgb(gr.color, Math.min(1, (gr.b + 0.5) / NB + 0.04));
      ctx.beginPath();
      for (var i = 0; i < p.length; i += 4) { ctx.moveTo(p[i], p[i + 1]); ctx.lineTo(p[i + 2], p[i + 3]); }
      ctx.stroke();
    }
    // Token columns.
    var step = labelStep(g.rowH), fs = Math.min(12, Math.max(7, g.rowH - 2));
    ctx.font = fs + "px system-ui,sans-serif";
    function column(list, toks, x, align, side) {
      ctx.textAlign = align;
      var sm = 0; if (shade) for (var j = 0; j < shade.length; j++) sm = Math.max(sm, shade[j]);
      list.forEach(function (idx, a) {
        var y = g.top + (a + 0.5) * g.rowH, isHov = hov && hov.side === side && hov.index === idx;
        if (shade && hov.side !== side && sm > 0) {
          ctx.fillStyle = rgb([38, 84, 160], 0.55 * shade[idx] / sm);
          ctx.fillRect(align === "right" ? x - g.lw : x, y - g.rowH / 2, g.lw, g.rowH);
        }
        if (isHov) {
          ctx.fillStyle = "#ffe08a";
          ctx.fillRect(align === "right" ? x - g.lw : x, y - g.rowH / 2, g.lw, g.rowH);
        }
        if (isHov || a % step === 0) {
          ctx.fillStyle = isHov ? "#000" : "#333";
          ctx.fillText(short(toks[idx], 24), x, y);
        }
      });
    }
    column(g.sh.q, s.tokens, g.x1 - 6, "right", "query");
    column(g.sh.k, s.source_tokens, g.x2 + 6, "left", "key");
    ctx.textAlign = "left";
  }
  function headHover(ev) {
    if (!HG) return;
    var r = ui.headCanvas.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    var a = Math.floor((y - HG.top) / HG.rowH), h = null, s = cur();
    if (x < HG.x1 && a >= 0 && a < HG.sh.q.length) h = { side: "query", index: HG.sh.q[a] };
    else if (x > HG.x2 && a >= 0 && a < HG.sh.k.length) h = { side: "key", index: HG.sh.k[a] };
    if (!h) { if (st.hover) { st.hover = null; drawAttention(); } return; }
    h.token = h.side === "query" ? s.tokens[h.index] : s.source_tokens[h.index];
    if (st.hover && st.hover.side === h.side && st.hover.index === h.index) return;
    st.hover = h;
    drawAttention();
    ui.status.textContent = (h.side === "query" ? "query " : "key ") + h.index + ' "' + h.token + '": ' +
      (h.side === "query" ? "what it attends to" : "what attends to it");
  }

  // ---------------------------------------------------------------- matrix view
  var MG = null;
  function cmap(color, v) {  // white -> color
    return [255 + (color[0] - 255) * v, 255 + (color[1] - 255) * v, 255 + (color[2] - 255) * v];
  }
  function drawMatrix() {
    var s = cur(), sh = shown(), vm = viewMatrix(), nq = sh.q.length, nk = sh.k.length;
    var cell = Math.max(1, Math.min(28, Math.floor(760 / Math.max(nq, nk, 1))));
    var ctx0 = ui.matrixCanvas.getContext("2d"); ctx0.font = FONT;
    var lw = 30, lh = 30;
    var showQ = cell >= 8, showK = cell >= 8;
    sh.q.forEach(function (i) { lw = Math.max(lw, ctx0.measureText(short(s.tokens[i], 18)).width); });
    sh.k.forEach(function (i) { lh = Math.max(lh, ctx0.measureText(short(s.source_tokens[i], 18)).width); });
    lw = Math.min(Math.ceil(lw) + 8, 130); lh = Math.min(Math.ceil(lh * 0.75) + 12, 110);
    var step = labelStep(cell);
    var left = lw + 6, top = 24 + lh, W = left + nk * cell + 70, H = top + nq * cell + 10;
    MG = { sh: sh, cell: cell, left: left, top: top, m: vm.m };
    var ctx = sizeCanvas(ui.matrixCanvas, W, H);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    ctx.fillStyle = "#333"; ctx.font = FONT; ctx.textBaseline = "middle";
    ctx.fillText(vm.label + (s.kind === "causal" ? " (causal: keys after the query are masked)" : ""), 4, 10);
    var vmax = 0, a, b, v, q, k;
    for (a = 0; a < nq; a++) for (b = 0; b < nk; b++) { v = vm.m[sh.q[a] * s.s + sh.k[b]]; if (v > vmax) vmax = v; }
    vmax = vmax || 1;
    MG.vmax = vmax;
    var img = new ImageData(nk, nq), d = img.data;
    for (a = 0; a < nq; a++) for (b = 0; b < nk; b++) {
      q = sh.q[a]; k = sh.k[b];
      var o = 4 * (a * nk + b);
      if (s.kind === "causal" && k > q) { d[o + 3] = 0; continue; }
      var c = cmap(vm.color, vm.m[q * s.s + k] / vmax);
      d[o] = c[0]; d[o + 1] = c[1]; d[o + 2] = c[2]; d[o + 3] = 255;
    }
    var off = document.createElement("canvas"); off.width = nk; off.height = nq;
    off.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, left, top, nk * cell, nq * cell);
    ctx.strokeStyle = "#ccc"; ctx.lineWidth = 1; ctx.strokeRect(left - 0.5, top - 0.5, nk * cell + 1, nq * cell + 1);
    ctx.font = Math.min(12, Math.max(7, cell - 1)) + "px system-ui,sans-serif";
    var hov = st.hover;
    ctx.textAlign = "right";
    sh.q.forEach(function (i, a) {
      var on = hov && hov.side === "query" && hov.index === i;
      if (!(showQ ? a % 1 === 0 : a % step === 0) && !on) return;
      ctx.fillStyle = on ? "#c00" : "#333";
      ctx.fillText(short(s.tokens[i], 18), left - 4, top + (a + 0.5) * cell);
    });
    ctx.textAlign = "left";
    sh.k.forEach(function (j, b) {
      var on = hov && hov.key === j;
      if (!(showK ? true : b % step === 0) && !on) return;
      ctx.save(); ctx.translate(left + (b + 0.5) * cell, top - 4); ctx.rotate(-Math.PI / 3);
      ctx.fillStyle = on ? "#c00" : "#333"; ctx.fillText(short(s.source_tokens[j], 18), 0, 0); ctx.restore();
    });
    if (hov && hov.a !== undefined) {
      ctx.strokeStyle = "#c00"; ctx.lineWidth = 1;
      ctx.strokeRect(left, top + hov.a * cell, nk * cell, cell);
      ctx.strokeRect(left + hov.b * cell, top, cell, nq * cell);
    }
    // Colour bar.
    var cbx = left + nk * cell + 14, cbh = Math.min(160, nq * cell);
    for (var y = 0; y < cbh; y++) { ctx.fillStyle = rgb(cmap(vm.color, 1 - y / cbh).map(Math.round)); ctx.fillRect(cbx, top + y, 12, 1); }
    ctx.fillStyle = "#333"; ctx.font = "10px system-ui,sans-serif";
    ctx.fillText(fmt(vmax), cbx + 15, top + 4); ctx.fillText("0", cbx + 15, top + cbh - 3);
  }
  function matrixHover(ev) {
    if (!MG) return;
    var r = ui.matrixCanvas.getBoundingClientRect(), s = cur();
    var b = Math.floor((ev.clientX - r.left - MG.left) / MG.cell), a = Math.floor((ev.clientY - r.top - MG.top) / MG.cell);
    if (a < 0 || b < 0 || a >= MG.sh.q.length || b >= MG.sh.k.length) { if (st.hover) { st.hover = null; drawAttention(); } return; }
    var q = MG.sh.q[a], k = MG.sh.k[b];
    if (st.hover && st.hover.index === q && st.hover.key === k) return;
    st.hover = { side: "query", index: q, token: s.tokens[q], key: k, a: a, b: b };
    drawAttention();
    var masked = s.kind === "causal" && k > q;
    ui.status.textContent = 'query ' + q + ' "' + s.tokens[q] + '" \u2192 key ' + k + ' "' + s.source_tokens[k] + '": ' + (masked ? "masked" : fmt(MG.m[q * s.s + k]));
  }

  // ---------------------------------------------------------------- model view
  var thumbCache = {}, thumbJob = 0;
  function thumbSize(s) {
    var cols = s.heads + (s.R ? 1 : 0);
    return Math.max(36, Math.min(96, Math.floor(1000 / cols) - 4));
  }
  function drawModel() {
    var s = cur(), sh = shown(), cols = s.heads + (s.R ? 1 : 0), px = thumbSize(s);
    var key = st.set + "|" + st.filter;
    ui.grid.innerHTML = "";
    ui.grid.style.gridTemplateColumns = "34px repeat(" + cols + ", " + (px + 2) + "px)";
    el("div", {}, ui.grid);
    for (var h = 0; h < s.heads; h++) el("div", { "class": "sqx-gl" }, ui.grid, "head " + h);
    if (s.R) el("div", { "class": "sqx-gl" }, ui.grid, "rollout");
    var todo = [];
    for (var l = 0; l < s.layers; l++) {
      el("div", { "class": "sqx-gl" }, ui.grid, "L" + l);
      for (var c = 0; c < cols; c++) (function (l, c) {
        var cv = el("canvas", { width: 1, height: 1, title: c < s.heads ? "layer " + l + ", head " + c : "rollout to layer " + l, "data-layer": l, "data-head": c < s.heads ? c : -1 }, ui.grid);
        cv.style.width = px + "px"; cv.style.height = px + "px";
        cv.onclick = function () {
          st.layer = l; st.view = "matrix"; st.hover = null;
          if (c < s.heads) { st.rollout = false; st.heads = st.heads.map(function (_, i) { return i === c; }); }
          else st.rollout = true;
          drawAttention();
        };
        todo.push({ cv: cv, l: l, h: c < s.heads ? c : -1 });
      })(l, c);
    }
    api.thumbsDone = false;
    var job = ++thumbJob, i = 0;
    function work() {
      if (job !== thumbJob) return;
      var t0 = performance.now();
      while (i < todo.length && performance.now() - t0 < 14) { paintThumb(todo[i], s, sh, px, key); i++; }
      if (i < todo.length) requestAnimationFrame(work); else api.thumbsDone = true;
    }
    work();
  }
  // A thumbnail: block-max pooling of the head's matrix to at most px x px cells. One (lo = 0,
  // step) scales a whole matrix and a thumbnail is normalised to its own maximum, so the pooling
  // runs on the uint8 codes directly.
  function paintThumb(job, s, sh, px, key) {
    var ck = key + "|" + job.l + "|" + job.h, cached = thumbCache[ck];
    var nq = sh.q.length, nk = sh.k.length;
    var rq = Math.min(nq, px), rk = Math.min(nk, px);
    job.cv.width = rk; job.cv.height = rq;
    var ctx = job.cv.getContext("2d");
    if (cached) { ctx.putImageData(cached, 0, 0); return; }
    var A = job.h < 0 ? s.R : s.W, codes = A.codes, n = A.n;
    var pool = new Uint8Array(rq * rk), colOf = new Int32Array(nk), a, b, q, r, v, off, vmax = 0;
    var causal = s.kind === "causal";
    for (b = 0; b < nk; b++) colOf[b] = Math.floor(b * rk / nk);
    for (a = 0; a < nq; a++) {
      q = sh.q[a];
      r = job.h < 0 ? job.l * s.t + q : (job.l * s.heads + job.h) * s.t + q;
      off = r * n;
      var base = Math.floor(a * rq / nq) * rk;
      for (b = 0; b < nk; b++) {
        var k = sh.k[b];
        if (causal && k > q) break;
        v = codes[off + k];
        if (v > pool[base + colOf[b]]) pool[base + colOf[b]] = v;
        if (v > vmax) vmax = v;
      }
    }
    vmax = vmax || 1;
    var color = job.h < 0 ? GREY : headColor(job.h, s.heads), img = new ImageData(rk, rq), d = img.data;
    for (a = 0; a < rq; a++) for (b = 0; b < rk; b++) {
      var o2 = 4 * (a * rk + b);
      // Causal: the cells wholly above the diagonal stay transparent.
      if (causal && sh.q[Math.floor((a + 1) * nq / rq) - 1] < sh.k[Math.floor(b * nk / rk)]) continue;
      var c = cmap(color, Math.sqrt(pool[a * rk + b] / vmax));
      d[o2] = c[0]; d[o2 + 1] = c[1]; d[o2 + 2] = c[2]; d[o2 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    thumbCache[ck] = img;
  }

  // ---------------------------------------------------------------- export
  function exportName() {
    var s = cur();
    return safeName(data.title + "-" + s.name + "-" + st.view + (st.view === "model" ? "" : "-layer" + st.layer + (st.rollout ? "-rollout" : "")));
  }
  function modelCanvas() {
    var s = cur(), cv = ui.grid.querySelectorAll("canvas"), px = thumbSize(s), cols = s.heads + (s.R ? 1 : 0);
    var out = document.createElement("canvas"), W = 40 + cols * (px + 4), H = 20 + s.layers * (px + 4);
    out.width = W; out.height = H;
    var ctx = out.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H); ctx.imageSmoothingEnabled = false;
    ctx.fillStyle = "#333"; ctx.font = "10px sans-serif"; ctx.textBaseline = "middle";
    for (var c = 0; c < cols; c++) ctx.fillText(c < s.heads ? "h" + c : "roll", 40 + c * (px + 4), 10);
    for (var l = 0; l < s.layers; l++) ctx.fillText("L" + l, 4, 20 + l * (px + 4) + px / 2);
    Array.prototype.forEach.call(cv, function (t, i) {
      var l = Math.floor(i / cols), c = i % cols;
      ctx.drawImage(t, 40 + c * (px + 4), 20 + l * (px + 4), px, px);
    });
    return out;
  }
  function currentCanvas() {
    if (st.page === "activations") return ui.spark;
    return st.view === "head" ? ui.headCanvas : st.view === "matrix" ? ui.matrixCanvas : modelCanvas();
  }
  api.exportPNG = function () {
    var c = currentCanvas();
    return new Promise(function (resolve) { c.toBlob(function (b) { resolve(b); }, "image/png"); });
  };
  api.exportPNGDataURL = function () { return currentCanvas().toDataURL("image/png"); };
  api.exportSVG = function () {
    if (st.page === "activations") return activationSVG();
    var s = cur(), parts = [], W, H;
    function text(x, y, str, extra) { parts.push('<text x="' + x.toFixed(1) + '" y="' + y.toFixed(1) + '"' + (extra || "") + ">" + esc(str) + "</text>"); }
    if (st.view === "head") {
      var g = headGeometry(); W = g.w; H = g.h;
      text(g.pad, 16, st.rollout && s.R ? "rollout to layer " + st.layer : "layer " + st.layer);
      forEachLine(g, function (x1, y1, x2, y2, w, color) {
        parts.push('<line x1="' + x1.toFixed(1) + '" y1="' + y1.toFixed(1) + '" x2="' + x2.toFixed(1) + '" y2="' + y2.toFixed(1) + '" stroke="' + rgb(color) + '" stroke-opacity="' + w.toFixed(3) + '"/>');
      });
      var step = labelStep(g.rowH), fs = Math.min(12, Math.max(7, g.rowH - 2));
      g.sh.q.forEach(function (i, a) { if (a % step === 0) text(g.x1 - 6, g.top + (a + 0.5) * g.rowH + fs / 3, short(s.tokens[i], 24), ' text-anchor="end" font-size="' + fs + '"'); });
      g.sh.k.forEach(function (i, a) { if (a % step === 0) text(g.x2 + 6, g.top + (a + 0.5) * g.rowH + fs / 3, short(s.source_tokens[i], 24), ' font-size="' + fs + '"'); });
    } else if (st.view === "matrix") {
      drawMatrix();
      var m = MG, nq = m.sh.q.length, nk = m.sh.k.length, vm = viewMatrix();
      W = m.left + nk * m.cell + 20; H = m.top + nq * m.cell + 10;
      text(4, 14, vm.label);
      for (var a = 0; a < nq; a++) for (var b = 0; b < nk; b++) {
        var q = m.sh.q[a], k = m.sh.k[b];
        if (s.kind === "causal" && k > q) continue;
        var v = m.m[q * s.s + k] / m.vmax;
        if (v < 1 / 64) continue;
        parts.push('<rect x="' + (m.left + b * m.cell) + '" y="' + (m.top + a * m.cell) + '" width="' + m.cell + '" height="' + m.cell + '" fill="' + rgb(cmap(vm.color, v).map(Math.round)) + '"><title>' + v.toFixed(3) + "</title></rect>");
      }
      var st2 = labelStep(m.cell), fs2 = Math.min(12, Math.max(7, m.cell - 1));
      m.sh.q.forEach(function (i, a) { if (a % st2 === 0) text(m.left - 4, m.top + (a + 0.5) * m.cell + fs2 / 3, short(s.tokens[i], 18), ' text-anchor="end" font-size="' + fs2 + '"'); });
      m.sh.k.forEach(function (j, b) { if (b % st2 === 0) { var x = m.left + (b + 0.5) * m.cell, y = m.top - 4; text(x, y, short(s.source_tokens[j], 18), ' font-size="' + fs2 + '" transform="rotate(-60 ' + x.toFixed(1) + " " + y.toFixed(1) + ')"'); } });
    } else {
      var cvs = ui.grid.querySelectorAll("canvas"), px = thumbSize(s), cols = s.heads + (s.R ? 1 : 0);
      W = 40 + cols * (px + 4); H = 20 + s.layers * (px + 4);
      for (var c = 0; c < cols; c++) text(40 + c * (px + 4), 12, c < s.heads ? "h" + c : "roll", ' font-size="10"');
      for (var l = 0; l < s.layers; l++) text(4, 20 + l * (px + 4) + px / 2, "L" + l, ' font-size="10"');
      Array.prototype.forEach.call(cvs, function (t, i) {
        var l = Math.floor(i / cols), c = i % cols;
        parts.push('<image x="' + (40 + c * (px + 4)) + '" y="' + (20 + l * (px + 4)) + '" width="' + px + '" height="' + px + '" preserveAspectRatio="none" style="image-rendering:pixelated" href="' + t.toDataURL("image/png") + '"/>');
      });
    }
    return '<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="' + SVGNS + '" width="' + Math.ceil(W) + '" height="' + Math.ceil(H) + '" viewBox="0 0 ' + Math.ceil(W) + " " + Math.ceil(H) + '" font-family="sans-serif" font-size="12">\n<rect width="100%" height="100%" fill="#fff"/>\n' + parts.join("\n") + "\n</svg>\n";
  };
  // Where things are drawn (CSS pixels from a canvas' top left), for tests and scripting.
  api.geometry = function () {
    return { head: HG && { top: HG.top, rowH: HG.rowH, x1: HG.x1, x2: HG.x2, queries: HG.sh.q, keys: HG.sh.k },
             matrix: MG && { top: MG.top, left: MG.left, cell: MG.cell, queries: MG.sh.q, keys: MG.sh.k } };
  };
  // For tests and scripting: change the state and redraw.
  api.set = function (patch) {
    for (var k in patch) st[k] = patch[k];
    if ("set" in patch) resetSet();
    showPage();
    return st;
  };

  // ================================================================ activations page
  function curT() { return data.activations[st.trace]; }
  function buildActivations() {
    var bar = el("div", { "class": "sqx-bar" }, ui.acts);
    if (data.activations.length > 1) {
      var l0 = el("label", {}, bar, "Trace ");
      ui.traceSel = el("select", { "class": "sqx-trace" }, l0);
      data.activations.forEach(function (s, i) { el("option", { value: i }, ui.traceSel, s.name); });
      ui.traceSel.onchange = function () { st.trace = +ui.traceSel.value; st.unit = 0; st.colorBy = -1; resetTrace(); drawActivations(); };
    }
    var l1 = el("label", {}, bar, "Unit ");
    ui.unitIn = el("input", { type: "number", min: 0, value: 0, style: "width:5em", "class": "sqx-unit" }, l1);
    ui.unitName = el("span", { "class": "sqx-note" }, l1);
    ui.unitIn.oninput = function () { var u = +ui.unitIn.value; if (u >= 0 && u < curT().units) { st.unit = u; drawActivations(); } };
    var prev = el("button", {}, bar, "\u25c0"), next = el("button", {}, bar, "\u25b6");
    prev.onclick = function () { st.unit = (st.unit + curT().units - 1) % curT().units; drawActivations(); };
    next.onclick = function () { st.unit = (st.unit + 1) % curT().units; drawActivations(); };
    ui.colorLab = el("label", {}, bar, "Colour by ");
    ui.colorSel = el("select", { "class": "sqx-colorby" }, ui.colorLab);
    ui.colorSel.onchange = function () { st.colorBy = +ui.colorSel.value; drawActivations(); };
    var ex = el("span", {}, bar);
    var png = el("button", { "class": "sqx-png" }, ex, "PNG");
    png.onclick = function () { api.exportPNG().then(function (b) { download(safeName(data.title + "-unit" + st.unit) + ".png", b); }); };
    var svg = el("button", { "class": "sqx-svg" }, ex, "SVG");
    svg.onclick = function () { download(safeName(data.title + "-unit" + st.unit) + ".svg", new Blob([api.exportSVG()], { type: "image/svg+xml" })); };
    ui.astatus = el("div", { "class": "sqx-status" }, ui.acts);
    ui.spark = el("canvas", { "class": "sqx-spark" }, ui.acts);
    ui.text = el("div", { "class": "sqx-text" }, ui.acts);
    el("div", { "class": "sqx-note" }, ui.acts, "Activation: blue negative, red positive, scaled to the unit's largest |value| over the text. Gate: white 0 to green 1.");
    ui.text.addEventListener("mouseover", function (ev) {
      var i = ev.target.getAttribute && ev.target.getAttribute("data-i");
      if (i === null || i === undefined) return;
      setHoverStep(+i);
    });
    ui.text.addEventListener("mouseleave", function () { setHoverStep(null); });
    resetTrace();
  }
  function resetTrace() {
    var s = curT();
    ui.unitIn.max = s.units - 1;
    ui.colorSel.innerHTML = "";
    el("option", { value: -1 }, ui.colorSel, "activation");
    (s.gate_names || []).forEach(function (g, i) { el("option", { value: i }, ui.colorSel, g); });
    ui.colorLab.style.display = s.G ? "" : "none";
    ui.text.innerHTML = "";
    ui.spans = [];
    var frag = document.createDocumentFragment();
    s.tokens.forEach(function (tok, i) {
      var sp = document.createElement("span");
      sp.setAttribute("data-i", i);
      sp.textContent = tok === "\n" ? "\u21b5\n" : tok;
      frag.appendChild(sp); ui.spans.push(sp);
    });
    ui.text.appendChild(frag);
  }
  function unitSeries(s, unit, gate) {
    return gate < 0 ? row(s.V, unit) : row(s.G, gate * s.units + unit);
  }
  function actColor(v, m) {  // diverging: blue (-) white red (+)
    var x = Math.max(-1, Math.min(1, v / (m || 1)));
    return x >= 0 ? [255, Math.round(255 - 190 * x), Math.round(255 - 200 * x)] : [Math.round(255 + 200 * x), Math.round(255 + 150 * x), 255];
  }
  function drawActivations() {
    var s = curT(), vals = unitSeries(s, st.unit, st.colorBy), m = 0, i;
    ui.unitIn.value = st.unit; ui.colorSel.value = st.colorBy;
    ui.unitName.textContent = s.unit_names[st.unit] + " of " + s.units;
    for (i = 0; i < vals.length; i++) m = Math.max(m, Math.abs(vals[i]));
    for (i = 0; i < ui.spans.length; i++) {
      var c = st.colorBy < 0 ? actColor(vals[i], m) : cmap([30, 140, 60], Math.max(0, Math.min(1, vals[i])));
      ui.spans[i].style.background = rgb(c);
    }
    // Sparkline of the coloured series over time.
    var W = Math.min(1000, Math.max(300, s.t * 3)), H = 70, ctx = sizeCanvas(ui.spark, W, H);
    var lo = st.colorBy < 0 ? -m : 0, hi = st.colorBy < 0 ? m : 1;
    if (hi === lo) hi = lo + 1;
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
    ctx.strokeStyle = "#ddd"; ctx.beginPath(); var y0 = H - 4 - (0 - lo) / (hi - lo) * (H - 8); ctx.moveTo(0, y0); ctx.lineTo(W, y0); ctx.stroke();
    ctx.strokeStyle = st.colorBy < 0 ? "#b3322c" : "#1e8c3c"; ctx.lineWidth = 1.2; ctx.beginPath();
    for (i = 0; i < vals.length; i++) {
      var x = (i + 0.5) * W / vals.length, y = H - 4 - (vals[i] - lo) / (hi - lo) * (H - 8);
      if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
    }
    ctx.stroke();
    if (st.hoverStep !== null) {
      ctx.strokeStyle = "#000"; ctx.beginPath(); var xh = (st.hoverStep + 0.5) * W / vals.length; ctx.moveTo(xh, 0); ctx.lineTo(xh, H); ctx.stroke();
    }
    if (!api.rendered) flush(ui.spark);
    if (st.hoverStep === null) ui.astatus.textContent = s.name + ": " + s.t + " steps \u00d7 " + s.units + " units" + (s.G ? ", " + s.gate_names.length + " gates" : "");
    markRendered();
  }
  // The coloured text as SVG: one cell per character in monospace lines of at most 100
  // columns (wrapped, and broken at newlines), under the sparkline of the series.
  function activationSVG() {
    var s = curT(), vals = unitSeries(s, st.unit, st.colorBy), m = 0, i, parts = [];
    for (i = 0; i < vals.length; i++) m = Math.max(m, Math.abs(vals[i]));
    var cw = 8.4, lh = 20, cols = 100, x = 0, y = 0, W = cols * cw + 16, SP = 80;
    parts.push('<text x="8" y="14">' + esc(s.name + ": " + s.unit_names[st.unit] + (st.colorBy < 0 ? "" : ", " + s.gate_names[st.colorBy])) + "</text>");
    var lo = st.colorBy < 0 ? -m : 0, hi = st.colorBy < 0 ? m : 1, pts = [];
    if (hi === lo) hi = lo + 1;
    for (i = 0; i < vals.length; i++) pts.push(((i + 0.5) * (W - 16) / vals.length + 8).toFixed(1) + "," + (SP - 4 - (vals[i] - lo) / (hi - lo) * (SP - 30)).toFixed(1));
    parts.push('<polyline fill="none" stroke="' + (st.colorBy < 0 ? "#b3322c" : "#1e8c3c") + '" points="' + pts.join(" ") + '"/>');
    for (i = 0; i < s.tokens.length; i++) {
      var tok = s.tokens[i], c = st.colorBy < 0 ? actColor(vals[i], m) : cmap([30, 140, 60], Math.max(0, Math.min(1, vals[i])));
      var n = Math.max(1, tok === "\n" ? 1 : tok.length);
      if (x + n > cols) { x = 0; y++; }
      var px = 8 + x * cw, py = SP + 6 + y * lh;
      parts.push('<rect x="' + px.toFixed(1) + '" y="' + py + '" width="' + (n * cw).toFixed(1) + '" height="' + lh + '" fill="' + rgb(c.map(Math.round)) + '"><title>' + esc(JSON.stringify(tok) + " " + fmt(vals[i])) + "</title></rect>");
      if (tok !== "\n" && tok.trim()) parts.push('<text x="' + px.toFixed(1) + '" y="' + (py + 14) + '" xml:space="preserve">' + esc(tok) + "</text>");
      x += n;
      if (tok === "\n") { x = 0; y++; }
    }
    var H = SP + 12 + (y + 1) * lh;
    return '<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="' + SVGNS + '" width="' + Math.ceil(W) + '" height="' + H + '" viewBox="0 0 ' + Math.ceil(W) + " " + H + '" font-family="ui-monospace,Menlo,Consolas,monospace" font-size="14">\n<rect width="100%" height="100%" fill="#fff"/>\n' + parts.join("\n") + "\n</svg>\n";
  }
  function setHoverStep(i) {
    var s = curT();
    if (st.hoverStep !== null && ui.spans[st.hoverStep]) ui.spans[st.hoverStep].className = "";
    st.hoverStep = i;
    if (i !== null) {
      ui.spans[i].className = "sqx-hov";
      var parts = ["step " + i, JSON.stringify(s.tokens[i]), s.unit_names[st.unit] + " = " + fmt(row(s.V, st.unit)[i])];
      if (s.G) s.gate_names.forEach(function (g, k) { parts.push(g + " = " + fmt(row(s.G, k * s.units + st.unit)[i])); });
      ui.astatus.textContent = parts.join("   ");
    }
    drawActivations();
  }

  // ---------------------------------------------------------------- lifecycle
  // Reading a pixel makes the browser rasterise the canvas now, so "rendered" means drawn (once:
  // repeated readbacks would make Chromium move the canvas to the CPU and warn).
  function flush(c) { if (c.width && c.height) c.getContext("2d").getImageData(0, 0, 1, 1); }
  function markRendered() {
    if (api.rendered) return;
    api.rendered = true;
    api.renderedAt = performance.now();
    root.setAttribute("data-rendered", "true");
  }
  root.textContent = "loading\u2026";
  start().catch(function (err) {
    api.errors.push(String(err && err.stack || err));
    root.innerHTML = "";
    el("div", { "class": "sqx-error" }, root, "seqjax explorer failed: " + err);
    console.error(err);
  });
}
