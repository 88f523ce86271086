#!/usr/bin/env bash
#
# tour-packets.sh — a short, real demonstration of medtrust's end-to-end packet
# protection (`make tour`).
#
# Nothing here is mocked: the keys are generated inside a SoftHSM2 PKCS#11
# token and never leave it, the packet is signed in the device's token and
# encrypted to the hub with a key agreed by ECDH, and the hub side opens it
# with the same checks, in the same order, as the hub daemon (protocol §5).
# The story, one step per heading:
#
#   1. a fresh token for the bedside monitor and one for the hub;
#   2. keys made inside them: the monitor's signing key (ldev) and
#      key-agreement key (kx), the hub's kx — only public halves come out;
#   3. a batch of vitals (clinical.md §1 codes) sealed by the monitor;
#   4. opened by the hub and shown as a table;
#   5. one flipped byte: refused at `aead`;
#   6. the original again: refused as a `duplicate` (anti-replay window);
#   7. key epochs: the previous epoch still accepted, an older one refused
#      at `epoch`;
#   8. the critical channel: a fast alert packet, opened at once.
#
# Everything lives in tour-deploy/ (git-ignored), recreated on every run;
# SOFTHSM2_CONF points at its own configuration so no system token is
# touched.  The script checks each outcome and exits non-zero if the
# platform did anything other than what the story says.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
MT=${MEDTRUST_BIN:-$ROOT/build/medtrust}
D=$ROOT/tour-deploy
DEV=icu-bed-07
EPOCH=5
PIN=4711
HUB_PIN=8152

if [[ ! -x "$MT" ]]; then
	echo "demo: $MT not found: run 'make build' first (or set MEDTRUST_BIN)" >&2
	exit 1
fi
for tool in softhsm2-util /usr/bin/python3 od; do
	command -v "$tool" >/dev/null || { echo "demo: $tool missing: run 'make deps'" >&2; exit 1; }
done

bold=$'\e[1m' dim=$'\e[2m' green=$'\e[32m' red=$'\e[31m' off=$'\e[0m'
if [[ ! -t 1 ]]; then bold='' dim='' green='' red='' off=''; fi
step=0
heading() { step=$((step + 1)); printf '\n%s== %d. %s ==%s\n' "$bold" "$step" "$1" "$off"; }
say() { printf '%s%s%s\n' "$dim" "$*" "$off"; }
ok() { printf '%s✔ %s%s\n' "$green" "$*" "$off"; }
die() { printf '%s✘ %s%s\n' "$red" "$*" "$off" >&2; exit 1; }
show() { printf '%s$ %s%s\n' "$dim" "$*" "$off"; }

# Expect `medtrust packet open` to refuse stdin $1 at stage $2 (exit 2).
expect_refusal() {
	local pkt=$1 stage=$2 rc=0
	shift 2
	show "medtrust packet open ...${*:+ $*} < ${pkt#"$ROOT"/}"
	"$MT" packet open "${OPEN_ARGS[@]}" "$@" <"$pkt" >"$D/out.json" 2>"$D/err.txt" || rc=$?
	cat "$D/err.txt"
	[[ $rc -eq 2 ]] || die "expected exit 2 (refused), got $rc"
	grep -q "^refused: $stage: " "$D/err.txt" || die "expected 'refused: $stage: ...'"
	ok "refused at stage '$stage' (exit 2)"
}

# Seal $1 (JSON file) with extra arguments into $2.
seal() {
	local json=$1 out=$2
	shift 2
	"$MT" packet seal --ldev "$DEV_LDEV" --kx "$DEV_KX" --hub-kx "$D/hub-kx.pub.pem" "$@" \
		<"$json" >"$out"
}

# A vitals message: counter $1, created now, written to $2.
vitals_json() {
	local ctr=$1 out=$2 ts
	ts=$(($(date +%s%3N)))
	cat >"$out" <<-EOF
	{"dev": "$DEV", "ctr": $ctr, "ts": $ts, "typ": 1, "obs": [
	  [0, 147842, 78, 264864],
	  [0, 150456, 96, 262688],
	  [-2000, 150021, 124, 266016],
	  [-2000, 150022, 78, 266016],
	  [-2000, 150023, 93, 266016],
	  [-60000, 150364, 37.2, 268192, 1],
	  [0, 151562, 18, 264928]]}
	EOF
}

printf '%smedtrust demo — a bedside monitor sends vitals to the hub, end to end%s\n' "$bold" "$off"
say "binary: ${MT#"$ROOT"/}; everything below lives in tour-deploy/ and is recreated each run"

