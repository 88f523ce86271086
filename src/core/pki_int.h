/*
 * pki_int.h — what other parts of libmedtrust may borrow from mt_pki: the
 * OpenSSL X509 behind a `struct mt_cert`, for a TLS context or a verify
 * store that wants the object rather than its DER.  Never installed, never
 * included outside src/core and the PKI's own tests.
 */
#ifndef MT_PKI_INT_H
#define MT_PKI_INT_H

#include <openssl/x509.h>

#include "medtrust/mt_pki.h"

/* The certificate inside `c`, borrowed (valid until mt_cert_free; take a
 * reference with X509_up_ref to keep it longer).  Its extension cache is
 * filled when `c` is made, so reading it from several threads is safe. */
X509 *mt_cert__x509(const struct mt_cert *c);

#endif
