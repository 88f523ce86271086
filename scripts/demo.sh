#!/usr/bin/env bash
#
# demo.sh — the whole platform, live, on this machine (`make demo`).
#
# What it starts is what a hospital runs, nothing mocked:
#
#   - a hub deployment (`medtrust init`): operator CA, TLS, kx, command and
#     audit keys and the key-encryption key inside a SoftHSM2 token;
#   - its own mosquitto (`medtrust broker run`): mutual TLS only, the
#     medtrust_mosq plugin checking every identity and topic;
#   - medtrustd: onboarding (EST), ingest, encrypted storage, the console;
#   - two manufacturers (Acme Medical: 16 wearables; Northwind Devices: 8
#     bedside monitors), their signed manifests imported, their roots
#     trusted;
#   - 24 patients on two wards, each wearing or watched by one device;
#   - the fleet simulator: the 24 devices onboard themselves zero-touch
#     (EST with their birth certificates), then send signed, encrypted
#     readings of their patients — most stable, some deteriorating into
#     sepsis, some with hypoxia episodes, sensor dropouts, low batteries —
#     time running 30× faster so that a sepsis onset shows in minutes.
#
# It prints the console's address and a one-time password for a user of
# each role (nurse, biomed, admin, auditor), opens the console in the
# desktop's browser when there is one, then prints a line of figures
# every 15 s.  Ctrl-C stops everything it started.  The
# deployment lives in demo-deploy/ (git-ignored): a second run reuses it
# (devices keep their identities, counters and queues; readings
# accumulate), `--fresh` recreates it.
#
# Options: --fresh, --hub-port N (8443), --broker-port N (8883) (a reused
# deployment keeps the ports it was made with),
# --seconds N (headless: run N seconds, then stop and exit 0 only if the
# stored readings grew — what tests/demo/test_demo.py does).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${MT_BUILD_DIR:-$ROOT/build}
MT=$BUILD/medtrust
HUBD=$BUILD/medtrustd
DEV=$BUILD/medtrust-device
PLUGIN=$BUILD/medtrust_mosq.so
D=${MT_DEMO_DIR:-$ROOT/demo-deploy}
HUB_PORT=8443 BROKER_PORT=8883 SECONDS_RUN=0 FRESH=0

while [[ $# -gt 0 ]]; do
	case $1 in
	--fresh) FRESH=1 ;;
	--hub-port) HUB_PORT=$2; shift ;;
	--broker-port) BROKER_PORT=$2; shift ;;
	--seconds) SECONDS_RUN=$2; shift ;;
	-h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "demo: unknown option $1 (see --help)" >&2; exit 64 ;;
	esac
	shift
done

for f in "$MT" "$HUBD" "$DEV" "$PLUGIN"; do
	[[ -x $f || -f $f ]] || { echo "demo: $f not built: run 'make build'" >&2; exit 1; }
done
command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] ||
	{ echo "demo: mosquitto missing: run 'make deps'" >&2; exit 1; }

bold=$'\e[1m' dim=$'\e[2m' green=$'\e[32m' red=$'\e[31m' off=$'\e[0m'
if [[ ! -t 1 ]]; then bold='' dim='' green='' red='' off=''; fi
say() { printf '%s%s%s\n' "$dim" "$*" "$off"; }
ok() { printf '%s✔ %s%s\n' "$green" "$*" "$off"; }
die() { printf '%s✘ %s%s\n' "$red" "$*" "$off" >&2; exit 1; }

# Soft devices keep their keys in files encrypted under this passphrase
# (the simulator runs 24 devices in one process; a real device has a token).
export MEDTRUST_KEY_PASSPHRASE=${MEDTRUST_KEY_PASSPHRASE:-demo-devices-passphrase}
unset SOFTHSM2_CONF MEDTRUST_CONFIG
CONF=$D/hub/medtrust.conf
PIDS=()

