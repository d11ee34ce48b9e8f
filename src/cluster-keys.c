/* SPDX-License-Identifier: MIT */
/* Node signing keys and pinned public keys. See cluster-keys.h. */

#include <fcntl.h>
#include <inttypes.h>
#include <glib.h>
#include <sodium.h>
#include <stdio.h>
#include <sys/stat.h>

#include "cluster-keys.h"
#include "swim.h"

#define SEED_SIZE crypto_sign_SEEDBYTES
#define KEY_FILE_MAX 4096
#define PINS_FILE_MAX (4u * 1024 * 1024)

struct ClusterKeys {
        char *directory; /* NULL: nothing is kept */
        uint8_t public_key[crypto_sign_PUBLICKEYBYTES];
        uint8_t secret_key[crypto_sign_SECRETKEYBYTES];
        char public_base64[64];
        GHashTable *trusted; /* id -> 32-byte key (configured) */
        GHashTable *pinned;  /* id -> 32-byte key (learned) */
        bool dirty;
};

/* --- files ------------------------------------------------------------------ */

static int write_file_atomic(const char *path, const char *contents, mode_t mode) {
        g_autofree char *tmp = g_strdup_printf("%s.XXXXXX", path);
        size_t n = strlen(contents);
        const char *p = contents;
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = g_mkstemp_full(tmp, O_WRONLY | O_CLOEXEC, (gint) mode);
        if (fd < 0)
                return negative_errno();
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        r = negative_errno();
                        goto fail;
                }
                p += k;
                n -= (size_t) k;
        }
        if (fchmod(fd, mode) < 0 || fsync(fd) < 0) {
                r = negative_errno();
                goto fail;
        }
        if (rename(tmp, path) < 0) {
                r = negative_errno();
                goto fail;
        }
        return 0;
fail:
        (void) unlink(tmp);
        return r;
}

static int read_small_file(const char *path, size_t max, char **ret) {
        g_autoptr(GError) err = NULL;
        g_autofree char *contents = NULL;
        gsize len = 0;

        if (!g_file_get_contents(path, &contents, &len, &err))
                return g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOENT)    ? -ENOENT
                       : g_error_matches(err, G_FILE_ERROR, G_FILE_ERROR_NOTDIR) ? -ENOTDIR
                                                                                 : -EIO;
        if (len > max)
                return -EFBIG;
        *ret = TAKE_PTR(contents);
        return 0;
}

