/* SPDX-License-Identifier: MIT */
/* What a push-pull connection carries, once a frame is opened: pure
 * encoders and decoders (cluster.c moves and seals the bytes; the fuzzer
 * feeds the decoders).
 *
 * A frame on the TCP connection is length:u32 sealed, where sealed opens
 * (cluster.c) to one of:
 *   hello  := "JP" 2 3 id:u8-length bytes key:32 signature:64
 *   push   := "JP" 2 kind:u8 (1 push, 2 reply) swim_len:u32 swim_state
 *             records_len:u32 records_snapshot
 *   v1     := "JP" 1 kind:u8 (1 push, 2 reply) id:u8-length bytes
 *             swim_len:u32 swim_state records_len:u32 records_snapshot
 * Protocol 2: each side sends its hello, then its push (or reply). The
 * hello names the node and its signing key, and is signed with that key over
 * BLAKE2b-256("joyride hello v2", 0, id, 0, key, cluster name), so that it
 * cannot be made without the key nor carried into another cluster. A reader
 * takes at most CLUSTER_HELLO_MAX bytes until the hello has been checked.
 * Protocol 1 (older nodes): one frame each way, no hello. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster-keys.h"
#include "swim.h"

#define CLUSTER_PUSH_PULL_V1 1
#define CLUSTER_PUSH_PULL_V2 2
#define CLUSTER_FRAME_PUSH 1
#define CLUSTER_FRAME_REPLY 2
#define CLUSTER_FRAME_HELLO 3
#define CLUSTER_HELLO_MAX (64u * 1024)        /* a first frame, before the peer is known */
#define CLUSTER_FRAME_MAX (16u * 1024 * 1024) /* any frame, sealed */

typedef struct ClusterHello {
        char id[SWIM_ID_MAX + 1];
        uint8_t key[CLUSTER_PUBLIC_KEY_SIZE];
} ClusterHello;

/* Our hello. Returns the size, or 0 if buf is too small. */
size_t cluster_hello_encode(const ClusterKeys *keys, const char *id, const char *cluster_name, uint8_t *buf,
                            size_t size);
/* Decodes a hello and checks that it is signed with the key it names.
 * Returns 0, -EBADMSG, or -EKEYREJECTED (bad signature). */
int cluster_hello_decode(const uint8_t *data, size_t size, const char *cluster_name, ClusterHello *ret);

typedef struct ClusterPush {
        uint8_t version;          /* CLUSTER_PUSH_PULL_V1 or _V2 */
        uint8_t kind;             /* CLUSTER_FRAME_PUSH or _REPLY */
        char id[SWIM_ID_MAX + 1]; /* v1 only: the sender; v2: "" (the hello said it) */
        const uint8_t *swim;      /* pointers into the decoded data */
        size_t swim_size;
        const uint8_t *records;
        size_t records_size;
} ClusterPush;

/* A push or reply, either version (a hello is -EBADMSG here). */
int cluster_push_decode(const uint8_t *data, size_t size, ClusterPush *ret);
/* Encodes a push or reply (id: for version 1). Caller frees *ret. */
int cluster_push_encode(uint8_t version, uint8_t kind, const char *id, const uint8_t *swim, size_t swim_size,
                        const uint8_t *records, size_t records_size, uint8_t **ret, size_t *ret_size);
/* The version and kind a decrypted payload claims, without decoding it (0 if not "JP"). */
uint8_t cluster_frame_version(const uint8_t *data, size_t size, uint8_t *ret_kind);