stop_all() {
	trap - INT TERM EXIT
	if [[ ${#PIDS[@]} -gt 0 ]]; then
		say "stopping: simulator, medtrustd, mosquitto"
		for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
		for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	fi
}
trap 'stop_all; exit 130' INT TERM
trap stop_all EXIT

wait_port() { # PORT WHAT LOG
	local i
	for i in $(seq 1 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	tail -n 20 "$3" >&2 || true
	die "$2 did not start (log: ${3#"$ROOT"/})"
}

stored() {
	/usr/bin/python3 - "$D/hub/data.db" <<'EOF'
import sqlite3, sys
try:
    c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=5)
    print(c.execute("SELECT count(*) FROM readings").fetchone()[0])
except Exception:
    print(0)
EOF
}

# ---- the deployment: reuse, or make afresh ------------------------------------
if [[ $FRESH == 1 || ! -f $D/.complete ]]; then
	rm -rf "$D"
	mkdir -p "$D/logs"
	printf '\n%s== a new deployment in demo-deploy/ ==%s\n' "$bold" "$off"
	"$MT" init "$D/hub" --hospital "St. Demo Hospital" --broker-port "$BROKER_PORT" \
		--broker-plugin "$PLUGIN" >/dev/null
	printf 'hub_port %s\n' "$HUB_PORT" >>"$CONF"
	ok "hub deployment: keys in its SoftHSM2 token, operator CA, broker configuration"
	"$MT" mfg init "$D/acme" --name "Acme Medical" >/dev/null
	"$MT" mfg init "$D/northwind" --name "Northwind Devices" >/dev/null
	"$MT" mfg make --mfg "$D/acme" --count 16 --class wearable --out "$D/fleet-acme" \
		--soft 2>/dev/null
	"$MT" mfg make --mfg "$D/northwind" --count 8 --class bedside-monitor \
		--out "$D/fleet-northwind" --soft 2>/dev/null
	ok "manufactured 16 wearables (Acme Medical) and 8 bedside monitors (Northwind Devices)"
	for m in acme northwind; do
		"$MT" trust add-manufacturer "$D/$m/root.pem" -c "$CONF" >/dev/null
		"$MT" manifest import "$D/fleet-$m/manifest.cose" -c "$CONF" >/dev/null
	done
	ok "both manufacturers trusted, their signed manifests imported"

	names=("Ada Lovelace" "Alan Turing" "Grace Hopper" "Edsger Dijkstra" "Barbara Liskov"
		"Donald Knuth" "Frances Allen" "John Backus" "Margaret Hamilton" "Ken Thompson"
		"Radia Perlman" "Dennis Ritchie" "Hedy Lamarr" "Claude Shannon" "Katherine Johnson"
		"Tim Berners-Lee" "Sophie Wilson" "Niklaus Wirth" "Adele Goldberg" "Leslie Lamport"
		"Shafi Goldwasser" "Whitfield Diffie" "Anita Borg" "Tony Hoare")
	mapfile -t devices < <(ls -d "$D"/fleet-acme/*/ "$D"/fleet-northwind/*/ | xargs -n1 basename)
	[[ ${#devices[@]} == 24 ]] || die "expected 24 devices, found ${#devices[@]}"
	for i in $(seq 0 23); do
		if ((i < 12)); then ward="Ward A (cardiology)"; else ward="Ward B (respiratory)"; fi
		id=$("$MT" patient add --name "${names[$i]}" --mrn "MRN$((100200 + i * 7))" \
			--ward "$ward" --bed "$((i % 12 + 1))" -c "$CONF")
		"$MT" patient assign "${devices[$i]}" "$id" -c "$CONF" >/dev/null 2>&1
	done
	ok "24 patients on two wards, each with a device (names and MRNs encrypted at rest)"
	touch "$D/.complete"
else
	printf '\n%s== reusing the deployment in demo-deploy/ (--fresh makes a new one) ==%s\n' \
		"$bold" "$off"
	# its ports are those it was made with
	HUB_PORT=$(awk '$1 == "hub_port" { print $2 }' "$CONF")
	BROKER_PORT=$(awk '$1 == "broker_port" { print $2 }' "$CONF")
	mkdir -p "$D/logs"
fi

# ---- start it ------------------------------------------------------------------
"$HUBD" -c "$CONF" >>"$D/logs/medtrustd.log" 2>&1 &
PIDS+=($!)
wait_port "$HUB_PORT" medtrustd "$D/logs/medtrustd.log"
ok "medtrustd: onboarding and console on https://localhost:$HUB_PORT/"
"$MT" broker run -c "$CONF" >>"$D/logs/mosquitto.log" 2>&1 &
PIDS+=($!)
wait_port "$BROKER_PORT" mosquitto "$D/logs/mosquitto.log"
ok "mosquitto with the medtrust plugin: mqtts://localhost:$BROKER_PORT (mutual TLS only)"

# One console user per role, each with a one-time password (reset on
# every run: the passwords are printed below and nowhere else).  The nurse
# sees both wards.
declare -A password=()
for u in nurse:clinician biomed:biomed admin:admin auditor:auditor; do
	name=${u%%:*} role=${u##*:}
	if "$MT" user list -c "$CONF" 2>/dev/null | grep -q "\"$name\""; then
		password[$name]=$("$MT" user reset "$name" -c "$CONF" 2>/dev/null) || true
	else
		password[$name]=$("$MT" user add "$name" --role "$role" -c "$CONF" 2>/dev/null) || true
	fi
done
"$MT" user wards nurse "Ward A (cardiology)" "Ward B (respiratory)" -c "$CONF" >/dev/null 2>&1 ||
	die "could not give the nurse her wards"

"$DEV" sim --fleet "$D/fleet-acme" --fleet "$D/fleet-northwind" \
	--hub "https://localhost:$HUB_PORT" --hub-ca "$D/hub/pki/ca.pem" \
	--scenario mixed --time-scale 30 --ecg --stats-s 15 --seed 2026 \
	>>"$D/logs/simulator.log" 2>&1 &
PIDS+=($!)
ok "simulator: 24 devices onboarding zero-touch, then sending readings"

printf '\n%s  console:   https://localhost:%s/%s\n' "$bold" "$HUB_PORT" "$off"
printf '%s  sign in as (one-time passwords: each user chooses a new one at first sign-in)%s\n' \
	"$bold" "$off"
for name in nurse biomed admin auditor; do
	printf '%s    %-8s %s%s\n' "$bold" "$name" "${password[$name]:-?}" "$off"
done
printf '  %snurse: the live ward (both wards) and patients; biomed: the fleet; admin: users,\n' "$dim"
printf '  wards, patients, integrations (adds an authenticator app at first sign-in);\n'
printf '  auditor: the audit chain%s\n' "$off"
printf '  %soperator CA (to trust in the browser): demo-deploy/hub/pki/ca.pem%s\n' "$dim" "$off"
printf '  %slogs: demo-deploy/logs/   Ctrl-C stops everything%s\n\n' "$dim" "$off"
# On a desktop, open the console (not in the headless runs of the tests).
if [[ $SECONDS_RUN -eq 0 && -n ${DISPLAY:-}${WAYLAND_DISPLAY:-} ]] && command -v xdg-open >/dev/null; then
	xdg-open "https://localhost:$HUB_PORT/" >/dev/null 2>&1 || true
fi

start=$(date +%s) first=$(stored) last=$first
while :; do
	sleep 15 &
	wait $! || true
	now=$(stored)
	el=$(($(date +%s) - start))
	# No stats line yet (a slow start) is not an error: grep's status 1
	# would end the script under pipefail.
	line=$({ grep 'devices connected' "$D/logs/simulator.log" || true; } | tail -n 1 |
		sed 's/^medtrust-device: //')
	printf '%s[%4ds] stored readings: %s (+%s)  %s%s\n' "$dim" "$el" "$now" "$((now - last))" \
		"$line" "$off"
	last=$now
	for p in "${PIDS[@]}"; do
		kill -0 "$p" 2>/dev/null || die "a process stopped; see demo-deploy/logs/"
	done
	if [[ $SECONDS_RUN -gt 0 && $el -ge $SECONDS_RUN ]]; then
		stop_all
		if ((now > first)); then
			ok "stored readings grew from $first to $now in ${el} s"
			exit 0
		fi
		die "no readings were stored in ${el} s"
	fi
done