static bool key_from_base64(const char *s, size_t len, uint8_t *out, size_t out_size) {
        size_t n = 0;
        return sodium_base642bin(out, out_size, s, len, NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
               n == out_size;
}

static void key_to_base64(const uint8_t *key, size_t size, char *out, size_t out_size) {
        sodium_bin2base64(out, out_size, key, size, sodium_base64_VARIANT_ORIGINAL);
}

static int load_or_create_key(ClusterKeys *k, char **ret_error) {
        g_autofree char *path = NULL, *pub_path = NULL, *contents = NULL;
        uint8_t seed[SEED_SIZE];
        char line[128];
        int r;

        if (!k->directory) {
                crypto_sign_keypair(k->public_key, k->secret_key);
                return 0;
        }
        path = g_build_filename(k->directory, CLUSTER_KEY_FILE, NULL);
        r = read_small_file(path, KEY_FILE_MAX, &contents);
        if (r >= 0) {
                g_strstrip(contents);
                if (!key_from_base64(contents, strlen(contents), seed, sizeof seed)) {
                        sodium_memzero(contents, strlen(contents));
                        *ret_error = g_strdup_printf(
                                "%s does not hold base64 of a %u-byte key (move it away to make a new one)", path,
                                (unsigned) SEED_SIZE);
                        return -EINVAL;
                }
                sodium_memzero(contents, strlen(contents));
        } else if (r == -ENOENT || r == -ENOTDIR) {
                randombytes_buf(seed, sizeof seed);
                key_to_base64(seed, sizeof seed, line, sizeof line);
                g_strlcat(line, "\n", sizeof line);
                r = g_mkdir_with_parents(k->directory, 0755) < 0 ? negative_errno()
                                                                 : write_file_atomic(path, line, 0600);
                sodium_memzero(line, sizeof line);
                if (r < 0) {
                        /* A read-only state directory: the node still works,
                         * with a key that lives as long as the process. */
                        *ret_error = g_strdup_printf(
                                "cannot write %s (%s): the signing key lives in memory "
                                "only, and pins are not kept",
                                path, g_strerror(-r));
                        g_clear_pointer(&k->directory, g_free);
                        crypto_sign_seed_keypair(k->public_key, k->secret_key, seed);
                        sodium_memzero(seed, sizeof seed);
                        return 1;
                }
        } else {
                *ret_error = g_strdup_printf("cannot read %s: %s", path, g_strerror(-r));
                return r;
        }
        crypto_sign_seed_keypair(k->public_key, k->secret_key, seed);
        sodium_memzero(seed, sizeof seed);

        /* The public half beside it, for operators who list it elsewhere.
         * Not fatal: the key itself is what matters. */
        pub_path = g_build_filename(k->directory, CLUSTER_PUB_FILE, NULL);
        key_to_base64(k->public_key, sizeof k->public_key, line, sizeof line);
        g_strlcat(line, "\n", sizeof line);
        g_autofree char *old = NULL;
        if (read_small_file(pub_path, KEY_FILE_MAX, &old) < 0 || !streq(old, line))
                (void) write_file_atomic(pub_path, line, 0644);
        return 0;
}

static int load_pins(ClusterKeys *k, char **ret_error) {
        g_autofree char *path = NULL, *contents = NULL;
        g_auto(GStrv) lines = NULL;
        int r;

        if (!k->directory)
                return 0;
        path = g_build_filename(k->directory, CLUSTER_PINS_FILE, NULL);
        r = read_small_file(path, PINS_FILE_MAX, &contents);
        if (r == -ENOENT)
                return 0;
        if (r < 0) {
                *ret_error = g_strdup_printf("cannot read %s: %s", path, g_strerror(-r));
                return r;
        }
        lines = g_strsplit(contents, "\n", -1);
        for (size_t i = 0; lines[i]; i++) {
                g_auto(GStrv) f = NULL;
                uint8_t key[CLUSTER_PUBLIC_KEY_SIZE];

                g_strstrip(lines[i]);
                if (!lines[i][0] || lines[i][0] == '#')
                        continue;
                f = g_strsplit_set(lines[i], " \t", 2);
                if (!f[0] || !f[1] || !swim_id_is_valid(f[0]) ||
                    !key_from_base64(g_strstrip(f[1]), strlen(f[1]), key, sizeof key)) {
                        *ret_error = g_strdup_printf("%s:%zu: expected \"node-id base64-key\"", path, i + 1);
                        return -EINVAL;
                }
                g_hash_table_replace(k->pinned, g_strdup(f[0]), g_memdup2(key, sizeof key));
        }
        return 0;
}

/* --- lifecycle ---------------------------------------------------------------- */

int cluster_keys_new(ClusterKeys **ret, const char *directory, char **ret_error) {
        _cleanup_(cluster_keys_freep) ClusterKeys *k = NULL;
        g_autofree char *error = NULL;
        int r;

        if (sodium_init() < 0) {
                *ret_error = g_strdup("libsodium failed to initialise");
                return -EIO;
        }
        k = g_new0(ClusterKeys, 1);
        k->directory = g_strdup(directory);
        k->trusted = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        k->pinned = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        r = load_or_create_key(k, &error);
        if (r == 0)
                r = load_pins(k, &error);
        if (r < 0) {
                *ret_error = TAKE_PTR(error);
                return r;
        }
        key_to_base64(k->public_key, sizeof k->public_key, k->public_base64, sizeof k->public_base64);
        *ret = TAKE_PTR(k);
        if (r > 0)
                *ret_error = TAKE_PTR(error);
        return r;
}

ClusterKeys *cluster_keys_free(ClusterKeys *k) {
        if (!k)
                return NULL;
        sodium_memzero(k->secret_key, sizeof k->secret_key);
        g_hash_table_destroy(k->trusted);
        g_hash_table_destroy(k->pinned);
        g_free(k->directory);
        g_free(k);
        return NULL;
}

/* --- trust ---------------------------------------------------------------------- */

int cluster_trusted_parse(const char *entry, char ret_id[static 65], uint8_t ret_key[static CLUSTER_PUBLIC_KEY_SIZE],
                          const char **ret_error) {
        const char *colon = strchr(entry, ':');
        size_t idlen;

        if (!colon) {
                *ret_error = "expected NODE-ID:PUBLIC-KEY (the key as in the node's " CLUSTER_PUB_FILE ")";
                return -EINVAL;
        }
        idlen = (size_t) (colon - entry);
        if (idlen == 0 || idlen > 64) {
                *ret_error = "the node id must be 1-64 characters";
                return -EINVAL;
        }
        memcpy(ret_id, entry, idlen);
        ret_id[idlen] = 0;
        if (!swim_id_is_valid(ret_id)) {
                *ret_error = "the node id may hold only A-Z a-z 0-9 . _ -";
                return -EINVAL;
        }
        if (!key_from_base64(colon + 1, strlen(colon + 1), ret_key, CLUSTER_PUBLIC_KEY_SIZE)) {
                *ret_error = "the key is not base64 of 32 bytes";
                return -EINVAL;
        }
        return 0;
}

int cluster_keys_set_trusted(ClusterKeys *k, char *const *entries, char **ret_error) {
        g_hash_table_remove_all(k->trusted);
        for (size_t i = 0; entries && entries[i]; i++) {
                char id[65];
                uint8_t key[CLUSTER_PUBLIC_KEY_SIZE];
                const char *why = NULL;

                if (cluster_trusted_parse(entries[i], id, key, &why) < 0) {
                        *ret_error = g_strdup_printf("TrustedNodes=%s: %s", entries[i], why);
                        g_hash_table_remove_all(k->trusted);
                        return -EINVAL;
                }
                g_hash_table_replace(k->trusted, g_strdup(id), g_memdup2(key, sizeof key));
        }
        return 0;
}

bool cluster_keys_persistent(const ClusterKeys *k) {
        return k->directory != NULL;
}

bool cluster_keys_strict(const ClusterKeys *k) {
        return g_hash_table_size(k->trusted) > 0;
}

const uint8_t *cluster_keys_public(const ClusterKeys *k) {
        return k->public_key;
}

const char *cluster_keys_public_base64(const ClusterKeys *k) {
        return k->public_base64;
}

void cluster_keys_sign(const ClusterKeys *k, const uint8_t *msg, size_t size,
                       uint8_t ret_sig[static CLUSTER_SIGNATURE_SIZE]) {
        crypto_sign_detached(ret_sig, NULL, msg, size, k->secret_key);
}

bool cluster_signature_ok(const uint8_t key[static CLUSTER_PUBLIC_KEY_SIZE], const uint8_t *msg, size_t size,
                          const uint8_t sig[static CLUSTER_SIGNATURE_SIZE]) {
        return crypto_sign_verify_detached(sig, msg, size, key) == 0;
}

void cluster_digest(const char *context, const char *origin, const uint8_t *data, size_t size,
                    uint8_t ret[static CLUSTER_DIGEST_SIZE]) {
        crypto_generichash_state st;

        crypto_generichash_init(&st, NULL, 0, CLUSTER_DIGEST_SIZE);
        crypto_generichash_update(&st, (const uint8_t *) context, strlen(context) + 1);
        crypto_generichash_update(&st, (const uint8_t *) origin, strlen(origin) + 1);
        crypto_generichash_update(&st, data, size);
        crypto_generichash_final(&st, ret, CLUSTER_DIGEST_SIZE);
}

const uint8_t *cluster_keys_lookup(const ClusterKeys *k, const char *node) {
        if (cluster_keys_strict(k))
                return g_hash_table_lookup(k->trusted, node);
        return g_hash_table_lookup(k->trusted, node) ?: g_hash_table_lookup(k->pinned, node);
}

ClusterKeyVerdict cluster_keys_present(ClusterKeys *k, const char *node,
                                       const uint8_t key[static CLUSTER_PUBLIC_KEY_SIZE]) {
        const uint8_t *held = cluster_keys_lookup(k, node);

        if (held)
                return sodium_memcmp(held, key, CLUSTER_PUBLIC_KEY_SIZE) == 0 ? CLUSTER_KEY_KNOWN : CLUSTER_KEY_CHANGED;
        if (cluster_keys_strict(k))
                return CLUSTER_KEY_UNTRUSTED;
        g_hash_table_replace(k->pinned, g_strdup(node), g_memdup2(key, CLUSTER_PUBLIC_KEY_SIZE));
        k->dirty = true;
        return CLUSTER_KEY_PINNED;
}

int cluster_keys_forget(ClusterKeys *k, const char *node) {
        if (g_hash_table_contains(k->trusted, node))
                return -EPERM;
        if (!g_hash_table_remove(k->pinned, node))
                return -ENOENT;
        k->dirty = true;
        return 0;
}

int cluster_keys_next_epoch(ClusterKeys *k, uint32_t now_sec, uint32_t *ret) {
        g_autofree char *path = NULL, *contents = NULL;
        char line[32];
        uint64_t last = 0;

        *ret = MAX(now_sec, 1u);
        if (!k->directory)
                return 0;
        path = g_build_filename(k->directory, CLUSTER_EPOCH_FILE, NULL);
        if (read_small_file(path, KEY_FILE_MAX, &contents) >= 0)
                last = g_ascii_strtoull(g_strstrip(contents), NULL, 10);
        if (last >= UINT32_MAX - 1)
                last = 0; /* damaged: the clock is the best we have */
        *ret = (uint32_t) MAX((uint64_t) *ret, last + 1);
        snprintf(line, sizeof line, "%" PRIu32 "\n", *ret);
        return write_file_atomic(path, line, 0644);
}

size_t cluster_keys_n_pinned(const ClusterKeys *k) {
        return g_hash_table_size(k->pinned);
}

bool cluster_keys_dirty(const ClusterKeys *k) {
        return k->dirty;
}

static int compare_str(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int cluster_keys_save(ClusterKeys *k) {
        g_autoptr(GString) out = g_string_new(
                "# Public keys of the cluster's nodes, learned on first contact.\n"
                "# A node that shows another key is refused until its line goes:\n"
                "# joyridectl members forget NODE\n");
        g_autoptr(GPtrArray) ids = g_ptr_array_new();
        g_autofree char *path = NULL;
        GHashTableIter it;
        gpointer id;
        int r;

        k->dirty = false;
        if (!k->directory)
                return 0;
        g_hash_table_iter_init(&it, k->pinned);
        while (g_hash_table_iter_next(&it, &id, NULL))
                g_ptr_array_add(ids, id);
        g_ptr_array_sort(ids, compare_str); /* stable file, readable diffs */
        for (guint i = 0; i < ids->len; i++) {
                char b64[64];
                key_to_base64(g_hash_table_lookup(k->pinned, ids->pdata[i]), CLUSTER_PUBLIC_KEY_SIZE, b64, sizeof b64);
                g_string_append_printf(out, "%s %s\n", (const char *) ids->pdata[i], b64);
        }
        path = g_build_filename(k->directory, CLUSTER_PINS_FILE, NULL);
        r = write_file_atomic(path, out->str, 0600);
        if (r < 0)
                k->dirty = true; /* try again later */
        return r;
}
