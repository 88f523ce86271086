/*
 * mt_err.h — the one error enumeration of libmedtrust.
 *
 * Every function that can fail returns an `enum mt_err`.  Codes are grouped
 * in ranges per layer so that a number in a log already says where it came
 * from.  The packet refusals (4xx) follow the check order of protocol §5
 * exactly: MT_ERR_PKT_SIZE is stage 1 and MT_ERR_PKT_IMPLAUSIBLE stage 14, so
 * comparing two codes compares how far a packet got.
 *
 * mt_err_str() gives a human sentence; mt_err_stage() gives the protocol's
 * stage name ("aead", "kid", ...) for packet refusals and NULL otherwise.
 * Both return static strings.
 */
#ifndef MT_ERR_H
#define MT_ERR_H

#if defined(__GNUC__)
#define MT_NODISCARD __attribute__((warn_unused_result))
#else
#define MT_NODISCARD
#endif

enum mt_err {
	MT_OK = 0,

	/* 1..99: general */
	MT_ERR_ARG = 1,        /* invalid argument from the caller */
	MT_ERR_NOMEM = 2,      /* allocation failed */
	MT_ERR_BUFFER = 3,     /* caller's output buffer too small */
	MT_ERR_IO = 4,         /* file or OS error */
	MT_ERR_CRYPTO = 5,     /* the crypto library failed unexpectedly */
	MT_ERR_INTERNAL = 6,   /* a bug: an invariant did not hold */
	MT_ERR_NOT_FOUND = 7,  /* no such object */
	MT_ERR_UNSUPPORTED = 8,/* valid but not supported here */
	MT_ERR_RANDOM = 9,     /* the random generator failed */
	MT_ERR_REFUSED = 10,   /* a peer (the hub) refused the request */

	/* 100..199: strict CBOR decoding and encoding (protocol "Strict CBOR") */
	MT_ERR_CBOR_TRUNCATED = 100,    /* item or length runs past the input */
	MT_ERR_CBOR_TRAILING = 101,     /* bytes after the top-level item */
	MT_ERR_CBOR_INDEFINITE = 102,   /* indefinite length or break code */
	MT_ERR_CBOR_NOT_SHORTEST = 103, /* head not in its shortest form */
	MT_ERR_CBOR_FLOAT_FORM = 104,   /* float not in its shortest exact form */
	MT_ERR_CBOR_FLOAT_NONFINITE = 105, /* NaN or infinity */
	MT_ERR_CBOR_SIMPLE = 106,       /* simple value other than false/true/null */
	MT_ERR_CBOR_TAG = 107,          /* tag not allowed here */
	MT_ERR_CBOR_UTF8 = 108,         /* text string is not valid UTF-8 */
	MT_ERR_CBOR_DEPTH = 109,        /* nesting deeper than 8 */
	MT_ERR_CBOR_MAP_SIZE = 110,     /* map of more than 16 entries */
	MT_ERR_CBOR_KEY_TYPE = 111,     /* map key neither int nor tstr */
	MT_ERR_CBOR_KEY_ORDER = 112,    /* map keys not in bytewise order */
	MT_ERR_CBOR_KEY_DUP = 113,      /* duplicated map key */
	MT_ERR_CBOR_MALFORMED = 114,    /* reserved additional information, bad byte */
	MT_ERR_CBOR_TYPE = 115,         /* an item of another type was expected */
	MT_ERR_CBOR_RANGE = 116,        /* integer outside the range expected */

	/* 200..299: key store */
	MT_ERR_KS_URI = 200,        /* key URI malformed or of an unknown scheme */
	MT_ERR_KS_MODULE = 201,     /* PKCS#11 module could not be loaded */
	MT_ERR_KS_TOKEN = 202,      /* token not found */
	MT_ERR_KS_PIN = 203,        /* PIN missing, wrong or locked */
	MT_ERR_KS_KEY_NOT_FOUND = 204,
	MT_ERR_KS_KEY_TYPE = 205,   /* key of the wrong type for the operation */
	MT_ERR_KS_PASSPHRASE = 206, /* MEDTRUST_KEY_PASSPHRASE missing or wrong */
	MT_ERR_KS_EXISTS = 207,     /* a key already exists under that name */
	MT_ERR_KS_OPERATION = 208,  /* the token refused or failed the operation */
	MT_ERR_KS_PERMISSION = 209, /* key file has unsafe permissions */

