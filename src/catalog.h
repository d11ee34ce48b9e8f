/* SPDX-License-Identifier: MIT */
/* Journal MESSAGE_IDs of joyrided's notable events. Each event has a 128-bit
 * id (sd_id128_t, for code that compares ids) and a ready "MESSAGE_ID=..."
 * field for the fields array of log_struct(). The ids are fixed forever:
 * they key the explanations in data/systemd/joyride.catalog (shown by
 * `journalctl -x`) and people's `journalctl MESSAGE_ID=...` filters.
 * Generated with `systemd-id128 new`; never reuse or change one. */
#pragma once

#include <systemd/sd-id128.h>

/* Two spellings from one list of bytes, so that they cannot disagree. */
#define JOYRIDE_MESSAGE(...) SD_ID128_MAKE(__VA_ARGS__)
#define JOYRIDE_MESSAGE_FIELD(...) "MESSAGE_ID=" SD_ID128_MAKE_STR(__VA_ARGS__)

/* A record appeared in the store (JOYRIDE_NAME, _TYPE, _VALUE, _SOURCE). */
#define JOYRIDE_RECORD_ADDED_BYTES   f1,23,0b,ff,30,1e,43,ed,bb,29,e8,9c,d7,7b,2c,af
/* A record left the store. */
#define JOYRIDE_RECORD_REMOVED_BYTES 7d,fa,0e,a4,1d,88,43,63,ac,d3,b7,b8,12,7f,f0,40
/* A cluster member was declared dead (JOYRIDE_MEMBER, JOYRIDE_MEMBER_ADDRESS). */
#define JOYRIDE_MEMBER_DEAD_BYTES    42,8c,73,f2,35,41,4d,17,ad,8b,29,2f,1a,82,87,a5
/* A cluster member joined or came back. */
#define JOYRIDE_MEMBER_ALIVE_BYTES   e0,03,10,1e,ac,65,4f,10,bd,a6,eb,77,a2,48,27,e5
/* The Docker engine answered (JOYRIDE_DOCKER_HOST). */
#define JOYRIDE_DOCKER_CONNECTED_BYTES bc,6f,53,43,3e,7b,45,b3,88,56,e5,de,81,60,d7,ad
/* The connection to the Docker engine was lost or could not be made. */
#define JOYRIDE_DOCKER_LOST_BYTES    c2,0a,77,0b,df,f3,4a,26,b8,f6,d0,25,96,09,ab,24

#define _JOYRIDE_EXPAND(m, b) m(b)
#define JOYRIDE_MESSAGE_RECORD_ADDED       _JOYRIDE_EXPAND(JOYRIDE_MESSAGE, JOYRIDE_RECORD_ADDED_BYTES)
#define JOYRIDE_MESSAGE_RECORD_REMOVED     _JOYRIDE_EXPAND(JOYRIDE_MESSAGE, JOYRIDE_RECORD_REMOVED_BYTES)
#define JOYRIDE_MESSAGE_MEMBER_DEAD        _JOYRIDE_EXPAND(JOYRIDE_MESSAGE, JOYRIDE_MEMBER_DEAD_BYTES)
#define JOYRIDE_MESSAGE_MEMBER_ALIVE       _JOYRIDE_EXPAND(JOYRIDE_MESSAGE, JOYRIDE_MEMBER_ALIVE_BYTES)
#define JOYRIDE_MESSAGE_DOCKER_CONNECTED   _JOYRIDE_EXPAND(JOYRIDE_MESSAGE, JOYRIDE_DOCKER_CONNECTED_BYTES)
#define JOYRIDE_MESSAGE_DOCKER_LOST        _JOYRIDE_EXPAND(JOYRIDE_MESSAGE, JOYRIDE_DOCKER_LOST_BYTES)

/* "MESSAGE_ID=f1230bff301e43edbb29e89cd77b2caf" and so on: string literals. */
#define JOYRIDE_FIELD_RECORD_ADDED         _JOYRIDE_EXPAND(JOYRIDE_MESSAGE_FIELD, JOYRIDE_RECORD_ADDED_BYTES)
#define JOYRIDE_FIELD_RECORD_REMOVED       _JOYRIDE_EXPAND(JOYRIDE_MESSAGE_FIELD, JOYRIDE_RECORD_REMOVED_BYTES)
#define JOYRIDE_FIELD_MEMBER_DEAD          _JOYRIDE_EXPAND(JOYRIDE_MESSAGE_FIELD, JOYRIDE_MEMBER_DEAD_BYTES)
#define JOYRIDE_FIELD_MEMBER_ALIVE         _JOYRIDE_EXPAND(JOYRIDE_MESSAGE_FIELD, JOYRIDE_MEMBER_ALIVE_BYTES)
#define JOYRIDE_FIELD_DOCKER_CONNECTED     _JOYRIDE_EXPAND(JOYRIDE_MESSAGE_FIELD, JOYRIDE_DOCKER_CONNECTED_BYTES)
#define JOYRIDE_FIELD_DOCKER_LOST          _JOYRIDE_EXPAND(JOYRIDE_MESSAGE_FIELD, JOYRIDE_DOCKER_LOST_BYTES)
