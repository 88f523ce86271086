/*
 * patient.js — the patient page's charts and live values (docs/console.md,
 * "The patient page").
 *
 * The readings of the chosen window (15 min, 1 h, 24 h) come from
 * GET /api/patient/<id>/series as JSON; each chart is a uPlot (installed
 * from npm at build time and served by the hub as /static/uPlot.min.js).
 * New readings arrive on the live stream (console.js) and are appended,
 * points older than the window dropped, each chart redrawn at most once a
 * second.  The ECG strip is the newest one stored, redrawn when the page
 * reloads its series (every minute, and on a change of window).  Alarms
 * and NEWS2 follow the stream as on the ward.
 */
"use strict";

(() => {
	const board = document.getElementById("board");
	const pid = Number(board.dataset.patient);
	const holder = document.getElementById("charts");
	const CHARTS = [
		{ id: "hr", title: "Heart rate", unit: "/min", places: 0,
		  codes: [[147842, "HR (ECG)", "#c8101b"], [149530, "pulse (oximeter)", "#e07b00"]] },
		{ id: "spo2", title: "SpO\u2082", unit: "%", places: 0, codes: [[150456, "SpO\u2082", "#0b5cad"]] },
		{ id: "bp", title: "Blood pressure (NIBP)", unit: "mmHg", places: 0,
		  codes: [[150021, "systolic", "#7a1fa2"], [150022, "diastolic", "#b36bd1"], [150023, "mean", "#8a949f"]] },
		{ id: "rr", title: "Respiratory rate", unit: "/min", places: 0, codes: [[151562, "RR", "#1e6b3a"]] },
		{ id: "temp", title: "Temperature", unit: "\u00b0C", places: 1, codes: [[150364, "temperature", "#9a5b00"]] },
		{ id: "glu", title: "Glucose", unit: "mg/dL", places: 0, codes: [[160184, "glucose", "#00796b"]] },
		{ id: "news2", title: "NEWS2", unit: "", places: 0, codes: [["news2", "NEWS2", "#12304f"]] },
	];
	let windowS = 900;
	const points = new Map(); /* code -> {t: [ms], v: []} */
	const charts = new Map(); /* id -> {def, el, plot, now, dirty} */
	let ecg = null;

	function box(def) {
		const el = document.createElement("div");
		el.className = "chart";
		el.dataset.chart = def.id;
		const h = document.createElement("h3");
		h.textContent = def.title + (def.unit ? " (" + def.unit + ")" : "");
		const now = document.createElement("span");
		now.className = "now";
		h.appendChild(now);
		const plot = document.createElement("div");
		plot.className = "plot";
		el.appendChild(h);
		el.appendChild(plot);
		holder.appendChild(el);
		return { el, now, plot };
	}

	function width(el) {
		return Math.max(280, el.clientWidth - 16);
	}

	/* One x axis (seconds) for a chart's series: the union of their times. */
	function aligned(def) {
		const times = new Set();
		for (const [code] of def.codes) {
			const p = points.get(code);
			if (p)
				for (const t of p.t)
					times.add(t);
		}
		const xs = Array.from(times).sort((a, b) => a - b);
		const data = [xs.map((t) => t / 1000)];
		for (const [code] of def.codes) {
			const p = points.get(code);
			const at = new Map();
			if (p)
				p.t.forEach((t, i) => at.set(t, p.v[i]));
			data.push(xs.map((t) => (at.has(t) ? at.get(t) : null)));
		}
		return data;
	}

	function draw(id) {
		const c = charts.get(id);
		const data = aligned(c.def);
		const empty = data[0].length === 0;
		c.el.classList.toggle("empty", empty);
		let newest = null;
		for (const [code] of c.def.codes) {
			const p = points.get(code);
			if (p && p.v.length)
				newest = newest === null ? p.v[p.v.length - 1] : newest;
		}
		c.now.textContent = newest === null ? "" : MT.fmt(newest, null, c.def.places);
		if (!c.plot) {
			c.plot = new uPlot({
				width: width(c.el), height: 170,
				scales: { x: { time: true, range: () => { const n = MT.now() / 1000; return [n - windowS, n]; } } },
				series: [{}].concat(c.def.codes.map(([, label, colour]) => ({
					label, stroke: colour, width: 1.5, spanGaps: true,
					/* dots while the window holds few readings (spot checks: NIBP, glucose) */
					points: { show: (u, si, i0, i1) => i1 - i0 < 120, size: 5, fill: colour },
					value: (u, v) => (v === null || v === undefined ? "\u2014" : MT.fmt(v, null, c.def.places)),
				}))),
				axes: [{}, { size: 46 }],
				legend: { live: true },
			}, data, c.box);
		} else {
			c.plot.setData(data);
		}
		c.dirty = false;
	}

	function drawEcg() {
		let c = charts.get("ecg");
		if (!ecg) {
			if (c)
				c.el.hidden = true;
			return;
		}
		if (!c) {
			const b = box({ id: "ecg", title: "ECG lead II strip", unit: "mV" });
			c = { def: null, el: b.el, now: b.now, box: b.plot, plot: null };
			charts.set("ecg", c);
		}
		c.el.hidden = false;
		const xs = ecg.v.map((_, i) => (i * ecg.period_us) / 1e6);
		const ys = ecg.v.map((s) => s * ecg.scale);
		c.now.textContent = MT.clock(ecg.t0_ms);
		if (c.plot)
			c.plot.destroy();
		c.plot = new uPlot({
			width: width(c.el), height: 170,
			scales: { x: { time: false } },
			series: [{ label: "s" }, { label: "mV", stroke: "#c8101b", width: 1 }],
			axes: [{ values: (u, v) => v.map((x) => x.toFixed(1) + " s") }, { size: 46 }],
		}, [xs, ys], c.box);
	}

	function load() {
		return fetch("/api/patient/" + pid + "/series?window=" + windowS, { credentials: "same-origin" })
			.then((r) => {
				if (r.status === 401)
					window.location.assign("/login");
				return r.ok ? r.json() : null;
			})
			.then((j) => {
				if (!j)
					return;
				points.clear();
				for (const code of Object.keys(j.obs))
					points.set(Number(code), { t: j.obs[code][0], v: j.obs[code][1] });
				points.set("news2", { t: j.news2[0], v: j.news2[1] });
				ecg = j.ecg;
				for (const id of charts.keys())
					if (id !== "ecg")
						draw(id);
				drawEcg();
			}, () => {});
	}

	for (const def of CHARTS) {
		const b = box(def);
		charts.set(def.id, { def, el: b.el, now: b.now, box: b.plot, plot: null, dirty: false });
	}

	function trim(p) {
		const from = MT.now() - windowS * 1000;
		let k = 0;
		while (k < p.t.length && p.t[k] < from)
			k++;
		if (k) {
			p.t.splice(0, k);
			p.v.splice(0, k);
		}
	}

	function push(code, t, v) {
		let p = points.get(code);
		if (!p)
			points.set(code, (p = { t: [], v: [] }));
		if (p.t.length && t < p.t[p.t.length - 1])
			return; /* late: the next load places it */
		p.t.push(t);
		p.v.push(v);
		trim(p);
		for (const c of charts.values())
			if (c.def && c.def.codes.some(([k]) => k === code))
				c.dirty = true;
	}

	const alarms = MT.alarmList(board.querySelector("[data-alarms]"), board.querySelector("[data-no-alarms]"));
	const fresh = board.querySelector("[data-fresh]");
	let lastRx = 0;

	MT.on("vitals", (d) => {
		if (d.patient !== pid)
			return;
		for (const o of d.obs)
			push(o.code, o.t, o.v);
		lastRx = d.at_ms;
		board.dataset.t = String(d.at_ms);
	});
	MT.on("news2", (d) => {
		if (d.patient !== pid)
			return;
		push("news2", d.at_ms, d.score);
		const badge = board.querySelector("[data-news2]");
		const band = d.score >= 7 ? "high" : d.score >= 5 ? "medium" : d.any_three ? "lowmed"
			: d.score > 0 ? "low" : "zero";
		badge.className = "news2 b-" + band;
		badge.querySelector("b").textContent = String(d.score);
	});
	MT.on("alarm", (a) => {
		if (a.patient === pid)
			alarms.apply(a);
	});
	MT.onResync((list) => {
		alarms.replace(list.filter((a) => a.patient === pid));
		load();
	});

	for (const b of document.querySelectorAll(".windows button"))
		b.addEventListener("click", () => {
			windowS = Number(b.dataset.w);
			for (const o of document.querySelectorAll(".windows button"))
				o.setAttribute("aria-pressed", String(o === b));
			load();
		});

	setInterval(() => {
		for (const [id, c] of charts)
			if (c.dirty && id !== "ecg")
				draw(id);
		if (lastRx) {
			const age = Math.floor((MT.now() - lastRx) / 1000);
			fresh.textContent = age > MT.staleS ? "no data for " + age + " s" : "newest reading " + MT.ago(lastRx);
			fresh.classList.toggle("stale", age > MT.staleS);
		}
	}, 1000);
	setInterval(load, 60000);
	window.addEventListener("resize", () => {
		for (const c of charts.values())
			if (c.plot)
				c.plot.setSize({ width: width(c.el), height: 170 });
	});
	load();
	MT.start();
})();
