/* SPDX-License-Identifier: MIT */
/* Who may speak for a node: this node's Ed25519 signing key and the public
 * keys of the others.
 *
 * Each node signs its own record updates and snapshots (cluster-records.c);
 * relays pass them on unchanged, and a receiver checks them against the
 * origin's public key. That key is either configured ([Cluster]
 * TrustedNodes=, "strict": then only listed nodes are believed) or learned on
 * first contact and pinned: kept in the state directory, and from then on a
 * different key for that node is refused until an operator forgets the pin
 * (joyridectl members forget NODE). So a node's records can only come from
 * the holder of its secret key, not from whoever holds the shared cluster key.
 *
 * Files in the state directory:
 *   cluster-node.key   base64 of the 32-byte Ed25519 seed, mode 0600, made on first start
 *   cluster-node.pub   base64 of the public key, for operators (TrustedNodes=)
 *   cluster-pins       one "node-id base64-public-key" per line
 *   cluster-epoch      the epoch of this node's record versions, one above the last start's
 * Without a state directory the key pair lives in memory only (a warning says
 * so) and pins are not kept across restarts. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

#define CLUSTER_PUBLIC_KEY_SIZE 32
#define CLUSTER_SIGNATURE_SIZE 64
#define CLUSTER_KEY_FILE "cluster-node.key"
#define CLUSTER_PUB_FILE "cluster-node.pub"
#define CLUSTER_PINS_FILE "cluster-pins"
#define CLUSTER_EPOCH_FILE "cluster-epoch"

typedef struct ClusterKeys ClusterKeys;

/* Loads this node's key pair from directory (creating it on first start) and
 * the pins kept there. directory NULL: a key pair in memory, no pins kept.
 * Returns 0; 1 when the key could not be written (a read-only directory):
 * then the key pair lives in memory and ret_error says why, for a warning;
 * or a negative errno with ret_error saying what failed (a damaged key or
 * pins file, which is never replaced silently). */
int cluster_keys_new(ClusterKeys **ret, const char *directory, char **ret_error);
ClusterKeys *cluster_keys_free(ClusterKeys *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(ClusterKeys *, cluster_keys_free);

/* TrustedNodes=: "node-id:base64-key" entries. With at least one, the keys are
 * strict: only listed nodes are believed, nothing is learned. Returns 0 or
 * -EINVAL (ret_error names the bad entry and says why). */
int cluster_keys_set_trusted(ClusterKeys *k, char *const *entries, char **ret_error);
/* Parses one such entry (also for configuration checks). */
int cluster_trusted_parse(const char *entry, char ret_id[static 65], uint8_t ret_key[static CLUSTER_PUBLIC_KEY_SIZE],
                          const char **ret_error);
bool cluster_keys_strict(const ClusterKeys *k);
/* Whether the key pair and pins are kept in a state directory. */
bool cluster_keys_persistent(const ClusterKeys *k);

const uint8_t *cluster_keys_public(const ClusterKeys *k);
/* Base64 of our public key (static storage of k). */
const char *cluster_keys_public_base64(const ClusterKeys *k);
void cluster_keys_sign(const ClusterKeys *k, const uint8_t *msg, size_t size,
                       uint8_t ret_sig[static CLUSTER_SIGNATURE_SIZE]);
bool cluster_signature_ok(const uint8_t key[static CLUSTER_PUBLIC_KEY_SIZE], const uint8_t *msg, size_t size,
                          const uint8_t sig[static CLUSTER_SIGNATURE_SIZE]);

/* What a node signs: BLAKE2b-256 of context, 0, origin, 0, data. The context
 * says what the data is ("joyride update v2"), so that a signature over one
 * kind of message is never valid for another. */
#define CLUSTER_DIGEST_SIZE 32
void cluster_digest(const char *context, const char *origin, const uint8_t *data, size_t size,
                    uint8_t ret[static CLUSTER_DIGEST_SIZE]);

/* The key node must sign with, configured or pinned; NULL when none is known. */
const uint8_t *cluster_keys_lookup(const ClusterKeys *k, const char *node);

typedef enum ClusterKeyVerdict {
        CLUSTER_KEY_KNOWN,     /* the key we hold for that node */
        CLUSTER_KEY_PINNED,    /* first contact: pinned now */
        CLUSTER_KEY_CHANGED,   /* another key than the pinned or configured one: refused */
        CLUSTER_KEY_UNTRUSTED, /* strict, and the node is not listed: refused */
} ClusterKeyVerdict;

/* A node presents a key (after proving it holds it: the caller checked a
 * signature made with it). Pins it on first contact (the caller saves the pins
 * with cluster_keys_save() when cluster_keys_dirty()). */
ClusterKeyVerdict cluster_keys_present(ClusterKeys *k, const char *node,
                                       const uint8_t key[static CLUSTER_PUBLIC_KEY_SIZE]);

/* Forgets a pinned key. Returns 0, -ENOENT if none is pinned, -EPERM when the
 * key is configured (TrustedNodes=) rather than learned. */
int cluster_keys_forget(ClusterKeys *k, const char *node);

/* The epoch of this start's record versions: above every earlier start's
 * (kept in the state directory) and at least now_sec, so that what this
 * node says now is newer than anything it said before. Returns 0, or a
 * negative errno when it cannot be kept (*ret is still usable). */
int cluster_keys_next_epoch(ClusterKeys *k, uint32_t now_sec, uint32_t *ret);

size_t cluster_keys_n_pinned(const ClusterKeys *k);
bool cluster_keys_dirty(const ClusterKeys *k);
/* Writes the pins (atomically). Returns 0 or a negative errno. */
int cluster_keys_save(ClusterKeys *k);