# ---------------------------------------------------------------------------
heading "Fresh PKCS#11 tokens (SoftHSM2)"
say "One token plays the monitor's secure element, the other the hub's HSM."
rm -rf "$D"
mkdir -p "$D/tokens"
cat >"$D/softhsm2.conf" <<EOF
directories.tokendir = $D/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
export SOFTHSM2_CONF=$D/softhsm2.conf
show "softhsm2-util --init-token --free --label monitor --pin **** --so-pin ****"
softhsm2-util --init-token --free --label monitor --pin "$PIN" --so-pin 0000000 | sed 's/^/  /'
show "softhsm2-util --init-token --free --label hub --pin **** --so-pin ****"
softhsm2-util --init-token --free --label hub --pin "$HUB_PIN" --so-pin 0000000 | sed 's/^/  /'
ok "two tokens in tour-deploy/tokens"

# ---------------------------------------------------------------------------
heading "Keys generated inside the tokens"
say "Private keys are made in the token, non-extractable; only public halves (PEM) come out."
DEV_LDEV="pkcs11:token=monitor;object=ldev?pin-value=$PIN"
DEV_KX="pkcs11:token=monitor;object=kx?pin-value=$PIN"
HUB_KX="pkcs11:token=hub;object=kx?pin-value=$HUB_PIN"
show "medtrust key generate 'pkcs11:token=monitor;object=ldev?pin-value=****' --type p256 --role sign --pub ldev.pub.pem"
"$MT" key generate "$DEV_LDEV" --type p256 --role sign --pub "$D/ldev.pub.pem"
show "medtrust key generate 'pkcs11:token=monitor;object=kx?pin-value=****' --type p256 --role derive --pub kx.pub.pem"
"$MT" key generate "$DEV_KX" --type p256 --role derive --pub "$D/kx.pub.pem"
show "medtrust key generate 'pkcs11:token=hub;object=kx?pin-value=****' --type p256 --role derive --pub hub-kx.pub.pem"
"$MT" key generate "$HUB_KX" --type p256 --role derive --pub "$D/hub-kx.pub.pem"
for k in ldev kx hub-kx; do
	printf '  %-7s kid %s\n' "$k" "$("$MT" key kid --pub "$D/$k.pub.pem")"
done
if command -v pkcs11-tool >/dev/null; then
	say "What the monitor's token says about its private keys:"
	pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label monitor --login \
		--pin "$PIN" --list-objects --type privkey 2>/dev/null |
		grep -E 'Private Key|label|Usage|Access' | sed 's/^/  /' || true
fi
ok "ldev (sign) and kx (derive) in the monitor's token, kx in the hub's"

# ---------------------------------------------------------------------------
heading "The monitor seals a batch of vitals"
say "JSON in (codes from clinical.md §1), signed in the token (ES256), encrypted to the hub (A256GCM, epoch $EPOCH)."
vitals_json 1001 "$D/vitals.json"
sed 's/^/  /' "$D/vitals.json"
show "medtrust packet seal --ldev ... --kx ... --hub-kx hub-kx.pub.pem --epoch $EPOCH < vitals.json > vitals.pkt"
seal "$D/vitals.json" "$D/vitals.pkt" --epoch "$EPOCH"
printf '  %d bytes: %s ...\n' "$(stat -c %s "$D/vitals.pkt")" "$(od -An -tx1 -N24 "$D/vitals.pkt" | tr -d ' \n')"
say "  d0 = COSE_Encrypt0 tag, a10103 = A256GCM, 44 <epoch>, 4c <12-byte IV>, then ciphertext ‖ tag"
ok "sealed"

# ---------------------------------------------------------------------------
heading "The hub opens it"
say "Checks in protocol order: size, cbor, header, epoch, aead, inner, alg, kid, signature, message, dev, replay, implausible (inactive needs the registry of the hub)."
OPEN_ARGS=(--hub-kx "$HUB_KX" --ldev-pub "$D/ldev.pub.pem" --kx-pub "$D/kx.pub.pem"
	--device "$DEV" --epoch "$EPOCH" --state "$D/window.bin")
show "medtrust packet open --hub-kx 'pkcs11:token=hub;object=kx?...' --ldev-pub ldev.pub.pem --kx-pub kx.pub.pem --device $DEV --epoch $EPOCH --verbose --state window.bin < vitals.pkt"
"$MT" packet open "${OPEN_ARGS[@]}" --verbose <"$D/vitals.pkt" >"$D/opened.json"
/usr/bin/python3 - "$D/opened.json" <<'PY'
import json, sys, datetime
v = json.load(open(sys.argv[1]))
m = v["message"]
names = {147842: ("heart rate", "/min"), 149530: ("pulse rate", "/min"),
         150456: ("SpO2", "%"), 150021: ("NIBP systolic", "mmHg"),
         150022: ("NIBP diastolic", "mmHg"), 150023: ("NIBP mean", "mmHg"),
         150364: ("temperature", "°C"), 151562: ("respiratory rate", "/min"),
         160184: ("glucose", "mg/dL")}
