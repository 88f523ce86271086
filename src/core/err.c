/*
 * err.c — sentences and stage names for enum mt_err (see mt_err.h).
 */
#include "medtrust/mt_err.h"

#include <stddef.h>

const char *mt_err_str(enum mt_err e)
{
	switch (e) {
	case MT_OK: return "success";
	case MT_ERR_ARG: return "invalid argument";
	case MT_ERR_NOMEM: return "out of memory";
	case MT_ERR_BUFFER: return "output buffer too small";
	case MT_ERR_IO: return "input/output error";
	case MT_ERR_CRYPTO: return "cryptographic library failure";
	case MT_ERR_INTERNAL: return "internal error";
	case MT_ERR_NOT_FOUND: return "not found";
	case MT_ERR_UNSUPPORTED: return "not supported";
	case MT_ERR_RANDOM: return "random number generator failure";
	case MT_ERR_REFUSED: return "refused by the peer";
	case MT_ERR_CBOR_TRUNCATED: return "CBOR item runs past the end of the input";
	case MT_ERR_CBOR_TRAILING: return "bytes after the CBOR item";
	case MT_ERR_CBOR_INDEFINITE: return "indefinite-length CBOR item or break code";
	case MT_ERR_CBOR_NOT_SHORTEST: return "CBOR head not in its shortest form";
	case MT_ERR_CBOR_FLOAT_FORM: return "CBOR float not in its shortest exact form";
	case MT_ERR_CBOR_FLOAT_NONFINITE: return "CBOR float is NaN or infinite";
	case MT_ERR_CBOR_SIMPLE: return "CBOR simple value other than false, true or null";
	case MT_ERR_CBOR_TAG: return "CBOR tag not allowed here";
	case MT_ERR_CBOR_UTF8: return "CBOR text string is not valid UTF-8";
	case MT_ERR_CBOR_DEPTH: return "CBOR nesting deeper than 8";
	case MT_ERR_CBOR_MAP_SIZE: return "CBOR map of more than 16 entries";
	case MT_ERR_CBOR_KEY_TYPE: return "CBOR map key neither integer nor text";
	case MT_ERR_CBOR_KEY_ORDER: return "CBOR map keys not in bytewise order";
	case MT_ERR_CBOR_KEY_DUP: return "CBOR map key duplicated";
	case MT_ERR_CBOR_MALFORMED: return "malformed CBOR";
	case MT_ERR_CBOR_TYPE: return "CBOR item of an unexpected type";
	case MT_ERR_CBOR_RANGE: return "CBOR integer out of range";
	case MT_ERR_KS_URI: return "key URI malformed or of an unknown scheme";
	case MT_ERR_KS_MODULE: return "PKCS#11 module could not be loaded";
	case MT_ERR_KS_TOKEN: return "token not found";
	case MT_ERR_KS_PIN: return "PIN missing, wrong or locked";
	case MT_ERR_KS_KEY_NOT_FOUND: return "key not found in the key store";
	case MT_ERR_KS_KEY_TYPE: return "key of the wrong type or usage for the operation";
	case MT_ERR_KS_PASSPHRASE: return "key passphrase missing or wrong (MEDTRUST_KEY_PASSPHRASE)";
	case MT_ERR_KS_EXISTS: return "a key already exists under that name";
	case MT_ERR_KS_OPERATION: return "the key store refused or failed the operation";
	case MT_ERR_KS_PERMISSION: return "key file is readable by other users";
	case MT_ERR_KEY_FORMAT: return "public key malformed or not on its curve";
	case MT_ERR_KEY_TYPE: return "key type not supported or not the one expected";
	case MT_ERR_SIG_FORMAT: return "signature of the wrong length or out of range";
	case MT_ERR_SIG_INVALID: return "signature does not verify";
	case MT_ERR_AEAD_TAG: return "authentication tag does not verify";
	case MT_ERR_COSE_FORMAT: return "COSE structure malformed";
	case MT_ERR_COSE_ALG: return "COSE algorithm missing, unknown or not the key's";
	case MT_ERR_COSE_CRIT: return "COSE crit header names a label not understood";
	case MT_ERR_PKT_SIZE: return "packet larger than 65,536 bytes";
	case MT_ERR_PKT_CBOR: return "packet is not strict CBOR";
	case MT_ERR_PKT_HEADER: return "packet header malformed";
	case MT_ERR_PKT_EPOCH: return "key epoch not accepted";
	case MT_ERR_PKT_AEAD: return "packet authentication tag does not verify";
	case MT_ERR_PKT_INNER: return "inner object malformed or not allowed here";
	case MT_ERR_PKT_ALG: return "signature algorithm not the registered key's";
	case MT_ERR_PKT_KID: return "kid missing or not the registered key's";
	case MT_ERR_PKT_SIGNATURE: return "signature invalid";
	case MT_ERR_PKT_MESSAGE: return "message does not match the MTP/1 schema";
	case MT_ERR_PKT_DEV: return "message device id does not match the sender";
	case MT_ERR_PKT_INACTIVE: return "device unknown, revoked or decommissioned";
	case MT_ERR_PKT_REPLAY: return "counter replayed below the window or jumped too far";
	case MT_ERR_PKT_IMPLAUSIBLE: return "observation outside the plausible clinical range";
	case MT_ERR_PKT_DUPLICATE: return "counter already seen (duplicate)";
	case MT_ERR_JSON_SYNTAX: return "input is not valid JSON";
	case MT_ERR_JSON_SCHEMA: return "JSON does not describe an MTP/1 message";
	case MT_ERR_PKI_SUBJECT: return "subject name, device id or alternative name malformed";
	case MT_ERR_PKI_ISSUER: return "issuer certificate is not a CA or does not match the issuer key";
	case MT_ERR_PKI_FORMAT: return "not the DER certificate, request or list expected";
	case MT_ERR_PKI_TOO_LARGE: return "certificate, request or list larger than allowed";
	case MT_ERR_PKI_ALG: return "signature algorithm does not match the key";
	case MT_ERR_PKI_SELF_CHECK: return "the signature made through the key store does not verify";
	case MT_ERR_PKI_CSR_POP: return "certificate request signature (proof of possession) does not verify";
	case MT_ERR_PKI_CSR_REQUEST: return "certificate request asks for attributes or extensions not allowed";
	case MT_ERR_PKI_UNTRUSTED: return "certificate does not chain to a trusted root";
	case MT_ERR_PKI_SIGNATURE: return "certificate signature does not verify";
	case MT_ERR_PKI_EXPIRED: return "certificate has expired";
	case MT_ERR_PKI_NOT_YET_VALID: return "certificate is not yet valid";
	case MT_ERR_PKI_REVOKED: return "certificate has been revoked";
	case MT_ERR_PKI_USAGE: return "certificate key usage, extended key usage or CA flag not allowed here";
	case MT_ERR_PKI_CRL: return "revocation list missing, invalid or out of date";
	case MT_ERR_PKI_CHAIN: return "certificate path too long or violates its constraints";
	case MT_ERR_AUDIT_FIELD: return "audit event field missing, too long, not UTF-8 or malformed";
	case MT_ERR_AUDIT_DETAIL: return "audit detail is not a JSON object within bounds";
	case MT_ERR_AUDIT_STORE: return "audit database failure";
	case MT_ERR_AUDIT_CONFLICT: return "audit sequence number already taken";
	case MT_ERR_AUDIT_EDITED: return "audit record does not hash to its stored hash (edited)";
	case MT_ERR_AUDIT_MISSING: return "audit record missing (sequence gap: deleted)";
	case MT_ERR_AUDIT_ORDER: return "audit record out of order (moved, swapped or duplicated)";
	case MT_ERR_AUDIT_LINK: return "audit record does not chain to the one before it (inserted or rewritten)";
	case MT_ERR_AUDIT_CHECKPOINT_SIG: return "audit checkpoint signature does not verify with the hub key";
	case MT_ERR_AUDIT_CHECKPOINT: return "audit checkpoint does not match the record it names";
	case MT_ERR_AUDIT_TRUNCATED: return "audit chain ends before its last outside checkpoint (truncated)";
	case MT_ERR_AUDIT_FORMAT: return "audit record malformed";
	case MT_ERR_CONFIG_SYNTAX: return "configuration line is not 'key value'";
	case MT_ERR_CONFIG_UNKNOWN: return "unknown configuration key";
	case MT_ERR_CONFIG_DUPLICATE: return "configuration key given twice";
	case MT_ERR_CONFIG_TOO_LONG: return "configuration line or file too long";
	case MT_ERR_CONFIG_UTF8: return "configuration text is not UTF-8 or holds a control character";
	case MT_ERR_REG_DB: return "the device registry database failed";
	case MT_ERR_REG_UNTRUSTED: return "not from a trusted manufacturer";
	case MT_ERR_REG_CONFLICT: return "device already claimed by another manifest or birth key";
	case MT_ERR_REG_STATE: return "the device's status does not allow this";
	case MT_ERR_REG_UNKNOWN: return "serial not in any imported manifest";
	case MT_ERR_REG_CLONE: return "possible clone: serial presented with another birth key or certificate";
	case MT_ERR_STORE_DB: return "the readings store failed";
	case MT_ERR_STORE_FULL: return "the readings store's disk is full";
	case MT_ERR_STORE_BUSY: return "the readings store is locked";
	case MT_ERR_STORE_TAMPERED: return "a stored record does not decrypt or verify (tampered)";
	case MT_ERR_QUEUE_FULL: return "the device queue is full";
	case MT_ERR_QUEUE_CORRUPT: return "a device queue or counter file is damaged";
	case MT_ERR_HL7_TEXT: return "HL7 text holds a control character or invalid UTF-8";
	case MT_ERR_HL7_VALUE: return "HL7 field missing or out of range";
	case MT_ERR_HL7_TOO_LARGE: return "HL7 message or MLLP frame too large";
	case MT_ERR_HL7_SYNTAX: return "not a well-formed HL7 message";
	case MT_ERR_HL7_FRAME: return "MLLP framing error";
	case MT_ERR_CMD_FORMAT: return "command is not a tagged ES256 COSE_Sign1 with a kid";
	case MT_ERR_CMD_KID: return "command kid is not the pinned command key's";
	case MT_ERR_CMD_SIGNATURE: return "command signature does not verify";
	case MT_ERR_CMD_PAYLOAD: return "command payload is not the schema of protocol section 6";
	case MT_ERR_CMD_DEVICE: return "command is for another device";
	case MT_ERR_CMD_REPLAY: return "command counter is not above the last one accepted (replay)";
	case MT_ERR_CMD_STALE: return "command timestamp more than 300 s from the device's clock";
	}
	return "unknown error";
}

const char *mt_err_stage(enum mt_err e)
{
	switch (e) {
	case MT_ERR_PKT_SIZE: return "size";
	case MT_ERR_PKT_CBOR: return "cbor";
	case MT_ERR_PKT_HEADER: return "header";
	case MT_ERR_PKT_EPOCH: return "epoch";
	case MT_ERR_PKT_AEAD: return "aead";
	case MT_ERR_PKT_INNER: return "inner";
	case MT_ERR_PKT_ALG: return "alg";
	case MT_ERR_PKT_KID: return "kid";
	case MT_ERR_PKT_SIGNATURE: return "signature";
	case MT_ERR_PKT_MESSAGE: return "message";
	case MT_ERR_PKT_DEV: return "dev";
	case MT_ERR_PKT_INACTIVE: return "inactive";
	case MT_ERR_PKT_REPLAY: return "replay";
	case MT_ERR_PKT_IMPLAUSIBLE: return "implausible";
	case MT_ERR_PKT_DUPLICATE: return "duplicate";
	default: return NULL;
	}
}
