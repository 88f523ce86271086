#!/usr/bin/env bash
#
# test_pki_openssl.sh — mt_pki's products checked by the `openssl` command
# line alone (mt_pki.h; protocol §1 and §2; threats B02, B03).
#
# The unit test binary test_pki writes its certificates, CRL, CSR and PKCS#7
# bundle into $MT_PKI_OUT when that is set (its test_export); everything
# after that is an independent reading by OpenSSL's own tools, so a bug
# shared by mt_pki and the unit test's OpenSSL calls would still show here:
#
#   openssl verify -x509_strict  accepts the operational (P-256 and Ed25519),
#                                birth and server certificates, each for its
#                                purpose, and refuses a server certificate
#                                as a TLS client (B05)
#   openssl crl -verify          the CRL's signature checks against the CA
#   openssl verify -crl_check    refuses the revoked certificate, accepts a
#                                certificate that is not on the list (B03)
#   openssl pkcs7 -print_certs   lists the chain, leaf first, from the DER
#                                and from the base64 /cacerts form
#   openssl req -verify          the CSR's proof of possession checks
#   openssl x509 -text           shows the birth certificate's notAfter in
#                                9999, and the profile's extensions
#
# Skips (77) when the build or the openssl binary is missing.
set -euo pipefail

BUILD=${MT_BUILD_DIR:-}
BIN="$BUILD/test_pki"
if [[ -z "$BUILD" || ! -x "$BIN" ]]; then
	echo "SKIP: test_pki not built (MT_BUILD_DIR=$BUILD)"
	exit 77
fi
command -v openssl >/dev/null || { echo "SKIP: no openssl"; exit 77; }

OUT=$(mktemp -d /tmp/mt-pki-openssl-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
MT_PKI_OUT="$OUT" "$BIN" >"$OUT/unit.log" 2>&1 || { cat "$OUT/unit.log"; exit 1; }
cd "$OUT"
for f in ca.pem birth.pem op.pem op_ed.pem server.pem revoked.pem crl.pem chain.p7b chain.b64 csr.pem; do
	[[ -s "$f" ]] || { echo "FAIL  $f not written"; exit 1; }
done

fails=0
ok() { echo "ok    $1"; }
bad() { echo "FAIL  $1"; fails=$((fails + 1)); }
# expect_ok NAME CMD...: the command must succeed.
expect_ok() { local n=$1; shift; if "$@" >"$OUT/last.log" 2>&1; then ok "$n"; else bad "$n"; cat "$OUT/last.log"; fi; }
# expect_fail NAME PATTERN CMD...: the command must fail, saying PATTERN.
expect_fail() {
	local n=$1 pat=$2; shift 2
	if "$@" >"$OUT/last.log" 2>&1; then bad "$n (accepted)"; cat "$OUT/last.log";
	elif grep -q "$pat" "$OUT/last.log"; then ok "$n"; else bad "$n (wrong reason)"; cat "$OUT/last.log"; fi
}

V=(openssl verify -x509_strict -CAfile ca.pem)
expect_ok "verify operational (sslclient)" "${V[@]}" -purpose sslclient op.pem
expect_ok "verify operational Ed25519 (sslclient)" "${V[@]}" -purpose sslclient op_ed.pem
expect_ok "verify birth (sslclient)" "${V[@]}" -purpose sslclient birth.pem
expect_ok "verify server (sslserver)" "${V[@]}" -purpose sslserver server.pem
expect_fail "B05 server cert refused as client" "unsuitable certificate purpose" \
	"${V[@]}" -purpose sslclient server.pem

expect_ok "CRL signature" openssl crl -in crl.pem -CAfile ca.pem -noout -verify
expect_fail "B03 revoked cert refused with CRL" "certificate revoked" \
	"${V[@]}" -crl_check -CRLfile crl.pem revoked.pem
expect_ok "non-revoked cert accepted with CRL" "${V[@]}" -crl_check -CRLfile crl.pem op.pem
expect_fail "B04 CRL check without a CRL fails closed" "unable to get certificate CRL" \
	"${V[@]}" -crl_check op.pem
crl_text=$(openssl crl -in crl.pem -noout -text)
grep -q "Version 2" <<<"$crl_text" && grep -q "X509v3 CRL Number" <<<"$crl_text" &&
	grep -q "X509v3 Authority Key Identifier" <<<"$crl_text" &&
	grep -q "Key Compromise" <<<"$crl_text" && ok "CRL fields" || { bad "CRL fields"; echo "$crl_text"; }

subjects() { grep '^subject=' | sed 's/^subject=//'; }
p7=$(openssl pkcs7 -inform DER -in chain.p7b -print_certs -noout | subjects)
want=$(printf '%s\n' "CN = SN-0001" "O = Hospital, CN = medtrust operator CA")
[[ "$p7" == "$want" ]] && ok "PKCS#7 lists the chain, leaf first" || { bad "PKCS#7 chain"; echo "$p7"; }
openssl base64 -d -in chain.b64 -out chain_b64.der
cmp -s chain_b64.der chain.p7b && ok "base64 /cacerts form = DER" || bad "base64 form differs"
p7b=$(openssl pkcs7 -inform DER -in chain_b64.der -print_certs -noout | subjects)
[[ "$p7b" == "$want" ]] && ok "PKCS#7 from base64 lists the chain" || bad "PKCS#7 from base64"

expect_ok "CSR proof of possession" openssl req -verify -noout -in csr.pem
[[ "$(openssl req -in csr.pem -noout -subject)" == "subject=CN = SN-0001" ]] &&
	ok "CSR subject" || bad "CSR subject"

birth=$(openssl x509 -in birth.pem -noout -text)
grep -q "Not After : Dec 31 23:59:59 9999 GMT" <<<"$birth" && ok "birth notAfter 9999" ||
	{ bad "birth notAfter"; echo "$birth"; }
grep -q "Subject: O = Acme Medical, serialNumber = SN-0001, CN = SN-0001" <<<"$birth" &&
	ok "birth subject" || bad "birth subject"
grep -A1 "X509v3 Key Usage: critical" <<<"$birth" | grep -q "Digital Signature$" &&
	grep -A1 "X509v3 Extended Key Usage" <<<"$birth" | grep -q "TLS Web Client Authentication$" &&
	grep -A1 "X509v3 Basic Constraints: critical" <<<"$birth" | grep -q "CA:FALSE" &&
	ok "birth extensions" || { bad "birth extensions"; echo "$birth"; }
ca=$(openssl x509 -in ca.pem -noout -text)
grep -A1 "X509v3 Basic Constraints: critical" <<<"$ca" | grep -q "CA:TRUE, pathlen:0" &&
	grep -A1 "X509v3 Key Usage: critical" <<<"$ca" | grep -q "Certificate Sign, CRL Sign$" &&
	ok "CA extensions" || { bad "CA extensions"; echo "$ca"; }
srv=$(openssl x509 -in server.pem -noout -ext subjectAltName,extendedKeyUsage)
grep -q "DNS:broker.hospital.example, IP Address:127.0.0.1" <<<"$srv" &&
	grep -q "TLS Web Server Authentication" <<<"$srv" && ok "server SAN and EKU" ||
	{ bad "server SAN/EKU"; echo "$srv"; }

echo "pki openssl checks: $fails failure(s)"
[[ $fails -eq 0 ]]
