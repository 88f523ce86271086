/*
 * ward.js — the ward overview, live (docs/console.md, "The ward").
 *
 * The server renders one tile per patient of the clinician's wards with
 * the newest values, NEWS2 and open alarms; this script keeps them
 * current from the live stream (console.js):
 *   vitals  the values of the reading, the tile's freshness;
 *   news2   the score and its colour band;
 *   alarm   the tile's alarm list (flashing per IEC 60601-1-8 until
 *           acknowledged; removed when resolved) and the tile's border.
 * Every second each tile's freshness is redrawn on the hub's clock; a tile
 * without a reading for the stale limit turns grey and says "no data for
 * N s".  Each updated tile gets data-t = the hub's publication time of
 * the event shown (what bench/console measures).
 */
"use strict";

(() => {
	const tiles = new Map();
	for (const t of document.querySelectorAll("article.tile"))
		tiles.set(Number(t.dataset.patient), t);

	function border(tile) {
		const ul = tile.querySelector("[data-alarms]");
		const active = (p) => ul.querySelector(".alarm.p-" + p + ":not(.acked)") !== null;
		tile.classList.toggle("a-high", active("high"));
		tile.classList.toggle("a-medium", !active("high") && active("medium"));
	}

	const lists = new Map();
	for (const [pid, tile] of tiles) {
		lists.set(pid, MT.alarmList(tile.querySelector("[data-alarms]"), null, () => border(tile)));
		border(tile);
	}

	function fresh(tile) {
		const rx = Number(tile.dataset.rx);
		const p = tile.querySelector("[data-fresh]");
		if (!rx) {
			p.textContent = "no data yet";
			tile.classList.add("stale");
			return;
		}
		const age = Math.max(0, Math.floor((MT.now() - rx) / 1000));
		const stale = age > MT.staleS;
		tile.classList.toggle("stale", stale);
		p.textContent = stale ? "no data for " + age + " s" : age + " s ago";
	}

	MT.on("vitals", (d) => {
		const tile = tiles.get(d.patient);
		if (!tile)
			return;
		/* the ECG's heart rate wins over the oximeter's pulse in one reading */
		const hasHr = d.obs.some((o) => o.code === 147842);
		for (const o of d.obs) {
			if (o.code === 149530 && hasHr)
				continue;
			for (const el of tile.querySelectorAll('[data-c~="' + Number(o.code) + '"]'))
				el.textContent = MT.fmt(o.v, o.p, Number(el.dataset.p));
		}
		tile.dataset.rx = String(d.at_ms);
		tile.dataset.t = String(d.at_ms);
		fresh(tile);
	});

	MT.on("news2", (d) => {
		const tile = tiles.get(d.patient);
		if (!tile)
			return;
		const badge = tile.querySelector("[data-news2]");
		const band = d.score >= 7 ? "high" : d.score >= 5 ? "medium" : d.any_three ? "lowmed"
			: d.score > 0 ? "low" : "zero";
		badge.className = "news2 b-" + band;
		badge.querySelector("b").textContent = String(d.score);
	});

	MT.on("alarm", (a) => {
		const list = lists.get(a.patient);
		if (list)
			list.apply(a);
	});

	MT.onResync((alarms) => {
		const by = new Map();
		for (const a of alarms)
			if (a.patient > 0)
				(by.get(a.patient) || by.set(a.patient, []).get(a.patient)).push(a);
		for (const [pid, list] of lists)
			list.replace(by.get(pid) || []);
	});

	setInterval(() => {
		for (const tile of tiles.values())
			fresh(tile);
	}, 1000);
	for (const tile of tiles.values())
		fresh(tile);
	MT.start();
})();
