/*
 * verify.c — re-verification of a stored reading (mt_verify.h; threat
 * J05; `medtrust verify-record`).
 *
 * The store keeps each reading's Sign1 exactly as the device signed it
 * and the serial of the operational certificate current at ingest; the
 * registry keeps every certificate it ever issued, DER and all.  This
 * file puts the two back together years later and asks the questions the
 * hub asked at ingest (protocol §5 stages 6–11) against evidence an
 * auditor can check independently: the operator CA certificate, the
 * certificate, the device's signature.
 *
 * The Sign1 is judged by its bytes, as the hub's opener does (packet.c):
 * protocol §4 fixes them to `d2 84 43 <alg 3 bytes> a1 04 48 <kid 8>
 * <bstr message> 58 40 <signature 64>`, so anything else — another
 * header, an untagged or non-deterministic encoding — was not what the
 * hub accepted.  The signature itself goes through the generic COSE
 * verifier.
 *
 * Operational failures (a database that cannot be read) are returned;
 * verdicts about the record are reported through *verdict, so that the
 * CLI can tell "record 17 is bad" (exit 1) from "could not look" (exit 2).
 */
#include <stdlib.h>
#include <string.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_cose.h"
#include "medtrust/mt_message.h"
#include "medtrust/mt_util.h"
#include "medtrust/mt_verify.h"

#define SIGN1_PREFIX 17 /* d2 84 43 a1 01 xx a1 04 48 kid8 */

static const uint8_t prot_es256[3] = {0xa1, 0x01, 0x26};
static const uint8_t prot_eddsa[3] = {0xa1, 0x01, 0x27};
static const uint8_t unprot_kid[3] = {0xa1, 0x04, 0x48};

/* The verdict on a row already decrypted.  Returns MT_OK with *verdict
 * set, or an operational error. */
