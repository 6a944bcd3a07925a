// SPDX-License-Identifier: MIT
// memspy flame graph: zoom, search, details line. Embedded in every SVG by
// output/svg.c; works from file:// with no network. URL parameters: ?s=REGEX
// searches on load, ?z=NAME zooms into a frame. Each frame is
// <g class="f" data-s=START data-v=VALUE data-d=DEPTH><title>NAME\nstats</title>
// <rect/><text/></g>, START and VALUE in the graph's unit (bytes or counts).
"use strict";
var ms = {
	svg: null, frames: [], total: 0, width: 0, xpad: 0, fontsize: 12, charw: 0.59,
	details: null, matched: null, unzoom: null, searchbtn: null, term: null,
	matchColor: "rgb(230,0,230)"
};

function ms_init(evt) {
	var svg = document.documentElement, i, g, t;
	ms.svg = svg;
	ms.total = +svg.getAttribute("data-total");
	ms.width = +svg.getAttribute("width");
	ms.xpad = +svg.getAttribute("data-xpad");
	ms.details = document.getElementById("details").firstChild;
	ms.matched = document.getElementById("matched").firstChild;
	ms.unzoom = document.getElementById("unzoom");
	ms.searchbtn = document.getElementById("search");
	var gs = document.querySelectorAll("g.f");
	for (i = 0; i < gs.length; i++) {
		g = gs[i];
		t = g.querySelector("title").textContent;
		g.ms_s = +g.getAttribute("data-s");
		g.ms_v = +g.getAttribute("data-v");
		g.ms_d = +g.getAttribute("data-d");
		g.ms_name = t.split("\n")[0];
		g.ms_info = t.replace("\n", " ");
		g.ms_fill = g.querySelector("rect").getAttribute("fill");
		ms.frames.push(g);
	}
	// frames too narrow to draw: names and extents only, for the search
	var el = document.getElementById("elided");
	ms.elided = null;
	if (el) {
		try {
			ms.elided = JSON.parse(el.textContent);
		} catch (err) {
			ms.elided = null;
		}
	}
	var root = document.getElementById("frames");
	root.addEventListener("mouseover", function (e) {
		var f = ms_frame_of(e.target);
		if (f) ms.details.nodeValue = f.ms_info;
	});
	root.addEventListener("mouseout", function (e) {
		if (ms_frame_of(e.target)) ms.details.nodeValue = "\u00a0";
	});
	root.addEventListener("click", function (e) {
		var f = ms_frame_of(e.target);
		if (f) ms_zoom(f);
	});
	ms.unzoom.addEventListener("click", function () { ms_zoom(null); });
	ms.searchbtn.addEventListener("click", function () {
		if (ms.term !== null) ms_search(null); else ms_search_prompt();
	});
	window.addEventListener("keydown", function (e) {
		if ((e.ctrlKey && (e.key === "f" || e.key === "F")) || e.key === "F3") {
			e.preventDefault();
			ms_search_prompt();
		} else if (e.key === "Escape") {
			ms_search(null);
			ms_zoom(null);
		}
	});
	var z = ms_url_param("z"), best = null;
	if (z !== null) {
		// ?z=NAME zooms into the widest frame of that name (links to a subtree)
		for (i = 0; i < ms.frames.length; i++) {
			g = ms.frames[i];
			if (g.ms_d > 0 && g.ms_name === z && (!best || g.ms_v > best.ms_v)) best = g;
		}
		if (best) ms_zoom(best);
	}
	var p = ms_url_param("s");
	if (p !== null && p !== "") ms_search(p);
	svg.setAttribute("data-ready", "1");
}

function ms_frame_of(el) {
	while (el && el !== ms.svg) {
		if (el.classList && el.classList.contains("f")) return el;
		el = el.parentNode;
	}
	return null;
}

function ms_url_param(name) {
	var q = window.location.search.substring(1).split("&"), i, kv;
	for (i = 0; i < q.length; i++) {
		kv = q[i].split("=");
		if (kv[0] === name && kv.length > 1) {
			try {
				return decodeURIComponent(kv.slice(1).join("=").replace(/\+/g, " "));
			} catch (e) {
				return null;
			}
		}
	}
	return null;
}

// Label for a frame w pixels wide: the name, or its start and "..", or nothing.
function ms_fit(name, w) {
	var n = Math.floor((w - 6) / (ms.fontsize * ms.charw));
	if (n < 3) return "";
	if (name.length <= n) return name;
	return name.substring(0, n - 2) + "..";
}