	/* 300..399: keys, signatures, AEAD */
	MT_ERR_KEY_FORMAT = 300,   /* public key unparsable or point not on curve */
	MT_ERR_KEY_TYPE = 301,     /* key type not supported or not the one expected */
	MT_ERR_SIG_FORMAT = 302,   /* signature wrong length or r/s out of range */
	MT_ERR_SIG_INVALID = 303,  /* signature does not verify */
	MT_ERR_AEAD_TAG = 304,     /* authentication tag does not verify */
	MT_ERR_COSE_FORMAT = 305,  /* COSE structure malformed */
	MT_ERR_COSE_ALG = 306,     /* algorithm missing, unknown or mismatching */
	MT_ERR_COSE_CRIT = 307,    /* crit header names a label not understood */

	/* 400..499: packet refusals, in the check order of protocol §5 */
	MT_ERR_PKT_SIZE = 401,
	MT_ERR_PKT_CBOR = 402,
	MT_ERR_PKT_HEADER = 403,
	MT_ERR_PKT_EPOCH = 404,
	MT_ERR_PKT_AEAD = 405,
	MT_ERR_PKT_INNER = 406,
	MT_ERR_PKT_ALG = 407,
	MT_ERR_PKT_KID = 408,
	MT_ERR_PKT_SIGNATURE = 409,
	MT_ERR_PKT_MESSAGE = 410,
	MT_ERR_PKT_DEV = 411,
	MT_ERR_PKT_INACTIVE = 412,
	MT_ERR_PKT_REPLAY = 413,
	MT_ERR_PKT_IMPLAUSIBLE = 414,
	MT_ERR_PKT_DUPLICATE = 420, /* seen before inside the window: not an attack */

	/* 500..599: JSON form of messages (protocol §9) */
	MT_ERR_JSON_SYNTAX = 500,  /* not JSON */
	MT_ERR_JSON_SCHEMA = 501,  /* JSON, but not a message: unknown name, wrong type */

	/* 600..699: X.509, CSRs, CRLs (mt_pki.h; threats B01-B06) */
	MT_ERR_PKI_SUBJECT = 600,     /* subject, device id or alt name malformed */
	MT_ERR_PKI_ISSUER = 601,      /* issuer cert not a CA, or not the key's */
	MT_ERR_PKI_FORMAT = 602,      /* not the DER structure expected */
	MT_ERR_PKI_TOO_LARGE = 603,   /* input over its size bound */
	MT_ERR_PKI_ALG = 604,         /* signature algorithm not the key's */
	MT_ERR_PKI_SELF_CHECK = 605,  /* a signature we made does not verify */
	MT_ERR_PKI_CSR_POP = 610,     /* CSR proof-of-possession fails */
	MT_ERR_PKI_CSR_REQUEST = 611, /* CSR asks for what is not allowed */
	MT_ERR_PKI_UNTRUSTED = 620,   /* no path to a trusted root */
	MT_ERR_PKI_SIGNATURE = 621,   /* a certificate signature fails */
	MT_ERR_PKI_EXPIRED = 622,
	MT_ERR_PKI_NOT_YET_VALID = 623,
	MT_ERR_PKI_REVOKED = 624,
	MT_ERR_PKI_USAGE = 625,       /* key usage, EKU or CA flag wrong */
	MT_ERR_PKI_CRL = 626,         /* CRL missing, invalid or out of date */
	MT_ERR_PKI_CHAIN = 627,       /* path too long, constraints violated */

	/* 700..799: audit chain (mt_audit.h); 710.. name why a record is bad */
	MT_ERR_AUDIT_FIELD = 700,     /* event field missing, too long, not UTF-8, bad name */
	MT_ERR_AUDIT_DETAIL = 701,    /* detail not a JSON object within bounds */
	MT_ERR_AUDIT_STORE = 702,     /* the audit database failed */
	MT_ERR_AUDIT_CONFLICT = 703,  /* sequence number already taken */
	MT_ERR_AUDIT_EDITED = 710,    /* record does not hash to its stored hash */
	MT_ERR_AUDIT_MISSING = 711,   /* sequence gap: a record deleted */
	MT_ERR_AUDIT_ORDER = 712,     /* record out of order: moved, swapped, duplicated */
	MT_ERR_AUDIT_LINK = 713,      /* prev_hash not the previous hash: inserted, rewritten */
	MT_ERR_AUDIT_CHECKPOINT_SIG = 714, /* checkpoint signature not the hub's */
	MT_ERR_AUDIT_CHECKPOINT = 715,     /* checkpoint does not match the record it names */
	MT_ERR_AUDIT_TRUNCATED = 716, /* chain ends before its last outside checkpoint */
	MT_ERR_AUDIT_FORMAT = 717,    /* stored record malformed */

