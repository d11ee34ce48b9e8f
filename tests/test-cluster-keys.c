/* SPDX-License-Identifier: MIT */
/* Node keys and pins in a temp state directory: the key pair is made once
 * (mode 0600) and read back the same; signatures verify with the public key
 * only; a node's first key is pinned, kept across a restart, and another key
 * for it is refused until it is forgotten; TrustedNodes= makes the keys
 * strict; bad files and entries are refused with a message. */

#include <glib.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster-keys.h"
#include "test-util.h"

/* The temp state directory, removed at exit, also after a failed check. */
static char *tmp_dir;

static ClusterKeys *open_keys(const char *dir) {
        ClusterKeys *k = NULL;
        g_autofree char *error = NULL;
        int r = cluster_keys_new(&k, dir, &error);
        if (r < 0)
                fprintf(stderr, "cluster_keys_new(%s): %s\n", dir, error);
        CHECK(r == 0);
        return k;
}

static void rm_rf(const char *dir) {
        const char *names[] = { CLUSTER_KEY_FILE, CLUSTER_PUB_FILE, CLUSTER_PINS_FILE };
        for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
                g_autofree char *p = g_build_filename(dir, names[i], NULL);
                (void) g_unlink(p);
        }
        (void) g_rmdir(dir);
}

static void test_key_pair(const char *dir) {
        g_autofree char *key_path = g_build_filename(dir, CLUSTER_KEY_FILE, NULL);
        g_autofree char *pub_path = g_build_filename(dir, CLUSTER_PUB_FILE, NULL);
        g_autofree char *pub = NULL;
        uint8_t first[CLUSTER_PUBLIC_KEY_SIZE], sig[CLUSTER_SIGNATURE_SIZE];
        const uint8_t msg[] = "n1 says: web.example.com A 10.0.0.1";
        struct stat st;
        ClusterKeys *k = open_keys(dir);

        CHECK(stat(key_path, &st) == 0 && (st.st_mode & 0777) == 0600);
        CHECK(g_file_get_contents(pub_path, &pub, NULL, NULL));
        CHECK(pub && streq(g_strstrip(pub), cluster_keys_public_base64(k)));
        memcpy(first, cluster_keys_public(k), sizeof first);

        cluster_keys_sign(k, msg, sizeof msg, sig);
        CHECK(cluster_signature_ok(first, msg, sizeof msg, sig));
        uint8_t changed[sizeof msg];
        memcpy(changed, msg, sizeof msg);
        changed[0] ^= 1;
        CHECK(!cluster_signature_ok(first, changed, sizeof changed, sig));
        k = cluster_keys_free(k);

        /* A restart reads the same key. */
        k = open_keys(dir);
        CHECK(memcmp(cluster_keys_public(k), first, sizeof first) == 0);
        k = cluster_keys_free(k);

        /* A damaged key file is an error that says which file. */
        CHECK(g_file_set_contents(key_path, "not a key\n", -1, NULL));
        g_autofree char *error = NULL;
        CHECK(cluster_keys_new(&k, dir, &error) == -EINVAL);
        CHECK(error && strstr(error, key_path));
        CHECK(g_unlink(key_path) == 0);

        /* A state directory that cannot be made (a file is in the way): a key
         * in memory, with a reason to warn about. */
        g_autofree char *file = g_build_filename(dir, "a-file", NULL);
        g_autofree char *under = g_build_filename(file, "state", NULL);
        ClusterKeys *m = NULL;
        g_autofree char *why = NULL;
        CHECK(g_file_set_contents(file, "", -1, NULL));
        CHECK(cluster_keys_new(&m, under, &why) == 1);
        CHECK(why && strstr(why, "in memory only"));
        CHECK(m && !cluster_keys_persistent(m));
        cluster_keys_free(m);
        CHECK(g_unlink(file) == 0);

        /* Without a directory: a key in memory, a different one each time. */
        ClusterKeys *a = open_keys(NULL), *b = open_keys(NULL);
        CHECK(memcmp(cluster_keys_public(a), cluster_keys_public(b), CLUSTER_PUBLIC_KEY_SIZE) != 0);
        cluster_keys_free(a);
        cluster_keys_free(b);
}

