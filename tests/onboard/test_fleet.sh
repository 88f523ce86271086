#!/usr/bin/env bash
# test_fleet.sh — issue 3's end-to-end acceptance: manufacture 1,000
# soft-key devices, trust their manufacturer, import their manifest, and
# enrol and onboard every one over mTLS against the hub's HTTPS service;
# then check the registry holds each device active, with the certificate
# the device received, at key epoch 1.  The work is bench/onboard's (the
# same run `make bench-onboard` reports figures for); this test asserts its
# verdict and the figures' presence, never a speed.
#
# The same 1,000 devices in the sanitizer build (about 30 s there);
# MT_FLEET_DEVICES overrides the count for a quick local run.
set -euo pipefail
build="${MT_BUILD_DIR:?MT_BUILD_DIR not set}"
bench="$build/bench/onboard"
[[ -x "$bench" ]] || { echo "skip: $bench not built"; exit 77; }
n="${MT_FLEET_DEVICES:-1000}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$("$bench" --devices "$n" --clients 4 --medtrust "$build/medtrust" --dir "$tmp" --json 2>"$tmp/err") || {
	cat "$tmp/err" >&2; echo "$out"; echo "FAIL: bench/onboard exit $?"; exit 1; }
echo "$out"
/usr/bin/python3 - "$out" "$n" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); n = int(sys.argv[2])
for k in ("enrolled", "onboarded", "registry_active", "registry_cert_matches"):
    assert r[k] == n, f"{k} = {r[k]}, expected {n}"
assert r["enrolments_per_s"] > 0 and r["onboardings_per_s"] > 0
print(f"ok: {n} devices manufactured, imported, enrolled and onboarded; "
      f"{r['enrolments_per_s']:.0f} enrolments/s here (goal {r['goal_per_s']:.0f}/s is bench-onboard's)")
PY
