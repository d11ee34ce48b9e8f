/* SPDX-License-Identifier: MIT */
/* The wire cursor: big-endian round trips, bounds on every access, and the
 * sticky error that makes every later call a no-op. */

#include <stdio.h>
#include <string.h>

#include "test-util.h"
#include "wire.h"

static void test_round_trip(void) {
        uint8_t buf[32];
        Wire w = wire_init(buf, sizeof buf);
        Wire r;
        uint8_t s[3];

        wire_write_u8(&w, 0x12);
        wire_write_u16(&w, 0x3456);
        wire_write_u32(&w, 0x789abcde);
        wire_write_u64(&w, 0x0102030405060708ULL);
        wire_write(&w, "xyz", 3);
        CHECK(wire_ok(&w) && wire_offset(&w) == 18 && wire_available(&w) == 14);
        CHECK(memcmp(buf, "\x12\x34\x56\x78\x9a\xbc\xde\x01\x02\x03\x04\x05\x06\x07\x08xyz", 18) == 0);

        r = wire_init_const(buf, 18);
        CHECK(wire_read_u8(&r) == 0x12);
        CHECK(wire_read_u16(&r) == 0x3456);
        CHECK(wire_read_u32(&r) == 0x789abcde);
        CHECK(wire_read_u64(&r) == 0x0102030405060708ULL);
        wire_read(&r, s, 3);
        CHECK(memcmp(s, "xyz", 3) == 0);
        CHECK(wire_ok(&r) && wire_at_end(&r));
}

static void test_read_past_end(void) {
        static const uint8_t data[] = { 1, 2, 3 };
        Wire r = wire_init_const(data, sizeof data);
        uint8_t out[4] = { 9, 9, 9, 9 };

        CHECK(wire_read_u16(&r) == 0x0102);
        CHECK(wire_read_u16(&r) == 0); /* one byte left: an error, nothing consumed */
        CHECK(r.error == -EBADMSG && wire_offset(&r) == 2);
        /* Sticky: the byte that is there is not read any more. */
        CHECK(wire_read_u8(&r) == 0);
        CHECK(wire_read_ptr(&r, 0) == NULL);
        wire_read(&r, out, 1);
        CHECK(out[0] == 0 && out[1] == 9);
        CHECK(wire_peek_u8(&r) == 0);
        CHECK(wire_offset(&r) == 2);

        /* A huge length cannot wrap around the bounds check. */
        r = wire_init_const(data, sizeof data);
        wire_skip(&r, 1);
        CHECK(wire_read_ptr(&r, SIZE_MAX) == NULL && r.error == -EBADMSG);
}

static void test_write_past_end(void) {
        uint8_t buf[5] = { 0 };
        Wire w = wire_init(buf, 4);

        wire_write_u16(&w, 0xaaaa);
        wire_write_u32(&w, 0xbbbbbbbb); /* does not fit: nothing of it is written */
        CHECK(w.error == -ENOBUFS && wire_offset(&w) == 2);
        CHECK(buf[2] == 0 && buf[3] == 0 && buf[4] == 0);
        wire_write_u8(&w, 0xcc); /* would fit, but the error sticks */
        CHECK(buf[2] == 0 && wire_offset(&w) == 2);
        CHECK(wire_reserve(&w, 1) == NULL);
        /* The first error is the one kept. */
        wire_fail(&w, -EMSGSIZE);
        CHECK(w.error == -ENOBUFS);
}

static void test_readonly_and_seek(void) {
        static const uint8_t data[] = { 1, 2, 3, 4 };
        Wire r = wire_init_const(data, sizeof data);
        Wire w;
        uint8_t buf[4];

        wire_write_u8(&r, 7);
        CHECK(r.error == -EROFS && data[0] == 1);

        w = wire_init(buf, sizeof buf);
        wire_seek(&w, 4);
        CHECK(wire_ok(&w) && wire_at_end(&w));
        wire_seek(&w, 5);
        CHECK(w.error == -ERANGE && wire_offset(&w) == 4);

        w = wire_init(NULL, 10);
        CHECK(wire_available(&w) == 0);
        wire_write_u8(&w, 1);
        CHECK(w.error == -ENOBUFS);
}

int main(void) {
        TEST_BEGIN("round trip");
        test_round_trip();
        TEST_BEGIN("read past the end");
        test_read_past_end();
        TEST_BEGIN("write past the end");
        test_write_past_end();
        TEST_BEGIN("read-only and seek");
        test_readonly_and_seek();
        printf("wire: all checks passed\n");
        return 0;
}
