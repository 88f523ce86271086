/*
 * manifest.c — device manifests (protocol §1; mt_manifest.h).
 *
 * A manifest is the hospital's evidence that a device is genuine: the
 * manufacturer lists each serial with the kid of the key born in that
 * device's token and the digest of its birth certificate, and signs the list.
 * Onboarding later admits only a birth certificate whose serial, key and
 * digest stand in an imported manifest, so the structure must be decoded
 * exactly one way and refused whole on any doubt.
 *
 * Signing builds the Sig_structure prefix and the payload in one buffer, so
 * a token (which needs contiguous input for EdDSA and hashes nothing itself)
 * signs the exact bytes, and then assembles the tagged Sign1 around them.
 * Opening uses the generic COSE decoder (strict CBOR, tags, crit handling),
 * insists on the fixed MTP/1 shape — ES256, x5chain protected, nothing
 * unprotected — verifies with the leaf certificate's key, and only then
 * decodes the payload.  Chain-to-root trust is the registry's business and
 * stays outside this file.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen */

#include "medtrust/mt_manifest.h"

#include <stdlib.h>
#include <string.h>

#include "medtrust/mt_cbor.h"
#include "medtrust/mt_cose.h"
#include "medtrust/mt_pki.h"

static bool class_valid(const char *s, size_t n)
{
	if (n < 1 || n > MT_MANIFEST_CLASS_MAX || !mt_utf8_valid((const uint8_t *)s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static int cmp_serial(const void *a, const void *b)
{
	const struct mt_manifest_entry *const *x = a, *const *y = b;
	return strcmp((*x)->serial, (*y)->serial);
}

/* Schema of the entries and uniqueness of serials. */
static enum mt_err check_entries(const struct mt_manifest_entry *e, size_t n, const char **why)
{
	if (n == 0) {
		*why = "a manifest lists at least one device";
		return MT_ERR_PKT_MESSAGE;
	}
	const struct mt_manifest_entry **sorted = malloc(n * sizeof(*sorted));
	if (sorted == NULL)
		return MT_ERR_NOMEM;
	enum mt_err err = MT_OK;
	for (size_t i = 0; i < n && err == MT_OK; i++) {
		sorted[i] = &e[i];
		if (!mt_device_id_valid(e[i].serial, strnlen(e[i].serial, sizeof(e[i].serial)))) {
			*why = "serial is not a valid device id";
			err = MT_ERR_PKT_MESSAGE;
		} else if (!class_valid(e[i].device_class,
		                        strnlen(e[i].device_class, sizeof(e[i].device_class)))) {
			*why = "device class empty, over 64 bytes or not printable UTF-8";
			err = MT_ERR_PKT_MESSAGE;
		}
	}
	if (err == MT_OK) {
		qsort(sorted, n, sizeof(*sorted), cmp_serial);
		for (size_t i = 1; i < n; i++)
			if (strcmp(sorted[i - 1]->serial, sorted[i]->serial) == 0) {
				*why = "serial listed twice";
				err = MT_ERR_PKT_MESSAGE;
				break;
			}
	}
	free(sorted);
	return err;
}

static void put_entry(struct mt_cbor_enc *e, const struct mt_manifest_entry *x)
{
	mt_cbor_put_map(e, 4);
	mt_cbor_put_uint(e, 1);
	mt_cbor_put_tstr(e, x->serial, strlen(x->serial));
	mt_cbor_put_uint(e, 2);
	mt_cbor_put_tstr(e, x->device_class, strlen(x->device_class));
	mt_cbor_put_uint(e, 3);
	mt_cbor_put_bstr(e, x->birth_kid, MT_KID_LEN);
	mt_cbor_put_uint(e, 4);
	mt_cbor_put_bstr(e, x->birth_cert_sha256, 32);
}

enum mt_err mt_manifest_sign(struct mt_key *signer, const uint8_t *const *chain,
                             const size_t *chain_len, size_t n_chain,
                             const struct mt_manifest_entry *entries, size_t n,
                             uint8_t **out, size_t *out_len)
{
	const char *why = NULL;
	enum mt_err err;
	if (signer == NULL || out == NULL || out_len == NULL || n_chain < 1 ||
	    n_chain > MT_MANIFEST_CHAIN_MAX || (n > 0 && entries == NULL))
		return MT_ERR_ARG;
	if (mt_key_type(signer) != MT_KEY_P256)
		return MT_ERR_KEY_TYPE;
	if ((err = check_entries(entries, n, &why)) != MT_OK)
		return err == MT_ERR_NOMEM ? err : MT_ERR_ARG;

	/* Protected bucket {1: -7, 33: cert | [certs]}. */
	size_t prot_cap = 32;
	for (size_t i = 0; i < n_chain; i++)
		prot_cap += chain_len[i] + 9;
	/* An entry encodes in at most 1 + 2+66 + 2+66 + 1+9 + 1+34 bytes. */
	size_t pay_cap = 9 + n * 192;
	uint8_t *prot = malloc(prot_cap), *pay = malloc(pay_cap), *sig_in = NULL, *res = NULL;
	size_t prot_len = 0, pre_len = 0, pay_len = 0;
	uint8_t sig[MT_SIG_LEN];
	struct mt_cbor_enc e;
	if (prot == NULL || pay == NULL) {
		err = MT_ERR_NOMEM;
		goto done;
	}
	mt_cbor_enc_init(&e, prot, prot_cap);
	mt_cbor_put_map(&e, 2);
	mt_cbor_put_uint(&e, MT_COSE_HDR_ALG);
	mt_cbor_put_int(&e, MT_COSE_ALG_ES256);
	mt_cbor_put_uint(&e, MT_COSE_HDR_X5CHAIN);
	if (n_chain > 1)
		mt_cbor_put_array(&e, n_chain);
	for (size_t i = 0; i < n_chain; i++)
		mt_cbor_put_bstr(&e, chain[i], chain_len[i]);
	if ((err = mt_cbor_enc_finish(&e, &prot_len)) != MT_OK)
		goto done;

	mt_cbor_enc_init(&e, pay, pay_cap);
	mt_cbor_put_array(&e, n);
	for (size_t i = 0; i < n; i++)
		put_entry(&e, &entries[i]);
	if ((err = mt_cbor_enc_finish(&e, &pay_len)) != MT_OK)
		goto done;

	/* The bytes signed: Sig_structure prefix ‖ payload, contiguous. */
	size_t pre_cap = 32 + prot_len;
	if ((sig_in = malloc(pre_cap + pay_len)) == NULL) {
		err = MT_ERR_NOMEM;
		goto done;
	}
	if ((err = mt_cose_sig1_prefix(prot, prot_len, NULL, 0, pay_len, sig_in, pre_cap,
	                               &pre_len)) != MT_OK)
		goto done;
	memcpy(sig_in + pre_len, pay, pay_len);
	if ((err = mt_key_sign(signer, sig_in, pre_len + pay_len, sig)) != MT_OK)
		goto done;

	size_t cap = 32 + prot_len + pay_len + MT_SIG_LEN;
	if ((res = malloc(cap)) == NULL) {
		err = MT_ERR_NOMEM;
		goto done;
	}
	mt_cbor_enc_init(&e, res, cap);
	mt_cbor_put_tag(&e, MT_COSE_TAG_SIGN1);
	mt_cbor_put_array(&e, 4);
	mt_cbor_put_bstr(&e, prot, prot_len);
	mt_cbor_put_map(&e, 0);
	mt_cbor_put_bstr(&e, pay, pay_len);
	mt_cbor_put_bstr(&e, sig, MT_SIG_LEN);
	if ((err = mt_cbor_enc_finish(&e, out_len)) == MT_OK) {
		*out = res;
		res = NULL;
	}
done:
	free(res);
	free(sig_in);
	free(prot);
	free(pay);
	return err;
}

/* The x5chain item: one bstr, or an array of 2..MT_MANIFEST_CHAIN_MAX bstr. */
static enum mt_err copy_chain(const struct mt_cose_hdr *h, struct mt_manifest *m)
{
	struct mt_cbor_dec d;
	struct mt_cbor_item it;
	uint64_t n = 1;
	mt_cbor_dec_init(&d, h->x5chain, h->x5chain_len);
	size_t save = d.pos;
	if (!mt_cbor_next(&d, &it))
		return MT_ERR_COSE_FORMAT;
	if (it.type == MT_CBOR_ARRAY) {
		n = it.u;
		if (n < 2 || n > MT_MANIFEST_CHAIN_MAX)
			return MT_ERR_COSE_FORMAT;
	} else {
		d.pos = save;
	}
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *p;
		size_t len;
		if (!mt_cbor_get_bstr(&d, &p, &len) || len == 0)
			return MT_ERR_COSE_FORMAT;
		if ((m->chain[i] = malloc(len)) == NULL)
			return MT_ERR_NOMEM;
		memcpy(m->chain[i], p, len);
		m->chain_len[i] = len;
		m->n_chain = (size_t)i + 1;
	}
	return mt_cbor_dec_finish(&d) == MT_OK ? MT_OK : MT_ERR_COSE_FORMAT;
}

/* The leaf certificate's key, through the PKI module's strict parser (DER
 * only, so the chain a manifest names has one byte form). */
static enum mt_err leaf_key(const struct mt_manifest *m, struct mt_pubkey **pk)
{
	struct mt_cert *c = NULL;
	enum mt_err err = mt_cert_from_der(m->chain[0], m->chain_len[0], &c);
	if (err != MT_OK)
		return MT_ERR_KEY_FORMAT;
	err = mt_cert_pubkey(c, pk);
	mt_cert_free(c);
	return err;
}

static enum mt_err bad_payload(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return MT_ERR_PKT_MESSAGE;
}

static enum mt_err decode_entries(const uint8_t *p, size_t len, struct mt_manifest *m,
                                  const char **why)
{
	struct mt_cbor_dec d;
	uint64_t n;
	enum mt_err err = mt_cbor_validate(p, len, NULL, 0);
	if (err != MT_OK)
		return bad_payload(why, mt_err_str(err));
	mt_cbor_dec_init(&d, p, len);
	if (!mt_cbor_get_array(&d, &n) || n == 0)
		return bad_payload(why, "payload is not a non-empty array");
	if ((m->entries = calloc((size_t)n, sizeof(*m->entries))) == NULL)
		return MT_ERR_NOMEM;
	for (uint64_t i = 0; i < n; i++) {
		struct mt_manifest_entry *x = &m->entries[i];
		uint64_t pairs, k1, k2, k3, k4;
		const char *serial, *cls;
		const uint8_t *kid, *dig;
		size_t sn, cn, kn, dn;
		if (!mt_cbor_get_map(&d, &pairs) || pairs != 4 || !mt_cbor_get_uint(&d, &k1) ||
		    k1 != 1 || !mt_cbor_get_tstr(&d, &serial, &sn) || !mt_cbor_get_uint(&d, &k2) ||
		    k2 != 2 || !mt_cbor_get_tstr(&d, &cls, &cn) || !mt_cbor_get_uint(&d, &k3) ||
		    k3 != 3 || !mt_cbor_get_bstr(&d, &kid, &kn) || !mt_cbor_get_uint(&d, &k4) ||
		    k4 != 4 || !mt_cbor_get_bstr(&d, &dig, &dn))
			return bad_payload(why, "entry is not {1: serial, 2: class, 3: kid, 4: digest}");
		if (!mt_device_id_valid(serial, sn))
			return bad_payload(why, "serial is not a valid device id");
		if (!class_valid(cls, cn))
			return bad_payload(why, "device class empty, over 64 bytes or not printable");
		if (kn != MT_KID_LEN || dn != 32)
			return bad_payload(why, "kid must be 8 bytes and the digest 32");
		memcpy(x->serial, serial, sn);
		memcpy(x->device_class, cls, cn);
		memcpy(x->birth_kid, kid, MT_KID_LEN);
		memcpy(x->birth_cert_sha256, dig, 32);
		m->n_entries = (size_t)i + 1;
	}
	if (mt_cbor_dec_finish(&d) != MT_OK)
		return bad_payload(why, "bytes after the entries");
	const char *dup_why = NULL;
	err = check_entries(m->entries, m->n_entries, &dup_why);
	if (err == MT_ERR_PKT_MESSAGE)
		return bad_payload(why, dup_why);
	return err;
}

enum mt_err mt_manifest_open(const uint8_t *buf, size_t len, struct mt_manifest *m,
                             const char **why)
{
	struct mt_cose_sign1 s;
	struct mt_pubkey *pk = NULL;
	enum mt_err err;
	memset(m, 0, sizeof(*m));
	if (why)
		*why = NULL;
	if (buf == NULL || len > MT_MANIFEST_MAX)
		return MT_ERR_ARG;
	if ((err = mt_cose_sign1_decode(buf, len, true, &s)) != MT_OK)
		return err;
	if (!s.ph.has_alg || s.ph.alg != MT_COSE_ALG_ES256 || s.uh.has_alg)
		return MT_ERR_COSE_ALG;
	if (s.ph.x5chain == NULL || s.uh.x5chain != NULL || s.uh.kid != NULL ||
	    s.uh.iv != NULL || s.payload == NULL)
		return MT_ERR_COSE_FORMAT;
	if ((err = copy_chain(&s.ph, m)) != MT_OK)
		goto fail;
	if ((err = leaf_key(m, &pk)) != MT_OK)
		goto fail;
	err = mt_cose_sign1_verify(&s, pk, NULL, 0);
	mt_pubkey_free(pk);
	if (err != MT_OK)
		goto fail;
	if ((err = decode_entries(s.payload, s.payload_len, m, why)) != MT_OK)
		goto fail;
	return MT_OK;
fail:
	mt_manifest_free(m);
	return err;
}

void mt_manifest_free(struct mt_manifest *m)
{
	if (m == NULL)
		return;
	free(m->entries);
	for (size_t i = 0; i < m->n_chain; i++)
		free(m->chain[i]);
	memset(m, 0, sizeof(*m));
}