static void test_pins(const char *dir) {
        ClusterKeys *k = open_keys(dir), *other = open_keys(NULL), *third = open_keys(NULL);
        const uint8_t *n2 = cluster_keys_public(other), *impostor = cluster_keys_public(third);

        CHECK(!cluster_keys_lookup(k, "n2"));
        CHECK(cluster_keys_present(k, "n2", n2) == CLUSTER_KEY_PINNED);
        CHECK(cluster_keys_dirty(k));
        CHECK(cluster_keys_present(k, "n2", n2) == CLUSTER_KEY_KNOWN);
        CHECK(cluster_keys_present(k, "n2", impostor) == CLUSTER_KEY_CHANGED);
        CHECK(cluster_keys_lookup(k, "n2") && memcmp(cluster_keys_lookup(k, "n2"), n2, CLUSTER_PUBLIC_KEY_SIZE) == 0);
        CHECK(cluster_keys_save(k) == 0);
        CHECK(!cluster_keys_dirty(k));
        k = cluster_keys_free(k);

        /* Pins survive a restart; a changed key stays refused. */
        k = open_keys(dir);
        CHECK(cluster_keys_n_pinned(k) == 1);
        CHECK(cluster_keys_present(k, "n2", impostor) == CLUSTER_KEY_CHANGED);
        /* Until the operator forgets it: then the next key is pinned. */
        CHECK(cluster_keys_forget(k, "n2") == 0);
        CHECK(cluster_keys_forget(k, "n2") == -ENOENT);
        CHECK(cluster_keys_present(k, "n2", impostor) == CLUSTER_KEY_PINNED);
        CHECK(cluster_keys_save(k) == 0);
        k = cluster_keys_free(k);
        k = open_keys(dir);
        CHECK(cluster_keys_present(k, "n2", impostor) == CLUSTER_KEY_KNOWN);
        k = cluster_keys_free(k);

        /* A damaged pins file is an error that names the line. */
        g_autofree char *pins = g_build_filename(dir, CLUSTER_PINS_FILE, NULL);
        g_autofree char *error = NULL;
        CHECK(g_file_set_contents(pins, "# comment\nn2 AAAA\n", -1, NULL));
        CHECK(cluster_keys_new(&k, dir, &error) == -EINVAL);
        CHECK(error && strstr(error, ":2:"));
        CHECK(g_unlink(pins) == 0);

        cluster_keys_free(other);
        cluster_keys_free(third);
}

static void test_trusted(void) {
        ClusterKeys *k = open_keys(NULL), *n2 = open_keys(NULL), *n3 = open_keys(NULL);
        g_autofree char *e2 = g_strdup_printf("n2:%s", cluster_keys_public_base64(n2));
        char *entries[] = { e2, NULL };
        g_autofree char *error = NULL;
        char id[65];
        uint8_t key[CLUSTER_PUBLIC_KEY_SIZE];
        const char *why = NULL;

        CHECK(!cluster_keys_strict(k));
        CHECK(cluster_keys_set_trusted(k, entries, &error) == 0);
        CHECK(cluster_keys_strict(k));
        CHECK(cluster_keys_present(k, "n2", cluster_keys_public(n2)) == CLUSTER_KEY_KNOWN);
        CHECK(cluster_keys_present(k, "n2", cluster_keys_public(n3)) == CLUSTER_KEY_CHANGED);
        /* Strict: nothing is learned. */
        CHECK(cluster_keys_present(k, "n3", cluster_keys_public(n3)) == CLUSTER_KEY_UNTRUSTED);
        CHECK(!cluster_keys_lookup(k, "n3"));
        CHECK(cluster_keys_forget(k, "n2") == -EPERM);

        CHECK(cluster_trusted_parse("n2", id, key, &why) == -EINVAL && why);
        CHECK(cluster_trusted_parse("bad id:AAAA", id, key, &why) == -EINVAL);
        CHECK(cluster_trusted_parse("n2:AAAA", id, key, &why) == -EINVAL && strstr(why, "32 bytes"));
        char *bad[] = { (char *) "n4:nope", NULL };
        CHECK(cluster_keys_set_trusted(k, bad, &error) == -EINVAL);
        CHECK(error && strstr(error, "TrustedNodes=n4:nope"));

        cluster_keys_free(k);
        cluster_keys_free(n2);
        cluster_keys_free(n3);
}

static void cleanup_tmp(void) {
        if (tmp_dir)
                rm_rf(tmp_dir);
        g_free(tmp_dir);
}

int main(void) {
        tmp_dir = g_dir_make_tmp("test-cluster-keys-XXXXXX", NULL);
        CHECK(tmp_dir);
        atexit(cleanup_tmp);

        TEST_BEGIN("key pair");
        test_key_pair(tmp_dir);
        TEST_BEGIN("pins");
        test_pins(tmp_dir);
        TEST_BEGIN("trusted nodes");
        test_trusted();
        printf("test-cluster-keys: all checks passed\n");
        return 0;
}
