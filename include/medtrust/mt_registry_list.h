/*
 * mt_registry_list.h — the registry's manufacturers and manifests listed
 * for people: the console's administrator view (docs/console-admin.md).
 *
 * mt_registry.h answers the hub's questions (may this root sign, is this
 * serial in a manifest) on the hub's own connection, under the hub's
 * lock.  A listing for a page needs neither: it opens the registry
 * database read-only for the call, SELECTs with bound parameters only
 * (F08), and hands each row to a callback.  Nothing here changes the
 * registry; importing stays `medtrust trust add-manufacturer` and
 * `medtrust manifest import`, which verify and audit.
 */
#ifndef MT_REGISTRY_LIST_H
#define MT_REGISTRY_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "mt_err.h"
#include "mt_registry.h"

/* A trusted manufacturer and what came under it. */
struct mt_registry_mfg {
	int64_t id;
	char name[MT_REG_NAME_MAX + 1]; /* the root's subject CN as recorded */
	uint8_t root_sha256[32];        /* fingerprint of the root certificate */
	int64_t added_at;               /* Unix seconds */
	uint64_t manifests;             /* manifests imported */
	uint64_t devices;               /* devices of its manifests, any status */
};

/* An imported manifest. */
struct mt_registry_manifest {
	int64_t id;
	int64_t manufacturer_id;
	char manufacturer[MT_REG_NAME_MAX + 1];
	uint8_t sha256[32];  /* of the manifest file as imported */
	uint64_t entries;    /* devices it listed */
	int64_t imported_at; /* Unix seconds */
	uint64_t active;     /* its devices now active (enrolled) */
	uint64_t revoked;    /* ... revoked or decommissioned */
};

/* Every manufacturer of the registry database `db_path`, by id; cb's
 * non-MT_OK return stops the walk and is returned.  Errors: MT_ERR_ARG,
 * MT_ERR_REG_DB (cannot open or read), cb's. */
MT_NODISCARD enum mt_err
mt_registry_list_manufacturers(const char *db_path,
                               enum mt_err (*cb)(void *ctx, const struct mt_registry_mfg *m),
                               void *ctx);

/* Every manifest, newest import first; as above. */
MT_NODISCARD enum mt_err
mt_registry_list_manifests(const char *db_path,
                           enum mt_err (*cb)(void *ctx, const struct mt_registry_manifest *m),
                           void *ctx);

#endif