ts = datetime.datetime.fromtimestamp(m["ts"] / 1000, datetime.timezone.utc)
print("  kind %s, epoch %d, device %s, counter %d, created %s UTC"
      % (v["kind"], v["epoch"], m["dev"], m["ctr"], ts.strftime("%Y-%m-%d %H:%M:%S")))
print("  %-18s %9s  %-6s %8s   %s" % ("quantity", "value", "unit", "age", "MDC code"))
print("  " + "-" * 58)
for o in m["obs"]:
    t, code, value, unit = o[:4]
    name, u = names.get(code, ("code %d" % code, "unit %d" % unit))
    places = o[4] if len(o) > 4 else (1 if code == 150364 else 0)
    print("  %-18s %9.*f  %-6s %7.0fs   %d" % (name, places, value, u, -t / 1000, code))
PY
ok "accepted: signature verified against the registered key, counter 1001 recorded in window.bin"

# ---------------------------------------------------------------------------
heading "A tampered packet"
say "One bit flipped in the ciphertext, as a compromised broker or relay might: AES-GCM's tag fails."
cp "$D/vitals.pkt" "$D/tampered.pkt"
size=$(stat -c %s "$D/tampered.pkt")
/usr/bin/python3 - "$D/tampered.pkt" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x01
open(p, "wb").write(b)
PY
say "  byte $((size / 2)) of $size flipped"
expect_refusal "$D/tampered.pkt" aead

# ---------------------------------------------------------------------------
heading "A replayed packet"
say "The untouched original, sent again: its counter is already in the hub's anti-replay window."
expect_refusal "$D/vitals.pkt" duplicate

# ---------------------------------------------------------------------------
heading "Key epochs"
say "The hub is at epoch $EPOCH: packets of epoch $((EPOCH - 1)) are still accepted during rotation, older ones never."
vitals_json 1002 "$D/vitals-prev.json"
seal "$D/vitals-prev.json" "$D/prev-epoch.pkt" --epoch $((EPOCH - 1))
show "medtrust packet open ... < prev-epoch.pkt   (sealed with --epoch $((EPOCH - 1)))"
"$MT" packet open "${OPEN_ARGS[@]}" --verbose <"$D/prev-epoch.pkt" >"$D/prev.json"
/usr/bin/python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print("  accepted: epoch %d, counter %d" % (v["epoch"], v["message"]["ctr"]))' "$D/prev.json"
ok "previous epoch accepted"
vitals_json 1003 "$D/vitals-old.json"
seal "$D/vitals-old.json" "$D/old-epoch.pkt" --epoch $((EPOCH - 2))
say "  sealed with --epoch $((EPOCH - 2)): refused before any key is derived or anything decrypted"
expect_refusal "$D/old-epoch.pkt" epoch

# ---------------------------------------------------------------------------
heading "The critical channel: a fast alert"
say "typ 2 on up/alert: AEAD only (no signature) for the lowest latency; its readings are repeated in the next sealed packet."
cat >"$D/alert.json" <<EOF
{"dev": "$DEV", "ctr": 1004, "ts": $(date +%s%3N), "typ": 2,
 "obs": [[0, 150456, 84, 262688]], "alrt": {"code": 1001, "prio": 3, "text": "SpO2 low"}}
EOF
show "medtrust packet seal --fast ... --epoch $EPOCH < alert.json > alert.pkt"
"$MT" packet seal --fast --kx "$DEV_KX" --hub-kx "$D/hub-kx.pub.pem" --epoch "$EPOCH" \
	<"$D/alert.json" >"$D/alert.pkt"
"$MT" packet open "${OPEN_ARGS[@]}" --verbose <"$D/alert.pkt" >"$D/alert-open.json"
/usr/bin/python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); a=v["message"]["alrt"]; print("  kind %s: alert %d, priority %d (high): %s" % (v["kind"], a["code"], a["prio"], a.get("text","")))' "$D/alert-open.json"
ok "fast alert accepted ($(stat -c %s "$D/alert.pkt") bytes)"

printf '\n%sDemo complete:%s keys never left their tokens; the hub accepted what the monitor sealed\n' "$bold" "$off"
printf 'and refused tampering (aead), replay (duplicate) and a stale key epoch (epoch).\n'
