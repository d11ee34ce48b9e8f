/* SPDX-License-Identifier: MIT */
/* The Host and Origin checks that keep web pages elsewhere from driving the
 * API through DNS rebinding: Host headers in every spelling, and origins that
 * differ from ours in the smallest ways. */

#include <glib.h>
#include <stdio.h>
#include <unistd.h>

#include "http-guard.h"
#include "test-util.h"

static void check_split(const char *value, const char *host, uint16_t port) {
        g_autofree char *h = NULL;
        uint16_t p = 1;

        if (!host) {
                CHECK_INT_EQ(http_split_host(value, &h, &p), -EINVAL);
                return;
        }
        CHECK_INT_EQ(http_split_host(value, &h, &p), 0);
        CHECK_STREQ(h, host);
        CHECK_INT_EQ(p, port);
}

static void test_split(void) {
        check_split("Example.COM", "example.com", 0);
        check_split("example.com.", "example.com", 0);
        check_split("example.com:8080", "example.com", 8080);
        check_split("10.0.0.1:80", "10.0.0.1", 80);
        check_split("[2001:DB8::1]:5000", "2001:db8::1", 5000);
        check_split("[::1]", "::1", 0);
        check_split("::1", "::1", 0);
        check_split("", NULL, 0);
        check_split(":80", NULL, 0);
        check_split("example.com:", NULL, 0);
        check_split("example.com:0", NULL, 0);
        check_split("example.com:65536", NULL, 0);
        check_split("example.com:80x", NULL, 0);
        check_split("[::1", NULL, 0);
        check_split("[::1]x", NULL, 0);
        check_split("exa mple.com", NULL, 0);
        check_split("example.com/evil", NULL, 0);
        check_split("user@example.com", NULL, 0);
}

static void test_host_allowed(void) {
        char *names[] = { "dash.example.com", "192.0.2.7", "2001:db8::7", NULL };
        char *any[] = { "*", NULL };

        /* Always: loopback and localhost. */
        CHECK(http_host_allowed("127.0.0.1", NULL));
        CHECK(http_host_allowed("127.9.9.9", NULL));
        CHECK(http_host_allowed("::1", NULL));
        CHECK(http_host_allowed("localhost", NULL));
        CHECK(http_host_allowed("app.localhost", NULL));
        CHECK(!http_host_allowed("localhost.example.com", NULL));
        CHECK(!http_host_allowed("mylocalhost", NULL));

        CHECK(http_host_allowed("dash.example.com", names));
        CHECK(!http_host_allowed("dash.example.com.evil", names));
        CHECK(!http_host_allowed("evil-dash.example.com", names));
        CHECK(http_host_allowed("192.0.2.7", names));
        CHECK(!http_host_allowed("192.0.2.70", names));
        /* An address in another spelling is the same address. */
        CHECK(http_host_allowed("2001:0db8:0::7", names));
        CHECK(!http_host_allowed("2001:db8::8", names));
        CHECK(!http_host_allowed("evil.example", names));

        CHECK(http_host_allowed("evil.example", any));
}

static void test_origin_allowed(void) {
        char *names[] = { "dash.example.com", NULL };

        CHECK(http_origin_allowed("http://127.0.0.1:5000", names, 5000));
        CHECK(http_origin_allowed("http://localhost:5000", names, 5000));
        CHECK(http_origin_allowed("http://dash.example.com:5000", names, 5000));
        CHECK(http_origin_allowed("http://dash.example.com", names, 80));
        CHECK(http_origin_allowed("https://dash.example.com", names, 443));
        CHECK(http_origin_allowed("http://[::1]:5000", names, 5000));

        /* Another port on this machine is another site. */
        CHECK(!http_origin_allowed("http://localhost:8080", names, 5000));
        CHECK(!http_origin_allowed("http://dash.example.com", names, 5000));
        CHECK(!http_origin_allowed("http://evil.example:5000", names, 5000));
        CHECK(!http_origin_allowed("http://dash.example.com.evil.example:5000", names, 5000));
        CHECK(!http_origin_allowed("null", names, 5000));
        CHECK(!http_origin_allowed("file://", names, 5000));
        CHECK(!http_origin_allowed("http://127.0.0.1:5000/path", names, 5000));
        CHECK(!http_origin_allowed("ftp://127.0.0.1:5000", names, 5000));
        CHECK(!http_origin_allowed("", names, 5000));
        CHECK(!http_origin_allowed(NULL, names, 5000));
}

static void test_local_names(void) {
        char *extra[] = { "dash.example.com", NULL };
        g_auto(GStrv) names = http_local_names("192.0.2.9", extra);
        char host[256] = "";

        CHECK(g_strv_contains((const char *const *) names, "dash.example.com"));
        CHECK(g_strv_contains((const char *const *) names, "192.0.2.9"));
        if (gethostname(host, sizeof host - 1) >= 0 && host[0]) {
                g_autofree char *lower = g_ascii_strdown(host, -1);
                CHECK(g_strv_contains((const char *const *) names, lower));
        }
        /* Loopback is up wherever this runs, and is among the addresses. */
        CHECK(g_strv_contains((const char *const *) names, "127.0.0.1"));
}

int main(void) {
        TEST_BEGIN("split host");
        test_split();
        TEST_BEGIN("host allowed");
        test_host_allowed();
        TEST_BEGIN("origin allowed");
        test_origin_allowed();
        TEST_BEGIN("local names");
        test_local_names();
        printf("http-guard: all checks passed\n");
        return 0;
}