	/* 800..899: configuration files (mt_config.h) */
	MT_ERR_CONFIG_SYNTAX = 800,   /* a line that is not `key value` */
	MT_ERR_CONFIG_UNKNOWN = 801,  /* a key the reader does not know */
	MT_ERR_CONFIG_DUPLICATE = 802,/* a key given twice */
	MT_ERR_CONFIG_TOO_LONG = 803, /* a line or the file over its bound */
	MT_ERR_CONFIG_UTF8 = 804,     /* not UTF-8, or a control character */

	/* 900..999: the device registry (mt_registry.h; threats D01-D06) */
	MT_ERR_REG_DB = 900,          /* the registry database failed */
	MT_ERR_REG_UNTRUSTED = 901,   /* manifest or birth cert of no trusted manufacturer */
	MT_ERR_REG_CONFLICT = 902,    /* serial owned by another manifest or birth key */
	MT_ERR_REG_STATE = 903,       /* device status forbids the operation */
	MT_ERR_REG_UNKNOWN = 904,     /* serial in no imported manifest */
	MT_ERR_REG_CLONE = 905,       /* same serial, another birth key or certificate */

	/* 1000..1099: the readings store (mt_store.h; threats J04, J05, FI05) */
	MT_ERR_STORE_DB = 1000,       /* the store's database failed */
	MT_ERR_STORE_FULL = 1001,     /* disk full: nothing was written (a passing failure) */
	MT_ERR_STORE_BUSY = 1002,     /* database locked past the busy timeout (passing) */
	MT_ERR_STORE_TAMPERED = 1003, /* a stored row does not decrypt or verify */

	/* 1100..1199: the device's store-and-forward queue and counter */
	MT_ERR_QUEUE_FULL = 1100,     /* queue at its bound and nothing may be dropped */
	MT_ERR_QUEUE_CORRUPT = 1101,  /* a queue or counter file is damaged */

	/* 1200..1299: HL7 v2 and MLLP (mt_hl7.h; clinical §4, threat G05) */
	MT_ERR_HL7_TEXT = 1200,       /* a text field holds a control character or bad UTF-8 */
	MT_ERR_HL7_VALUE = 1201,      /* a field missing or out of range, a value not finite */
	MT_ERR_HL7_TOO_LARGE = 1202,  /* a message or MLLP frame over its size bound */
	MT_ERR_HL7_SYNTAX = 1203,     /* a received message is not the HL7 expected */
	MT_ERR_HL7_FRAME = 1204,      /* MLLP framing broken (bytes outside a frame) */

	/* 1300..1399: downlink commands (mt_command.h; protocol §6), in the
	 * order a device checks them */
	MT_ERR_CMD_FORMAT = 1300,     /* not a tagged ES256 COSE_Sign1 with a kid, or too large */
	MT_ERR_CMD_KID = 1301,        /* kid is not the pinned command certificate's key's */
	MT_ERR_CMD_SIGNATURE = 1302,  /* signature malformed or does not verify */
	MT_ERR_CMD_PAYLOAD = 1303,    /* payload not strict CBOR or not the schema of §6 */
	MT_ERR_CMD_DEVICE = 1304,     /* key 1 names another device */
	MT_ERR_CMD_REPLAY = 1305,     /* counter not above the last one accepted */
	MT_ERR_CMD_STALE = 1306,      /* |now - ts| over 300 s */
};

/* A sentence describing `e`; never NULL. */
const char *mt_err_str(enum mt_err e);

/* The protocol stage name of a packet refusal ("size" ... "implausible",
 * "duplicate"), or NULL when `e` is not a packet refusal. */
const char *mt_err_stage(enum mt_err e);

#endif
