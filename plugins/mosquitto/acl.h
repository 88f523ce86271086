/*
 * acl.h — the topic decision of the broker plugin medtrust_mosq: which
 * identity may publish, subscribe to or receive which topic (protocol §3;
 * threats C01, C02, C08, C11; docs/broker.md).
 *
 * A pure function of its arguments — no broker, no registry, no I/O — so
 * that every adversarial topic can be tried on it in a unit test
 * (tests/unit/test_mosq_acl.c).  Who the client is has been settled
 * before it is called: the broker authenticated the certificate, the
 * plugin checked it against the registry and that the MQTT username is
 * its CN; `id` is that username.
 *
 * The access values are mosquitto's MOSQ_ACL_* (mosquitto_plugin.h); they
 * are repeated here so that this file needs no mosquitto header, and the
 * plugin asserts at compile time that they agree.
 */
#ifndef MT_MOSQ_ACL_H
#define MT_MOSQ_ACL_H

#include <stdbool.h>
#include <stddef.h>

#define MT_MOSQ_ACL_READ 0x01        /* a message is about to be sent to the client */
#define MT_MOSQ_ACL_WRITE 0x02       /* the client published */
#define MT_MOSQ_ACL_SUBSCRIBE 0x04   /* the client subscribes to a filter */
#define MT_MOSQ_ACL_UNSUBSCRIBE 0x08 /* the client unsubscribes from a filter */

/* Longest topic or filter the plugin looks at: anything longer is refused
 * unread (the longest allowed one, mt/v1/<64-byte id>/down/rcpt, has 80). */
#define MT_MOSQ_TOPIC_MAX 128

/* The shared subscription of the hub (protocol §3), the only filter the
 * hub identity may subscribe to. */
#define MT_MOSQ_HUB_FILTER "$share/hub/mt/v1/+/up/#"

/* May the client `id` (is_hub: it is the hub's identity, not a device) do
 * `access` (one MT_MOSQ_ACL_* value) on `topic`?  `retain` is the
 * message's retain flag (WRITE only).  Everything not allowed is refused:
 *
 *   device  WRITE      mt/v1/<id>/up/{vitals,alert,status,ack}, not retained
 *           READ       mt/v1/<id>/down/{cmd,rcpt}
 *           (UN)SUBSCRIBE  mt/v1/<id>/down/{#,+,cmd,rcpt}
 *   hub     READ       mt/v1/<any device id>/up/{vitals,alert,status,ack}
 *           WRITE      mt/v1/<any device id>/down/{cmd,rcpt}, not retained
 *           (UN)SUBSCRIBE  exactly MT_MOSQ_HUB_FILTER
 *
 * Levels are compared as bytes, whole: <id> must be exactly the client's
 * id (so a device id that is a prefix of another is no help), "any device
 * id" must match the protocol's grammar (so never "+", "#", "" or ".."),
 * and the number of levels is fixed (no trailing or empty levels).
 * NULL arguments, an `id` that is not a valid device id and topics over
 * MT_MOSQ_TOPIC_MAX bytes are refused. */
bool mt_mosq_acl_allows(const char *id, bool is_hub, int access, const char *topic, bool retain);

/* Is `id` usable as a device id or the hub identity: the protocol's device
 * id grammar, [A-Za-z0-9][A-Za-z0-9._-]{0,63}, NUL-terminated. */
bool mt_mosq_id_valid(const char *id);

#endif