static enum mt_err judge(struct mt_registry *reg, const struct mt_cert *ca,
                         const struct mt_store_row *row, enum mt_err *verdict, char *why,
                         size_t why_cap)
{
	static const uint64_t sign1_tag[] = {MT_COSE_TAG_SIGN1};
	struct mt_pki_verify_opts vo = {0};
	struct mt_cose_sign1 s1;
	struct mt_cert_rec rec;
	struct mt_cert *cert = NULL;
	struct mt_pubkey *pk = NULL;
	struct mt_message m;
	struct mt_obs *obs = NULL;
	const uint8_t *want;
	const char *reason = NULL;
	char cn[MT_PKI_CN_MAX];
	int64_t received_s = (int64_t)(row->received_ms / 1000u);
	enum mt_err e, v = MT_OK;

	/* 2. the certificate, as issued, and to whom */
	e = mt_registry_cert_load(reg, row->cert_serial, &rec, &cert);
	if (e == MT_ERR_NOT_FOUND || e == MT_ERR_PKI_FORMAT) {
		v = MT_ERR_PKI_UNTRUSTED;
		mt_say(why, why_cap, "certificate %s is not in the registry%s", row->cert_serial,
		       e == MT_ERR_PKI_FORMAT ? " as a valid certificate" : "");
		e = MT_OK;
		goto out;
	}
	if (e != MT_OK)
		goto out;
	if (strcmp(rec.device, row->dev) != 0) {
		v = MT_ERR_PKT_DEV;
		mt_say(why, why_cap, "certificate %s was issued to %s, not to %s", row->cert_serial,
		       rec.device, row->dev);
		goto out;
	}
	/* 3. its chain to the operator CA and its life at receipt */
	vo.at = received_s > 0 ? received_s : 1;
	vo.purpose = MT_PKI_PURPOSE_CLIENT;
	v = mt_pki_verify(cert, &ca, 1, &vo);
	if (v == MT_ERR_NOMEM) {
		e = v;
		v = MT_OK;
		goto out;
	}
	if (v != MT_OK) {
		mt_say(why, why_cap, "certificate %s at the reading's receipt: %s", row->cert_serial,
		       mt_err_str(v));
		goto out;
	}
	if (rec.revoked_at != 0 && rec.revoked_at <= received_s) {
		v = MT_ERR_PKI_REVOKED;
		mt_say(why, why_cap, "certificate %s was revoked before the reading was received",
		       row->cert_serial);
		goto out;
	}
	/* 4. the certificate names the device */
	if (mt_cert_subject_cn(cert, cn, sizeof cn) != MT_OK || strcmp(cn, row->dev) != 0) {
		v = MT_ERR_PKT_DEV;
		mt_say(why, why_cap, "certificate %s does not name device %s", row->cert_serial,
		       row->dev);
		goto out;
	}
	v = mt_cert_pubkey(cert, &pk);
	if (v != MT_OK) {
		mt_say(why, why_cap, "certificate %s: %s", row->cert_serial, mt_err_str(v));
		goto out;
	}
	/* 5. the Sign1, strict and of the §4 layout */
	if (mt_cbor_validate(row->sign1, row->sign1_len, sign1_tag, 1) != MT_OK ||
	    mt_cose_sign1_decode(row->sign1, row->sign1_len, true, &s1) != MT_OK ||
	    row->sign1_len < SIGN1_PREFIX || row->sign1[0] != 0xd2 || row->sign1[1] != 0x84 ||
	    row->sign1[2] != 0x43 || s1.payload == NULL) {
		v = MT_ERR_PKT_INNER;
		reason = "the stored object is not a strict, tagged COSE_Sign1";
		goto say;
	}
	/* 6. alg, fixed by the key type, compared as bytes */
	want = mt_pubkey_type(pk) == MT_KEY_P256      ? prot_es256
	       : mt_pubkey_type(pk) == MT_KEY_ED25519 ? prot_eddsa
	                                              : NULL;
	if (want == NULL || s1.prot_len != 3 || memcmp(s1.prot, want, 3) != 0 ||
	    memcmp(row->sign1 + 3, want, 3) != 0) {
		v = MT_ERR_PKT_ALG;
		reason = "the Sign1's algorithm is not the certificate key's";
		goto say;
	}
	/* 7. kid: the unprotected bucket is exactly {4: the key's kid} */
	if (memcmp(row->sign1 + 6, unprot_kid, 3) != 0 || s1.uh.kid == NULL ||
	    s1.uh.kid_len != MT_KID_LEN ||
	    memcmp(row->sign1 + 9, mt_pubkey_kid(pk), MT_KID_LEN) != 0) {
		v = MT_ERR_PKT_KID;
		reason = "the Sign1's kid is not the certificate key's";
		goto say;
	}
	/* 8. signature */
	if (s1.sig_len != MT_SIG_LEN || mt_cose_sign1_verify(&s1, pk, NULL, 0) != MT_OK) {
		v = MT_ERR_PKT_SIGNATURE;
		reason = "the device's signature does not verify";
		goto say;
	}
	/* 9. the message, and that it is the row */
	obs = malloc(MT_OBS_MAX * sizeof *obs);
	if (obs == NULL) {
		e = MT_ERR_NOMEM;
		goto out;
	}
	if (mt_message_decode(s1.payload, s1.payload_len, &m, obs, MT_OBS_MAX, &reason) != MT_OK) {
		v = MT_ERR_PKT_MESSAGE;
		mt_say(why, why_cap, "the signed message is not valid: %s",
		       reason != NULL ? reason : "schema");
		goto out;
	}
	if (strcmp(m.dev, row->dev) != 0) {
		v = MT_ERR_PKT_MESSAGE;
		reason = "the signed message's dev is not the row's device";
	} else if (m.ctr != row->ctr) {
		v = MT_ERR_PKT_MESSAGE;
		reason = "the signed message's ctr is not the row's counter";
	} else if (m.ts != row->ts_ms) {
		v = MT_ERR_PKT_MESSAGE;
		reason = "the signed message's ts is not the row's time";
	} else if (m.typ != row->typ) {
		v = MT_ERR_PKT_MESSAGE;
		reason = "the signed message's typ is not the row's type";
	}
say:
	if (v != MT_OK && reason != NULL)
		mt_say(why, why_cap, "%s", reason);
out:
	free(obs);
	mt_pubkey_free(pk);
	mt_cert_free(cert);
	*verdict = v;
	return e;
}

enum mt_err mt_verify_reading(struct mt_store *s, struct mt_registry *reg,
                              const struct mt_cert *ca, int64_t id, enum mt_err *verdict,
                              char *why, size_t why_cap)
{
	struct mt_store_row row;
	enum mt_err e;

	if (why != NULL && why_cap > 0)
		why[0] = '\0';
	if (verdict == NULL)
		return MT_ERR_ARG;
	*verdict = MT_OK;
	if (s == NULL || reg == NULL || ca == NULL)
		return MT_ERR_ARG;
	e = mt_store_reading_get(s, id, &row);
	if (e == MT_ERR_NOT_FOUND || e == MT_ERR_STORE_TAMPERED) {
		*verdict = e;
		mt_say(why, why_cap, "%s",
		       e == MT_ERR_NOT_FOUND
		               ? "no such record"
		               : "the stored row does not decrypt: edited, moved, or its data key "
		                 "does not unwrap");
		return MT_OK;
	}
	if (e != MT_OK)
		return e;
	e = judge(reg, ca, &row, verdict, why, why_cap);
	mt_store_row_clear(&row);
	return e;
}