// Shows the subtree of f (null: everything) across the full width; its
// ancestors stay visible, dimmed, at full width.
function ms_zoom(f) {
	var zs = f ? f.ms_s : 0, zv = f ? f.ms_v : ms.total, zd = f ? f.ms_d : 0;
	var span = ms.width - 2 * ms.xpad, i, g, r, x, w, inside;
	if (zv <= 0) return;
	for (i = 0; i < ms.frames.length; i++) {
		g = ms.frames[i];
		r = g.querySelector("rect");
		g.classList.remove("hide");
		g.classList.remove("parent");
		if (g.ms_d < zd) {
			if (g.ms_s <= zs && g.ms_s + g.ms_v >= zs + zv) {
				x = ms.xpad;
				w = span;
				g.classList.add("parent");
			} else {
				g.classList.add("hide");
				continue;
			}
		} else {
			inside = g.ms_s >= zs && g.ms_s < zs + zv && g.ms_v > 0;
			if (!inside) {
				g.classList.add("hide");
				continue;
			}
			x = ms.xpad + (g.ms_s - zs) / zv * span;
			w = g.ms_v / zv * span;
			if (w < 0.1) {
				g.classList.add("hide");
				continue;
			}
		}
		r.setAttribute("x", x.toFixed(2));
		r.setAttribute("width", w.toFixed(2));
		var t = g.querySelector("text");
		t.setAttribute("x", (x + 3).toFixed(2));
		t.textContent = ms_fit(g.ms_name, w);
	}
	if (f && zd > 0) {
		ms.unzoom.classList.remove("hide");
		ms.svg.setAttribute("data-zoom", f.ms_name);
	} else {
		ms.unzoom.classList.add("hide");
		ms.svg.removeAttribute("data-zoom");
	}
}

function ms_search_prompt() {
	var term = window.prompt("Search for a frame (regular expression or text):",
				 ms.term === null ? "" : ms.term);
	if (term !== null) ms_search(term === "" ? null : term);
}

// Highlights the frames whose name matches term (a regular expression; text
// that is not a valid one is matched literally) and shows the share of the
// total they cover, counting nested matches once.
function ms_search(term) {
	var i, g, re, hits = [], sum = 0, end = -1, s, e;
	for (i = 0; i < ms.frames.length; i++) {
		g = ms.frames[i];
		g.querySelector("rect").setAttribute("fill", g.ms_fill);
		g.classList.remove("m");
	}
	ms.term = term;
	if (term === null) {
		ms.matched.nodeValue = "\u00a0";
		ms.searchbtn.firstChild.nodeValue = "Search";
		ms.svg.removeAttribute("data-matched");
		return;
	}
	try {
		re = new RegExp(term);
	} catch (err) {
		re = new RegExp(term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
	}
	for (i = 0; i < ms.frames.length; i++) {
		g = ms.frames[i];
		if (g.ms_d > 0 && re.test(g.ms_name)) {
			g.querySelector("rect").setAttribute("fill", ms.matchColor);
			g.classList.add("m");
			hits.push(g);
		}
	}
	var spans = [], small = 0, names, fr, nm = [], partial = false;
	for (i = 0; i < hits.length; i++) spans.push([hits[i].ms_s, hits[i].ms_v]);
	if (ms.elided) {
		names = ms.elided.names;
		fr = ms.elided.frames;
		for (i = 0; i < names.length; i++) nm.push(re.test(names[i]));
		for (i = 0; i + 3 < fr.length; i += 4) {
			if (nm[fr[i]]) {
				spans.push([fr[i + 1], fr[i + 2]]);
				small++;
			}
		}
		partial = ms.elided.truncated;
	}
	// a matched frame's interval contains those of its matched descendants
	spans.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
	for (i = 0; i < spans.length; i++) {
		s = spans[i][0];
		e = s + spans[i][1];
		if (s >= end) {
			sum += e - s;
			end = e;
		} else if (e > end) {
			sum += e - end;
			end = e;
		}
	}
	var pct = ms.total > 0 ? sum / ms.total * 100 : 0;
	ms.matched.nodeValue = "Matched: " + (partial ? "at least " : "") + pct.toFixed(2) +
		"% of total (" + hits.length + (hits.length === 1 ? " frame" : " frames") +
		(small ? " + " + small + " too small to draw)" : ")");
	ms.searchbtn.firstChild.nodeValue = "Reset search";
	ms.svg.setAttribute("data-matched", pct.toFixed(2));
}
