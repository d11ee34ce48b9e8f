/* SPDX-License-Identifier: MIT */
/* The etcd source: shares this node's own records through etcd in the
 * SkyDNS layout (etcd-skydns.h), on a lease that a clean stop revokes and a
 * dead node stops renewing, and serves every other key below the prefix
 * (other joyride nodes', CoreDNS users', external-dns's) as the owner
 * "etcd:<key>". A client of etcd's v3 JSON gateway (libsoup 3 on the
 * thread-default GMainContext, json-c) that reads the prefix over gRPC
 * (grpc-client.h) where it can, never blocking. */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "store.h"

typedef enum EtcdState {
        ETCD_CONNECTING,   /* no endpoint answered yet, or reading the prefix after a failure */
        ETCD_CONNECTED,    /* read the prefix and watching it */
        ETCD_DISCONNECTED, /* no endpoint answers; waiting to retry (see last_error, next_retry_usec) */
} EtcdState;

typedef struct EtcdOptions {
        char *const *endpoints;           /* "http://127.0.0.1:2379", ...; at least one */
        const char *prefix;               /* "/skydns" */
        uint32_t lease_ttl;               /* seconds */
        const char *ca_file;              /* NULL: the system's CAs */
        const char *cert_file, *key_file; /* client certificate; both or neither */
        const char *user, *password_file; /* both or neither */
        const char *node_id;              /* spells this node's keys */
        uint32_t default_ttl;             /* for values without a ttl */
} EtcdOptions;

typedef struct EtcdStatus {
        EtcdState state;
        const char *endpoint; /* in use, or tried last */
        char *const *endpoints;
        const char *prefix;
        const char *last_error;        /* NULL when none */
        uint64_t connected_since_usec; /* CLOCK_REALTIME, 0 if not connected */
        uint64_t next_retry_usec;      /* CLOCK_REALTIME, 0 if not waiting */
        int64_t lease_id;              /* 0: none */
        uint32_t lease_ttl;
        int64_t revision;     /* of the last change read */
        unsigned n_keys;      /* keys of others served (those that hold a record) */
        unsigned n_published; /* this node's keys in etcd */
        unsigned n_pending;   /* this node's changes not written yet */
        uint64_t resyncs;     /* full reads of the prefix */
        uint64_t events;      /* changes read from the watch */
        uint64_t txns;        /* transactions written */
        uint64_t failures;    /* connections lost or refused */
        uint64_t skipped;     /* keys that could not be served */
} EtcdStatus;

typedef struct EtcdSource EtcdSource;

/* Starts connecting at once (asynchronously). event runs the worker thread
 * that parses large reads. Fails only for options that cannot work
 * (unreadable TLS files), with a message. */
int etcd_source_new(EtcdSource **ret, sd_event *event, Store *store, const EtcdOptions *opts);
/* Drops the connection and the records read from etcd. Does not revoke the
 * lease: call etcd_source_stop() first for a clean stop. */
EtcdSource *etcd_source_free(EtcdSource *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(EtcdSource *, etcd_source_free);

/* A clean stop: stops publishing and revokes the lease, so this node's names
 * leave etcd at once; then calls done (also when etcd cannot be reached:
 * the lease then expires on its own). done is called from the main loop,
 * never from within this call. */
typedef void (*EtcdStopFunc)(void *userdata);
void etcd_source_stop(EtcdSource *e, EtcdStopFunc done, void *userdata);

/* Reads the whole prefix again (mark and sweep), as on a reconnect. */
void etcd_source_resync(EtcdSource *e);

void etcd_source_get_status(const EtcdSource *e, EtcdStatus *ret);
const char *etcd_state_to_string(EtcdState s); /* "connecting", "connected", "disconnected" */
