/* SPDX-License-Identifier: MIT */
/* Hosts files: a pure parser (bytes in, entries and warnings out), and the
 * hosts-directory source that keeps the store in sync with a directory of
 * such files through inotify, reloading each file by mark and sweep. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "store.h"

/* One name for one address. address is canonical text ("10.0.0.1", "fe80::1");
 * type is DNS_TYPE_A or DNS_TYPE_AAAA; name is as written (the store checks it). */
typedef int (*HostsEntryFunc)(const char *name, uint16_t type, const char *address, unsigned line, void *userdata);
/* A line or a name that was skipped, and why ("not an IP address: '10.0.0.300'"). */
typedef void (*HostsWarnFunc)(unsigned line, const char *why, void *userdata);

/* Parses /etc/hosts syntax. Never fails on content; returns what entry() returned
 * if that was negative (and stops), else the number of entries. */
int hosts_parse(const char *data, size_t len, HostsEntryFunc entry, HostsWarnFunc warn, void *userdata);

typedef struct HostsDir HostsDir;

/* Watches directory path (which need not exist yet) and loads its files into the
 * store as owner "hosts:<path>/<file>", with TTL ttl. */
int hosts_dir_new(HostsDir **ret, sd_event *e, Store *store, const char *path, uint32_t ttl);
HostsDir *hosts_dir_free(HostsDir *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(HostsDir *, hosts_dir_free);
/* Full rescan (SIGHUP). */
int hosts_dir_rescan(HostsDir *h);
/* For status: whether the directory exists, number of files loaded and records. */
typedef struct HostsDirStatus {
        const char *path;
        bool exists;
        unsigned n_files;
        unsigned n_records;
        unsigned n_warnings;        /* bad lines/names in the last load of every file */
        uint64_t last_load_usec;    /* CLOCK_REALTIME */
} HostsDirStatus;
void hosts_dir_get_status(const HostsDir *h, HostsDirStatus *ret);
