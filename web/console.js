/*
 * console.js — what every live page of the medtrust console shares: the
 * connection to the hub's live stream (GET /api/stream, Server-Sent
 * Events), the broken-stream warning, the hub's clock, number formatting,
 * alarm lists and the Acknowledge button (docs/console.md).
 *
 * The page is served with `script-src 'self'`: no inline script, no eval,
 * and nothing from data is ever written as markup — text only
 * (textContent), so a patient name or an alarm text with markup in it
 * shows as text (threat F06).
 *
 * A broken stream is shown at once: the stream's own error, or 15 s
 * without any event (the hub sends `tick` every 5 s), turn the header's
 * "Live" marker red and show the page's warning; the stream is then
 * reopened every 2 s until it answers.  After a break the page asks the
 * hub for the open alarms again (events may have been missed) and calls
 * the page's own resync.  A stream refused because the session ended
 * sends the browser to the sign-in page.
 */
"use strict";

const MT = (() => {
	const board = document.getElementById("board");
	const offset = board ? Number(board.dataset.now) - Date.now() : 0;
	const staleS = board ? Number(board.dataset.stale) : 60;
	const csrf = board ? board.dataset.csrf : "";
	const handlers = {};
	const resyncs = [];
	let es = null;
	let last = Date.now();
	let broken = false;
	let everBroken = false;
	let retry = null;

	/* Milliseconds on the hub's clock. */
	function now() {
		return Date.now() + offset;
	}

	function marker(ok) {
		const live = document.getElementById("live");
		const warn = document.getElementById("broken");
		if (live) {
			live.hidden = false;
			live.textContent = ok ? "Live" : "Live updates lost";
			live.classList.toggle("down", !ok);
		}
		if (warn)
			warn.hidden = ok;
		document.body.classList.toggle("stream-down", !ok);
	}

	function setBroken() {
		if (!broken) {
			broken = true;
			everBroken = true;
			marker(false);
		}
		if (es) {
			es.close();
			es = null;
		}
		if (!retry)
			retry = setTimeout(() => {
				retry = null;
				checkSession().then(connect);
			}, 2000);
	}

	/* A stream that will not open: signed out? */
	function checkSession() {
		return fetch("/api/alarms", { credentials: "same-origin" }).then((r) => {
			if (r.status === 401)
				window.location.assign("/login");
		}, () => {});
	}

	function connect() {
		if (es)
			return;
		es = new EventSource("/api/stream");
		last = Date.now();
		es.addEventListener("hello", () => {
			last = Date.now();
			if (broken) {
				broken = false;
				marker(true);
				resync();
			} else {
				marker(true);
			}
		});
		es.addEventListener("tick", () => {
			last = Date.now();
		});
		for (const type of Object.keys(handlers))
			es.addEventListener(type, (ev) => {
				last = Date.now();
				let data;
				try {
					data = JSON.parse(ev.data);
				} catch (e) {
					return;
				}
				for (const fn of handlers[type])
					fn(data);
			});
		es.onerror = () => setBroken();
	}

	/* After a break: the open alarms again, then the page's own. */
	function resync() {
		fetch("/api/alarms", { credentials: "same-origin" })
			.then((r) => (r.ok ? r.json() : null))
			.then((j) => {
				if (!j)
					return;
				for (const fn of resyncs)
					fn(j.alarms || []);
			}, () => {});
	}

	function on(type, fn) {
		(handlers[type] = handlers[type] || []).push(fn);
	}

	function onResync(fn) {
		resyncs.push(fn);
	}

	function start() {
		connect();
		setInterval(() => {
			if (!broken && Date.now() - last > 15000)
				setBroken();
		}, 1000);
	}

	/* A value with the device's decimals (99 or none: the quantity's). */
	function fmt(v, p, dflt) {
		const places = p === undefined || p === null || p === 99 || p > 6 ? dflt : p;
		return Number(v).toFixed(places);
	}

	function ago(ms) {
		const s = Math.max(0, Math.round((now() - ms) / 1000));
		if (s < 120)
			return s + " s ago";
		if (s < 7200)
			return Math.round(s / 60) + " min ago";
		return Math.round(s / 3600) + " h ago";
	}

	function clock(ms) {
		const d = new Date(ms);
		const p = (n) => String(n).padStart(2, "0");
		return p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
	}

	/* POST /api/alarms/ack: the stream then shows it acknowledged on every
	 * screen; a refusal is shown on the button. */
	function ack(id, button) {
		const body = new URLSearchParams({ id: String(id), csrf: csrf });
		button.disabled = true;
		return fetch("/api/alarms/ack", {
			method: "POST",
			credentials: "same-origin",
			headers: { "Content-Type": "application/x-www-form-urlencoded" },
			body: body.toString(),
		}).then((r) => r.json().then((j) => {
			if (!r.ok) {
				button.disabled = false;
				button.textContent = "Refused: " + (j.error || r.status);
			} else {
				button.textContent = "Acknowledging\u2026";
			}
		}), () => {
			button.disabled = false;
			button.textContent = "Not sent \u2014 retry";
		});
	}

	const PRIO = { 3: "high", 2: "medium", 1: "low" };

	/* Keep one <ul data-alarms> in step with alarm events. */
	function alarmList(ul, emptyNote, changed) {
		function item(a) {
			const li = document.createElement("li");
			li.dataset.alarm = String(a.alarm);
			const at = document.createElement("span");
			at.className = "at";
			li.appendChild(at);
			return li;
		}
		function paint(li, a) {
			const prio = typeof a.priority === "number" ? PRIO[a.priority] || "none" : a.priority;
			const acked = a.state === "acknowledged";
			li.className = "alarm p-" + prio + (acked ? " acked" : "");
			li.querySelector(".at").textContent = a.text;
			for (const el of li.querySelectorAll(".ackd, button"))
				el.remove();
			if (acked) {
				const s = document.createElement("span");
				s.className = "ackd";
				s.textContent = "acknowledged" + (a.by || a.acked_by ? " by " + (a.by || a.acked_by) : "");
				li.appendChild(document.createTextNode(" "));
				li.appendChild(s);
			} else {
				const b = document.createElement("button");
				b.type = "button";
				b.className = "ack";
				b.dataset.ack = String(a.alarm);
				b.textContent = "Acknowledge";
				li.appendChild(b);
			}
		}
		function apply(a) {
			let li = ul.querySelector('[data-alarm="' + Number(a.alarm) + '"]');
			if (a.state === "resolved" || a.phase === "end") {
				if (li)
					li.remove();
			} else {
				if (!li) {
					li = item(a);
					ul.prepend(li);
				}
				paint(li, a);
			}
			done();
		}
		function replace(list) {
			ul.replaceChildren();
			for (const a of list)
				if (a.state !== "resolved") {
					const li = item(a);
					ul.appendChild(li);
					paint(li, a);
				}
			done();
		}
		function done() {
			if (emptyNote)
				emptyNote.hidden = ul.children.length > 0;
			if (changed)
				changed(ul);
		}
		return { apply, replace };
	}

	/* Acknowledge buttons anywhere on the page. */
	document.addEventListener("click", (ev) => {
		const b = ev.target.closest("button[data-ack]");
		if (b)
			ack(Number(b.dataset.ack), b);
	});

	/* <time data-ms> written by the server: shown in the browser's zone. */
	for (const t of document.querySelectorAll("time[data-ms]"))
		t.textContent = clock(Number(t.dataset.ms));

	return { on, onResync, start, now, fmt, ago, clock, staleS, alarmList };
})();
