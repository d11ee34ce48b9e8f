/* SPDX-License-Identifier: MIT */
/* libFuzzer target for discovery announcements (after unsealing), as a node
 * hears them from anyone on its segment: an accepted one names a valid node
 * id and a unicast address with a port that a SWIM join can be sent to,
 * and parsing is all-or-nothing (the outputs stay untouched on rejection). */

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "cluster.h"
#include "macro.h"
#include "swim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const SwimAddr from = { .family = 6, .ip = { 0xfe, 0x80, [15] = 1 }, .port = 8889 };
        char id[SWIM_ID_MAX + 1] = "untouched";
        SwimAddr to = { .family = 99 };

        if (cluster_parse_announcement(data, size, &from, id, &to) < 0) {
                assert(streq(id, "untouched") && to.family == 99);
                return 0;
        }
        assert(swim_id_is_valid(id));
        assert(to.port != 0);
        assert(to.family == 4 || to.family == 6);
        if (to.family == 4)
                assert(to.ip[0] != 0 && to.ip[0] != 127 && to.ip[0] < 224);
        else {
                static const uint8_t zero[15];
                assert(to.ip[0] != 0xff);
                assert(memcmp(to.ip, zero, sizeof zero) != 0 || to.ip[15] > 1); /* not :: or ::1 */
        }
        return 0;
}
