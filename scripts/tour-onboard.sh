#!/usr/bin/env bash
#
# tour-onboard.sh — the second half of `make tour`: devices join a
# hospital's fleet with nobody typing anything, and one is cut off.
#
# All real: a hub deployment (`medtrust init`: its keys in a SoftHSM2
# token), a manufacturer with three devices, each with its own token and a
# birth key made inside it (`medtrust mfg make`), the hospital trusting the
# manufacturer and importing its signed manifest, `medtrustd` serving EST
# over mutual TLS, and `medtrust-device` onboarding each device by itself.
# The story:
#
#   1. the hub deployment;
#   2. the factory: a manufacturer and a lot of three devices;
#   3. the hospital trusts the manufacturer and imports the manifest;
#   4. medtrustd starts;
#   5. each device onboards by itself (ldev and kx made in its token, EST
#      enrolment with its birth certificate, the bundle);
#   6. a device from a lot whose manifest was never imported: refused;
#   7. a bedside monitor is stolen: revoked; the CRL and openssl agree, and
#      the hub refuses the device at once;
#   8. the audit chain: what happened, and that it is intact.
#
# Everything lives in tour-deploy/onboard/ (recreated each run).  Each
# outcome is checked; the script exits non-zero if the platform did
# anything other than what the story says.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
B=${MEDTRUST_BUILD:-$ROOT/build}
MT=$B/medtrust
HUBD=$B/medtrustd
AGENT=$B/medtrust-device
D=$ROOT/tour-deploy/onboard
for x in "$MT" "$HUBD" "$AGENT"; do
	[[ -x "$x" ]] || { echo "demo: $x not found: run 'make build' first" >&2; exit 1; }
done

bold=$'\e[1m' dim=$'\e[2m' green=$'\e[32m' red=$'\e[31m' off=$'\e[0m'
if [[ ! -t 1 ]]; then bold='' dim='' green='' red='' off=''; fi
step=0
heading() { step=$((step + 1)); printf '\n%s== %d. %s ==%s\n' "$bold" "$step" "$1" "$off"; }
say() { printf '%s%s%s\n' "$dim" "$*" "$off"; }
ok() { printf '%s✔ %s%s\n' "$green" "$*" "$off"; }
die() { printf '%s✘ %s%s\n' "$red" "$*" "$off" >&2; exit 1; }
show() { printf '%s$ %s%s\n' "$dim" "$*" "$off"; }

HUBPID=
cleanup() { [[ -n "$HUBPID" ]] && kill "$HUBPID" 2>/dev/null && wait "$HUBPID" 2>/dev/null; true; }
trap cleanup EXIT

printf '\n%smedtrust demo, part 2 — devices join the fleet by themselves%s\n' "$bold" "$off"
rm -rf "$D"
mkdir -p "$D"
unset SOFTHSM2_CONF MEDTRUST_CONFIG
export MEDTRUST_CONFIG=$D/hub/medtrust.conf

# ---------------------------------------------------------------------------
heading "The hub deployment"
show "medtrust init tour-deploy/onboard/hub --hospital 'St. Demo' --hub-host 127.0.0.1"
"$MT" init "$D/hub" --hospital "St. Demo" --hub-host 127.0.0.1 --broker-host 127.0.0.1 |
	sed 's/^/  /'
ok "operator CA, TLS, kx, command and audit keys made inside the hub's token"

# ---------------------------------------------------------------------------
heading "The factory"
show "medtrust mfg init tour-deploy/onboard/acme --name 'Acme Medical'"
"$MT" mfg init "$D/acme" --name "Acme Medical" >/dev/null
show "medtrust mfg make --mfg acme --count 3 --class monitor --out lot-1"
"$MT" mfg make --mfg "$D/acme" --count 3 --class monitor --out "$D/lot-1" 2>&1 | tail -n 1 |
	sed "s|$D/||g; s/^/  /"
