/* SPDX-License-Identifier: MIT */
/* Hosts files: a pure parser (bytes in, entries and warnings out), and the
 * hosts-directory source that keeps the store in sync with a directory of
 * such files through inotify, reloading each file by mark and sweep. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "store.h"

/* One name for one address. address is canonical text ("10.0.0.1", "fe80::1";
 * dns_address_to_string(), the store's value of the record it makes);
 * type is DNS_TYPE_A or DNS_TYPE_AAAA; name is as written (the store checks it). */
typedef int (*HostsEntryFunc)(const char *name, uint16_t type, const char *address, unsigned line, void *userdata);
/* A line or a name that was skipped, and why ("not an IP address: '10.0.0.300'"). */
typedef void (*HostsWarnFunc)(unsigned line, const char *why, void *userdata);

/* Parses /etc/hosts syntax. Never fails on content; returns what entry() returned
 * if that was negative (and stops), else the number of entries. */
int hosts_parse(const char *data, size_t len, HostsEntryFunc entry, HostsWarnFunc warn, void *userdata);

typedef struct HostsDir HostsDir;

/* Defaults of the [Hosts] limits: a hosts file is for names a person or a
 * tool keeps, and a block list of a million names is already a lot. */
#define HOSTS_MAX_RECORDS_PER_FILE_DEFAULT 500000u
#define HOSTS_MAX_RECORDS_DEFAULT 1000000u

typedef struct HostsDirOptions {
        const char *path;              /* the directory */
        uint32_t ttl;                  /* TTL of every record */
        uint32_t max_records_per_file; /* records one file may bring; 0: the default */
        uint32_t max_records;          /* records all files together may bring; 0: the default */
} HostsDirOptions;

/* Watches directory path (which need not exist yet) and loads its files into
 * the store as owner "hosts:<path>/<file>". The first load happens before this
 * returns; every later one (a change, a rescan) is read, parsed and compared
 * with what the file held before on a worker thread, and the difference is
 * applied to the store on the loop in batches of bounded size, so that a
 * large file never holds the loop for long. */
int hosts_dir_new(HostsDir **ret, sd_event *e, Store *store, const HostsDirOptions *opts);
HostsDir *hosts_dir_free(HostsDir *h);
DEFINE_TRIVIAL_CLEANUP_FUNC(HostsDir *, hosts_dir_free);
/* Full rescan (SIGHUP): lists the directory and reloads every file, off the
 * loop; returns at once. */
int hosts_dir_rescan(HostsDir *h);
/* Changes the limits (a reload of the configuration); they apply from each
 * file's next load on. 0: the default. */
void hosts_dir_set_limits(HostsDir *h, uint32_t max_records_per_file, uint32_t max_records);
/* Whether files are waiting to be read or a difference is being applied. */
bool hosts_dir_busy(const HostsDir *h);
/* Calls f once, on the loop, when the source is next not busy (or when it is
 * freed). */
typedef void (*HostsDirIdleFunc)(void *userdata);
void hosts_dir_when_idle(HostsDir *h, HostsDirIdleFunc f, void *userdata);

/* One current warning of the hosts source: a line that was skipped (line > 0),
 * a file as a whole (line 0: unreadable, not a regular file, over its limit),
 * or the directory itself (file is the directory, line 0: missing, not
 * readable). why is worded as the journal line that reported it, after its
 * "FILE:LINE: " or "FILE: ". */
typedef struct HostsWarning {
        const char *file;
        unsigned line;
        const char *why;
} HostsWarning;

/* Warnings listed in the status, at most: the first by file and line. */
#define HOSTS_WARNINGS_LISTED_MAX 100u

/* For status: whether the directory exists, number of files loaded and records. */
typedef struct HostsDirStatus {
        const char *path;
        bool exists;
        unsigned n_files;
        unsigned n_records;
        unsigned n_warnings;     /* every current warning (see HostsWarning) */
        uint64_t last_load_usec; /* CLOCK_REALTIME */
        /* The first HOSTS_WARNINGS_LISTED_MAX of them, ordered by file (the
         * directory's own first) and line. */
        const HostsWarning *warnings;
        size_t n_warnings_listed;
} HostsDirStatus;
/* Fills ret; its pointers stay valid until the loop runs again. Not const:
 * the list of warnings is rebuilt here when it changed. */
void hosts_dir_get_status(HostsDir *h, HostsDirStatus *ret);