show "medtrust mfg make --mfg acme --count 1 --class monitor --out lot-2   (its manifest stays at the factory)"
"$MT" mfg make --mfg "$D/acme" --count 1 --class monitor --out "$D/lot-2" >/dev/null 2>&1
mapfile -t DEVS < <(find "$D/lot-1" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
ok "${#DEVS[@]} devices, each with its own token holding a birth key made inside it, and a signed manifest"

# ---------------------------------------------------------------------------
heading "The hospital trusts the manufacturer and imports the manifest"
show "medtrust trust add-manufacturer acme/root.pem"
"$MT" trust add-manufacturer "$D/acme/root.pem" 2>&1 | sed 's/^/  /'
show "medtrust manifest import lot-1/manifest.cose"
"$MT" manifest import "$D/lot-1/manifest.cose" 2>&1 | sed "s|$D/||g; s/^/  /"
ok "the whitelist holds ${#DEVS[@]} devices, status manifested"

# ---------------------------------------------------------------------------
heading "medtrustd starts"
show "medtrustd --port 0 --port-file hub.port"
"$HUBD" --port 0 --port-file "$D/hub.port" 2>"$D/medtrustd.log" &
HUBPID=$!
for _ in $(seq 100); do [[ -s "$D/hub.port" ]] && break; sleep 0.1; done
[[ -s "$D/hub.port" ]] || { cat "$D/medtrustd.log"; die "medtrustd did not start"; }
PORT=$(cat "$D/hub.port")
HUB=https://127.0.0.1:$PORT
sed 's/^/  /' "$D/medtrustd.log"
ok "EST and onboarding on $HUB (mutual TLS; the hub's TLS key signs inside its token)"

# ---------------------------------------------------------------------------
heading "Each device onboards by itself"
say "ldev and kx generated in the device's token; EST simpleenroll with the birth certificate; the bundle."
for dev in "${DEVS[@]}"; do
	show "medtrust-device run --device lot-1/$dev --hub $HUB --hub-ca hub/pki/ca.pem --once"
	"$AGENT" run --device "$D/lot-1/$dev" --hub "$HUB" --hub-ca "$D/hub/pki/ca.pem" --once 2>&1 |
		sed 's/^/  /'
done
"$MT" device list | /usr/bin/python3 -c '
import json, sys
print("  %-22s %-8s %-6s %s" % ("device", "status", "epoch", "certificate serial"))
for l in sys.stdin:
    d = json.loads(l)
    print("  %-22s %-8s %-6d %s" % (d["id"], d["status"], d["epoch"], d["cert_serial"]))'
first=${DEVS[0]}
show "openssl verify -CAfile hub/pki/ca.pem lot-1/$first/op.pem"
openssl verify -CAfile "$D/hub/pki/ca.pem" "$D/lot-1/$first/op.pem" | sed "s|$D/||; s/^/  /"
ok "every device active, its operational certificate valid 30 days, renewed by the agent at 2/3"

# ---------------------------------------------------------------------------
heading "A device whose manifest was never imported"
stray=$(find "$D/lot-2" -mindepth 1 -maxdepth 1 -type d -printf '%f\n')
show "medtrust-device run --device lot-2/$stray ... --once"
rc=0
"$AGENT" run --device "$D/lot-2/$stray" --hub "$HUB" --hub-ca "$D/hub/pki/ca.pem" --once \
	>"$D/stray.out" 2>&1 || rc=$?
sed 's/^/  /' "$D/stray.out"
[[ $rc -eq 2 ]] && grep -q "no imported manifest" "$D/stray.out" || die "expected a refusal"
ok "refused: a genuine birth certificate is not enough; the serial must be on the hospital's whitelist"

# ---------------------------------------------------------------------------
heading "A monitor is stolen: revoke it"
victim=${DEVS[1]}
show "medtrust device revoke $victim --reason keyCompromise"
"$MT" device revoke "$victim" --reason keyCompromise 2>&1 | sed 's/^/  /'
show "openssl crl -in hub/pki/crl.pem -CAfile hub/pki/ca.pem -noout -verify -text | grep ..."
openssl crl -in "$D/hub/pki/crl.pem" -CAfile "$D/hub/pki/ca.pem" -noout -verify -text 2>&1 |
	grep -E 'verify OK|Serial Number|Key Compromise|Next Update' | sed 's/^ */  /'
show "openssl verify -crl_check -CRLfile hub/pki/crl.pem -CAfile hub/pki/ca.pem lot-1/$victim/op.pem"
if openssl verify -crl_check -CRLfile "$D/hub/pki/crl.pem" -CAfile "$D/hub/pki/ca.pem" \
	"$D/lot-1/$victim/op.pem" >"$D/verify.out" 2>&1; then
	die "the revoked certificate still verifies"
fi
grep -E 'revoked' "$D/verify.out" | sed "s|$D/||; s/^/  /"
show "medtrust-device run --device lot-1/$victim ... --once --renew-now"
rc=0
"$AGENT" run --device "$D/lot-1/$victim" --hub "$HUB" --hub-ca "$D/hub/pki/ca.pem" --once \
	--renew-now >"$D/victim.out" 2>&1 || rc=$?
sed 's/^/  /' "$D/victim.out"
[[ $rc -eq 2 ]] || die "expected the hub to refuse the revoked device"
ok "revoked: new CRL signed at once, the hub refuses the device immediately"

# ---------------------------------------------------------------------------
heading "The audit chain"
kill "$HUBPID"
wait "$HUBPID" 2>/dev/null || true
HUBPID=
show "medtrust audit tail --db hub/medtrust.db -n 40   (actions and outcomes)"
"$MT" audit tail --db "$D/hub/medtrust.db" -n 40 | /usr/bin/python3 -c '
import json, sys
for l in sys.stdin:
    r = json.loads(l)
    if r["kind"] != "event":
        continue
    print("  %5d  %-24s %-8s %-24s %s" % (r["seq"], r["action"], r["outcome"],
          r["subject"][:24], r["detail"].get("reason", "")))'
show "medtrust audit verify --db hub/medtrust.db --hub-pub hub/pki/hub-audit.pub.pem --checkpoints hub/audit.checkpoints"
"$MT" audit verify --db "$D/hub/medtrust.db" --hub-pub "$D/hub/pki/hub-audit.pub.pem" \
	--checkpoints "$D/hub/audit.checkpoints" 2>&1 | sed 's/^/  /'
ok "every enrolment, refusal and revocation is in the hash-chained, signed audit log"

printf '\n%sPart 2 complete:%s devices onboarded themselves against the hospital'"'"'s whitelist,\n' "$bold" "$off"
printf 'a stray device was refused, and a stolen one was cut off at once.\n'
