/* SPDX-License-Identifier: MIT */
/* The DNS answer path: request bytes in, reply bytes out, over the record
 * store. Authoritative only (no recursion), allocation-free: the question and
 * every name we handle live in stack buffers, the reply is written straight
 * into the caller's buffer with bounds checks on every write. When an answer
 * does not fit, the reply is cut back to header + question (+ OPT) with TC set
 * so the client retries over TCP, where the limit is 64 KiB.
 *
 * Decisions where the protocol leaves room (documented for the lead):
 * - AA is set on answers about our data (NOERROR, NXDOMAIN); error replies
 *   (FORMERR, NOTIMP, REFUSED, BADVERS) have AA clear, like NSD and BIND,
 *   and so do answers to QCLASS ANY (RFC 1034 3.7.1).
 * - A request with an OPT gets an OPT back whatever the rcode, FORMERR and
 *   NOTIMP included, as long as the OPT can be found (RFC 6891 7); the DO
 *   bit is copied into it (RFC 3225 3). RD and CD are copied for opcode
 *   QUERY only.
 * - The zone apex of a name is the most specific configured domain it falls
 *   under, else in-addr.arpa / ip6.arpa for reverse names of ours, else (with
 *   no configured domains) the top-level name our data lives under; never the
 *   root (dns_zone_apex()). Names that are not ours get REFUSED without AA or
 *   SOA, flagged for a forwarder. The apex always exists (NODATA, never
 *   NXDOMAIN), answers SOA queries, and is where the closest-encloser walk for
 *   wildcards stops.
 * - A CNAME chain is followed through the store only, without wildcard
 *   expansion of the targets; a target we do not hold ends the chain with
 *   NOERROR, and so does a target without records of the asked type.
 * - Several CNAME values at one name (two owners disagreeing) answer with the
 *   first one only: a CNAME rrset must hold a single record.
 * - AXFR/IXFR are REFUSED; a question of type OPT is a FORMERR.
 * - Over UDP with EDNS we send up to min(client payload, 4096) bytes, at least
 *   512, while advertising DNS_EDNS_PAYLOAD_OURS in our OPT. */

#include <stdio.h>
#include <string.h>

#include "dns-answer.h"
#include "macro.h"
#include "dns-name.h"
#include "wire.h"

#define DNS_FLAG_QR 0x8000u
#define DNS_FLAG_AA 0x0400u
#define DNS_FLAG_TC 0x0200u
#define DNS_FLAG_RD 0x0100u
#define DNS_FLAG_CD 0x0010u
#define DNS_EDNS_FLAG_DO 0x8000u
#define DNS_OPCODE_MASK 0x7800u
#define DNS_OPCODE_QUERY 0

#define DNS_UDP_REPLY_MAX 4096u
#define DNS_OPT_RR_SIZE 11u /* root owner, type, class, ttl, rdlen 0 */
#define DNS_LABELS_MAX 128u /* 255 bytes hold at most 127 labels */
#define DNS_COMPRESS_OFFSET_MAX 0x3fffu
#define CNAME_CHAIN_MAX 8
#define COMPRESS_ENTRIES_MAX 64

#define SOA_REFRESH 3600u
#define SOA_RETRY 600u
#define SOA_EXPIRE 86400u

typedef struct Question {
        uint8_t wire[DNS_WIRE_NAME_MAX]; /* lowercased, for lookups */
        size_t wire_len;                 /* including the root byte */
        uint8_t labels[DNS_LABELS_MAX];  /* offset of each label in wire */
        unsigned n_labels;               /* not counting the root */
        uint16_t type;
        uint16_t class;
        size_t end; /* request offset after the question */
} Question;

typedef struct Edns {
        bool present;
        bool dnssec_ok; /* the DO bit, copied into our OPT (RFC 3225 3) */
        uint16_t payload;
        uint8_t version;
} Edns;

typedef struct CompressEntry {
        uint16_t offset; /* where a name suffix starts in the reply */
        uint8_t len;     /* its uncompressed wire length */
} CompressEntry;

typedef struct Packet {
        Wire w; /* sized to what this reply may use, space for OPT already taken
                                 * off; a write that does not fit makes the reply truncated */
        uint16_t ancount, nscount;
        CompressEntry compress[COMPRESS_ENTRIES_MAX];
        unsigned n_compress;
} Packet;

typedef struct Answer {
        const Store *store;
        const DnsAnswerConfig *cfg;
        const Question *q;
        Packet *p;
        size_t apex_off; /* offset of the zone apex suffix in q->wire */
} Answer;

static inline uint8_t ascii_lower(uint8_t c) {
        return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

const char *dns_rcode_to_string(int rcode) {
        static const char *const table[] = {
                [0] = "NOERROR", [1] = "FORMERR", [2] = "SERVFAIL", [3] = "NXDOMAIN",
                [4] = "NOTIMP",  [5] = "REFUSED", [6] = "YXDOMAIN", [7] = "YXRRSET",
                [8] = "NXRRSET", [9] = "NOTAUTH", [10] = "NOTZONE", [16] = "BADVERS",
        };

        if (rcode < 0 || (size_t) rcode >= ELEMENTSOF(table))
                return NULL;
        return table[rcode];
}

const char *dns_rcode_format(unsigned rcode, char buf[static 16]) {
        const char *name = rcode <= INT16_MAX ? dns_rcode_to_string((int) rcode) : NULL;

        if (name)
                return name;
        snprintf(buf, 16, "RCODE%u", rcode);
        return buf;
}

/* --- request parsing ---------------------------------------------------- */

/* The question name must be plain labels: a compression pointer has nothing
 * to point back to in the question, and extended label types are obsolete. */
static int parse_question(const uint8_t *req, size_t len, Question *q) {
        Wire r = wire_init_const(req, len);
        size_t w = 0;

        wire_seek(&r, DNS_HEADER_SIZE);
        q->n_labels = 0;
        for (;;) {
                uint8_t l = wire_read_u8(&r);
                const uint8_t *label;

                if (!wire_ok(&r))
                        return -EBADMSG;
                if (l == 0)
                        break;
                if (l > 63 || w + 1 + l + 1 > DNS_WIRE_NAME_MAX)
                        return -EBADMSG;
                label = wire_read_ptr(&r, l);
                if (!label)
                        return -EBADMSG;

                q->labels[q->n_labels++] = (uint8_t) w;
                q->wire[w++] = l;
                for (size_t i = 0; i < l; i++)
                        q->wire[w++] = ascii_lower(label[i]);
        }
        q->wire[w++] = 0;
        q->wire_len = w;

        q->type = wire_read_u16(&r);
        q->class = wire_read_u16(&r);
        if (!wire_ok(&r))
                return -EBADMSG;
        q->end = wire_offset(&r);
        return 0;
}

/* Skips n questions from the header on. Returns the offset after them, or
 * -EBADMSG. For requests whose question we do not answer (none, several),
 * so that their OPT can still be found. */
static ssize_t skip_questions(const uint8_t *req, size_t len, unsigned n) {
        Wire r = wire_init_const(req, len);

        wire_seek(&r, DNS_HEADER_SIZE);
        for (unsigned i = 0; i < n && wire_ok(&r); i++) {
                dns_name_skip(&r);
                wire_skip(&r, 4); /* type, class */
        }
        return wire_ok(&r) ? (ssize_t) wire_offset(&r) : -EBADMSG;
}

/* Walks the answer, authority and additional sections to find the OPT record.
 * Sets e->present even when failing on a duplicate OPT, so that the FORMERR
 * carries our OPT too. */
static int parse_edns(const uint8_t *req, size_t len, size_t offset, Edns *e) {
        unsigned an = wire_get_u16(req + 6), ns = wire_get_u16(req + 8), ar = wire_get_u16(req + 10);
        Wire r = wire_init_const(req, len);

        *e = (Edns) {};
        wire_seek(&r, offset);
        for (unsigned i = 0; i < an + ns + ar; i++) {
                size_t start = wire_offset(&r), owner_len;
                uint16_t type, class;
                uint32_t ttl;

                dns_name_skip(&r);
                owner_len = wire_offset(&r) - start;
                type = wire_read_u16(&r);
                class = wire_read_u16(&r);
                ttl = wire_read_u32(&r);
                wire_skip(&r, wire_read_u16(&r)); /* rdata */
                if (!wire_ok(&r))
                        return -EBADMSG;

                if (i >= an + ns && type == DNS_TYPE_OPT) {
                        if (e->present)
                                return -EBADMSG; /* RFC 6891 6.1.1: more than one OPT */
                        if (owner_len != 1 || req[start] != 0)
                                return -EBADMSG; /* the OPT owner must be the root */
                        e->present = true;
                        e->payload = class;
                        e->version = (uint8_t) (ttl >> 16);
                        e->dnssec_ok = ttl & DNS_EDNS_FLAG_DO;
                }
        }
        return 0;
}

/* --- reply writing ------------------------------------------------------ */

static void pkt_remember(Packet *p, size_t offset, size_t len) {
        /* A root suffix is never worth a pointer, and pointers reach 14 bits. */
        if (len <= 1 || offset > DNS_COMPRESS_OFFSET_MAX || p->n_compress >= COMPRESS_ENTRIES_MAX)
                return;
        p->compress[p->n_compress++] = (CompressEntry) { .offset = offset, .len = len };
}

/* Compares the name written at offset in the reply (which may end in a
 * pointer) with a lowercased uncompressed wire name. */
static bool reply_name_equal(const Packet *p, size_t offset, const uint8_t *w, size_t wlen) {
        const uint8_t *buf = p->w.buf;
        size_t i = 0, len = wire_offset(&p->w);

        for (unsigned hops = 0; hops < DNS_LABELS_MAX;) {
                uint8_t l;

                if (offset >= len)
                        return false;
                l = buf[offset];
                if ((l & 0xc0) == 0xc0) {
                        if (offset + 1 >= len)
                                return false;
                        offset = ((l & 0x3f) << 8) | buf[offset + 1];
                        hops++;
                        continue;
                }
                if (i >= wlen || w[i] != l)
                        return false;
                if (l == 0)
                        return i + 1 == wlen;
                if (offset + 1 + l > len || i + 1 + l > wlen)
                        return false;
                for (size_t k = 1; k <= l; k++)
                        if (ascii_lower(buf[offset + k]) != w[i + k])
                                return false;
                offset += 1 + l;
                i += 1 + l;
        }
        return false;
}

/* Writes a lowercased wire name, pointing to the longest suffix already in
 * the reply. */
static bool pkt_put_name(Packet *p, const uint8_t *w, size_t wlen) {
        size_t start = wire_offset(&p->w), j = 0;

        while (j < wlen && w[j] != 0) {
                size_t rest = wlen - j;

                for (unsigned e = 0; e < p->n_compress; e++) {
                        const CompressEntry *c = p->compress + e;

                        if (c->len != rest || !reply_name_equal(p, c->offset, w + j, rest))
                                continue;

                        wire_write(&p->w, w, j);
                        wire_write_u16(&p->w, 0xc000 | c->offset);
                        if (!wire_ok(&p->w))
                                return false;
                        for (size_t k = 0; k < j; k += 1 + w[k])
                                pkt_remember(p, start + k, wlen - k);
                        return true;
                }
                j += 1 + w[j];
        }

        wire_write(&p->w, w, wlen);
        if (!wire_ok(&p->w))
                return false;
        for (size_t k = 0; k + 1 < wlen; k += 1 + w[k])
                pkt_remember(p, start + k, wlen - k);
        return true;
}

static bool pkt_put_pointer(Packet *p, size_t offset) {
        wire_write_u16(&p->w, 0xc000 | offset);
        return wire_ok(&p->w);
}

/* Starts rdata whose length is known once it is written: returns where the
 * length goes, for pkt_rdata_end(). */
static size_t pkt_rdata_begin(Packet *p) {
        wire_write_u16(&p->w, 0);
        return wire_offset(&p->w);
}

static bool pkt_rdata_end(Packet *p, size_t start) {
        if (!wire_ok(&p->w))
                return false;
        wire_put_u16(p->w.buf + start - 2, (uint16_t) (wire_offset(&p->w) - start));
        return true;
}

/* Length of a valid uncompressed wire name filling all of rdata, else 0. */
static size_t rdata_name_len(const uint8_t *rd, size_t rdlen) {
        size_t i = 0;

        while (i < rdlen && i < DNS_WIRE_NAME_MAX) {
                uint8_t l = rd[i];

                if (l == 0)
                        return i + 1 == rdlen ? rdlen : 0;
                if (l > 63)
                        return 0;
                i += 1 + l;
        }
        return 0;
}

static size_t lowercase_copy(uint8_t *dst, const uint8_t *src, size_t n) {
        for (size_t i = 0; i < n; i++)
                dst[i] = ascii_lower(src[i]);
        return n;
}

/* An owner name is either a reply offset we already know (the question) or a
 * lowercased wire name. */
typedef struct Owner {
        const uint8_t *wire;
        size_t len;
        size_t offset; /* used when wire is NULL */
} Owner;

static bool put_owner(Packet *p, const Owner *o) {
        if (!o->wire)
                return pkt_put_pointer(p, o->offset);
        return pkt_put_name(p, o->wire, o->len);
}

/* Writes one record. Returns false on overflow. */
static bool put_rr(Packet *p, const Owner *o, uint16_t type, const uint8_t *rdata, uint16_t rdlen, uint32_t ttl) {
        size_t name_len;

        if (!put_owner(p, o))
                return false;
        wire_write_u16(&p->w, type);
        wire_write_u16(&p->w, DNS_CLASS_IN);
        wire_write_u32(&p->w, ttl);

        name_len = (type == DNS_TYPE_CNAME || type == DNS_TYPE_PTR) ? rdata_name_len(rdata, rdlen) : 0;
        if (name_len > 0) {
                /* Names in CNAME and PTR rdata may be compressed (RFC 3597 4). */
                uint8_t lower[DNS_WIRE_NAME_MAX];
                size_t start = pkt_rdata_begin(p);

                lowercase_copy(lower, rdata, name_len);
                if (!pkt_put_name(p, lower, name_len) || !pkt_rdata_end(p, start))
                        return false;
        } else {
                wire_write_u16(&p->w, rdlen);
                wire_write(&p->w, rdata, rdlen);
                if (!wire_ok(&p->w))
                        return false;
        }

        p->ancount++;
        return true;
}

/* Round robin without writing to the store: each answering thread turns
 * its own counter, one step per rrset answered with several values. */
static __thread uint32_t rotation;

/* Writes one rrset in round-robin order. Returns false on overflow. */
static bool put_rrset(Packet *p, const Owner *o, const StoreRRSet *set, bool first_only) {
        uint32_t n = set->n, start = 0;
        const uint8_t *pos = set->first;
        StoreRR rr;

        if (n == 0)
                return true;
        if (first_only)
                n = 1;
        else if (n > 1)
                start = rotation++ % n;

        /* Values are packed: walk to the start, then around. */
        for (uint32_t i = 0; i < start; i++)
                store_rr_read(&pos, &rr);
        for (uint32_t i = 0; i < n; i++) {
                if (start + i == set->n)
                        pos = set->first;
                store_rr_read(&pos, &rr);
                if (!put_rr(p, o, set->type, rr.rdata, rr.rdlen, rr.ttl))
                        return false;
        }
        return true;
}

/* Writes the PTRs of a name in round-robin order: its explicit PTR rrset and
 * those derived from the A/AAAA records of its address, each target once.
 * The derived ones come from an iterator, so the rotation walks them in
 * order, restarting once at the wrap. Returns false on overflow. */
static bool put_ptrs(const Answer *a, const Owner *o, const StoreName *name) {
        StoreRRSet set = {};
        bool has_set = store_view_rrset(name->view, DNS_TYPE_PTR, &set);
        size_t n_exp = has_set ? set.n : 0, n, start;
        StorePtrIter iter = {};
        size_t next_derived = 0;  /* index the iterator gives next */
        size_t next_explicit = 0; /* same, for the explicit values */
        const uint8_t *exp_pos = set.first;

        if (!name->addr)
                return has_set ? put_rrset(a->p, o, &set, false) : true;

        n = n_exp + store_name_n_ptr(name);
        if (n == 0)
                return true;
        start = n > 1 ? rotation++ % n : 0;

        for (size_t i = 0; i < n; i++) {
                size_t pos = (start + i) % n;
                const uint8_t *target = NULL;
                uint16_t tlen = 0;
                uint32_t ttl = 0;

                if (pos < n_exp) {
                        StoreRR rr;

                        if (pos < next_explicit) {
                                exp_pos = set.first;
                                next_explicit = 0;
                        }
                        do {
                                store_rr_read(&exp_pos, &rr);
                        } while (next_explicit++ < pos);
                        if (!put_rr(a->p, o, DNS_TYPE_PTR, rr.rdata, rr.rdlen, store_name_ptr_ttl(name, &rr)))
                                return false;
                        continue;
                }
                if (pos - n_exp < next_derived) {
                        iter = (StorePtrIter) {};
                        next_derived = 0;
                }
                while (next_derived <= pos - n_exp) {
                        if (!store_name_next_ptr(name, &iter, &target, &tlen, &ttl))
                                return true; /* the names changed since they were counted */
                        next_derived++;
                }
                if (!put_rr(a->p, o, DNS_TYPE_PTR, target, tlen, ttl))
                        return false;
        }
        return true;
}

/* Our SOA, owned by the zone apex, which is a suffix of the question name so
 * its owner is a pointer into the question. */
static bool put_soa(const Answer *a, bool in_answer) {
        const DnsAnswerConfig *cfg = a->cfg;
        Packet *p = a->p;
        uint8_t mname[DNS_WIRE_NAME_MAX], rname[DNS_WIRE_NAME_MAX];
        int mlen = -EINVAL, rlen = -EINVAL;
        size_t start;

        if (cfg->soa_mname)
                mlen = dns_name_to_wire(cfg->soa_mname, mname);
        if (mlen <= 0) {
                mname[0] = 0;
                mlen = 1;
        }
        if (cfg->soa_rname)
                rlen = dns_name_to_wire(cfg->soa_rname, rname);
        if (rlen <= 0) {
                rname[0] = 0;
                rlen = 1;
        }

        if (a->apex_off + 1 == a->q->wire_len)
                wire_write_u8(&p->w, 0);
        else
                (void) pkt_put_pointer(p, DNS_HEADER_SIZE + a->apex_off);
        wire_write_u16(&p->w, DNS_TYPE_SOA);
        wire_write_u16(&p->w, DNS_CLASS_IN);
        wire_write_u32(&p->w, cfg->negative_ttl);
        start = pkt_rdata_begin(p);
        if (!pkt_put_name(p, mname, mlen) || !pkt_put_name(p, rname, rlen))
                return false;
        wire_write_u32(&p->w, (uint32_t) store_version(a->store));
        wire_write_u32(&p->w, SOA_REFRESH);
        wire_write_u32(&p->w, SOA_RETRY);
        wire_write_u32(&p->w, SOA_EXPIRE);
        wire_write_u32(&p->w, cfg->negative_ttl);
        if (!pkt_rdata_end(p, start))
                return false;

        if (in_answer)
                p->ancount++;
        else
                p->nscount++;
        return true;
}

/* --- answering ------------------------------------------------------------ */

static bool lookup(const Store *s, const uint8_t *w, size_t len, StoreName *ret) {
        return store_lookup_name(s, w, len, ret);
}

static uint8_t nodata(const Answer *a) {
        (void) put_soa(a, false);
        return DNS_RCODE_NOERROR;
}

/* Follows a CNAME chain through the store, appending each step and finally
 * the target's records of the asked type. */
static uint8_t chase_cname(const Answer *a, const StoreNode *node, const StoreRRSet *first_cname, const Owner *owner) {
        const StoreNode *visited[CNAME_CHAIN_MAX + 1] = { node };
        unsigned n_visited = 1;
        /* Two buffers: the owner of the step being written is the target of
         * the previous one, and must stay intact while the next is read. */
        uint8_t targets[2][DNS_WIRE_NAME_MAX];
        StoreRRSet cname = *first_cname;
        Owner step_owner;
        uint16_t qtype = a->q->type;

        for (unsigned step = 0; step < CNAME_CHAIN_MAX; step++) {
                uint8_t *target = targets[step & 1];
                const uint8_t *pos = cname.first;
                StoreName next;
                StoreRRSet set;
                StoreRR rr;
                size_t tlen;

                if (!put_rrset(a->p, owner, &cname, true))
                        break;

                store_rr_read(&pos, &rr);
                tlen = rdata_name_len(rr.rdata, rr.rdlen);
                if (tlen == 0)
                        break;
                lowercase_copy(target, rr.rdata, tlen);

                if (!lookup(a->store, target, tlen, &next))
                        break; /* not ours (or not held): the chain is the answer */
                for (unsigned i = 0; i < n_visited; i++)
                        if (visited[i] == next.node)
                                return DNS_RCODE_NOERROR; /* a loop: the chain so far */
                visited[n_visited++] = next.node;

                step_owner = (Owner) { .wire = target, .len = tlen };
                owner = &step_owner;

                if (qtype == DNS_TYPE_PTR && store_name_has_ptr(&next)) {
                        (void) put_ptrs(a, owner, &next);
                        break;
                }
                if (store_view_rrset(next.view, qtype, &set) && set.n > 0) {
                        (void) put_rrset(a->p, owner, &set, false);
                        break;
                }
                if (!store_view_rrset(next.view, DNS_TYPE_CNAME, &cname) || cname.n == 0)
                        break;
        }
        return DNS_RCODE_NOERROR;
}

static uint8_t answer_node(const Answer *a, const StoreName *name, bool at_apex) {
        const Owner owner = { .offset = DNS_HEADER_SIZE };
        const StoreView *view = name->view;
        uint16_t qtype = a->q->type;
        StoreRRSet set;

        if (qtype == DNS_TYPE_ANY) {
                bool ptrs_done = false;

                if (at_apex && !put_soa(a, true))
                        return DNS_RCODE_NOERROR;
                for (unsigned i = 0; i < store_view_n_rrsets(view); i++) {
                        bool ok;

                        store_view_rrset_at(view, i, &set);
                        if (set.type == DNS_TYPE_PTR) {
                                ok = put_ptrs(a, &owner, name);
                                ptrs_done = true;
                        } else
                                ok = put_rrset(a->p, &owner, &set, set.type == DNS_TYPE_CNAME);
                        if (!ok)
                                return DNS_RCODE_NOERROR;
                }
                if (!ptrs_done && !put_ptrs(a, &owner, name))
                        return DNS_RCODE_NOERROR;
                if (a->p->ancount == 0)
                        return nodata(a);
                return DNS_RCODE_NOERROR;
        }

        if (qtype == DNS_TYPE_PTR && store_name_has_ptr(name)) {
                (void) put_ptrs(a, &owner, name);
                return DNS_RCODE_NOERROR;
        }
        if (!view)
                return nodata(a);

        if (store_view_rrset(view, qtype, &set) && set.n > 0) {
                (void) put_rrset(a->p, &owner, &set, qtype == DNS_TYPE_CNAME);
                return DNS_RCODE_NOERROR;
        }

        if (qtype != DNS_TYPE_CNAME && store_view_rrset(view, DNS_TYPE_CNAME, &set) && set.n > 0)
                return chase_cname(a, name->node, &set, &owner);

        return nodata(a);
}

/* Does the question name end in the presentation name d at a label boundary?
 * Returns the offset of that suffix in q->wire, or -1. */
static int match_domain(const Question *q, const char *d) {
        uint8_t w[DNS_WIRE_NAME_MAX];
        const uint8_t *qw;
        unsigned dl = 0;
        size_t off;
        int wlen;

        if (strchr(d, '\\')) {
                /* Escapes are rare in configured domains; let the store's
                 * converter deal with them. */
                wlen = dns_name_to_wire(d, w);
                if (wlen <= 0)
                        return -1;
                for (int i = 0; i + 1 < wlen; i += 1 + w[i])
                        dl++;
                if (dl > q->n_labels)
                        return -1;
                off = dl == q->n_labels ? 0 : q->labels[q->n_labels - dl];
                if (q->wire_len - off != (size_t) wlen || memcmp(q->wire + off, w, wlen) != 0)
                        return -1;
                return (int) off;
        }

        /* Plain name: count its labels, then compare that many trailing
         * labels of the question without converting. */
        if (d[0] == '.' && d[1] == 0)
                d++;
        if (*d) {
                dl = 1;
                for (const char *c = d; *c; c++)
                        if (*c == '.' && c[1] != 0)
                                dl++;
        }
        if (dl > q->n_labels)
                return -1;
        off = dl == 0 ? q->wire_len - 1 : q->labels[q->n_labels - dl];

        qw = q->wire + off;
        while (*qw != 0) {
                uint8_t l = *qw++;

                for (unsigned i = 0; i < l; i++, d++)
                        if (*d == 0 || ascii_lower((uint8_t) *d) != qw[i])
                                return -1;
                qw += l;
                if (*d == '.')
                        d++;
                else if (*d != 0)
                        return -1;
        }
        return *d == 0 ? (int) off : -1;
}

static int reverse_suffix(const Question *q) {
        static const uint8_t in_addr[] = "\7in-addr\4arpa";
        static const uint8_t ip6[] = "\3ip6\4arpa";
        size_t off;

        if (q->n_labels < 2)
                return -1;
        off = q->labels[q->n_labels - 2];
        if ((q->wire_len - off == sizeof(in_addr) && memcmp(q->wire + off, in_addr, sizeof(in_addr)) == 0) ||
            (q->wire_len - off == sizeof(ip6) && memcmp(q->wire + off, ip6, sizeof(ip6)) == 0))
                return (int) off;
        return -1;
}

/* Whether a name under in-addr.arpa or ip6.arpa (at reverse_off) is ours:
 * the reverse name of an address we hold, or above one (those exist), or one
 * that a wildcard of ours covers. Not every reverse name: in-addr.arpa exists
 * as soon as we hold one IPv4 address, and the rest of the address space is
 * somebody else's. */
static bool reverse_is_ours(const Store *s, const Question *q, size_t reverse_off) {
        uint8_t wbuf[DNS_WIRE_NAME_MAX];
        StoreName n;
        size_t ce = SIZE_MAX;

        if (store_lookup_name(s, q->wire, q->wire_len, &n))
                return true;
        for (unsigned i = 1; i < q->n_labels && q->labels[i] <= reverse_off; i++)
                if (store_lookup_name(s, q->wire + q->labels[i], q->wire_len - q->labels[i], &n)) {
                        ce = q->labels[i];
                        break;
                }
        if (ce == SIZE_MAX || q->wire_len - ce + 2 > DNS_WIRE_NAME_MAX)
                return false;
        wbuf[0] = 1;
        wbuf[1] = '*';
        memcpy(wbuf + 2, q->wire + ce, q->wire_len - ce);
        return store_lookup_name(s, wbuf, q->wire_len - ce + 2, &n);
}

/* The rule for which names are ours (see dns_zone_apex() in the header).
 * Returns the offset of the zone apex in q->wire, or -1 when the name is not
 * ours. */
static int find_apex(const Store *s, const Question *q, const DnsAnswerConfig *cfg) {
        static const uint8_t arpa[] = "\4arpa";
        const StoreNode *top;
        int best = -1;
        size_t off;

        if (cfg->domains && cfg->domains[0]) {
                for (char **d = cfg->domains; *d; d++) {
                        int o = match_domain(q, *d);

                        /* The most specific configured domain is the apex. */
                        if (o >= 0 && (best < 0 || o < best))
                                best = o;
                }
                if (best >= 0)
                        return best;
        }

        best = reverse_suffix(q);
        if (best >= 0)
                return reverse_is_ours(s, q, (size_t) best) ? best : -1;

        if ((cfg->domains && cfg->domains[0]) || q->n_labels == 0)
                return -1;

        /* Every ancestor of a name in the store is a node too, so a name is
         * below one of ours exactly when its top-level label is a node; that
         * node is the top-most existing ancestor, and the apex. Under arpa,
         * the second level takes that role: explicit PTRs make arpa a node,
         * which must not make home.arpa ours. Nodes only, for the same
         * reason: arpa "exists" for the address index. */
        off = q->labels[q->n_labels - 1];
        if (q->wire_len - off == sizeof(arpa) && memcmp(q->wire + off, arpa, sizeof(arpa)) == 0) {
                if (q->n_labels < 2)
                        return -1;
                off = q->labels[q->n_labels - 2];
        }
        /* A node is in the store exactly while it holds records or has
         * names below it. */
        top = store_lookup_wire(s, q->wire + off, q->wire_len - off);
        if (!top)
                return -1;
        return (int) off;
}

int dns_zone_apex(const Store *s, const DnsAnswerConfig *cfg, const uint8_t *wire, size_t len) {
        Question q = {};
        size_t w = 0;

        if (!s || !cfg || !wire || len == 0 || len > DNS_WIRE_NAME_MAX)
                return -EINVAL;
        while (wire[w] != 0) {
                uint8_t l = wire[w];

                if (l > 63 || w + 1 + l >= len || q.n_labels >= DNS_LABELS_MAX)
                        return -EINVAL;
                q.labels[q.n_labels++] = (uint8_t) w;
                q.wire[w] = l;
                for (size_t i = 1; i <= l; i++)
                        q.wire[w + i] = ascii_lower(wire[w + i]);
                w += 1 + l;
        }
        if (w + 1 != len)
                return -EINVAL;
        q.wire[w] = 0;
        q.wire_len = len;

        int r = find_apex(s, &q, cfg);
        return r < 0 ? -ENOENT : r;
}

static uint8_t resolve(Answer *a) {
        const Question *q = a->q;
        StoreName name, wild = {};
        bool at_apex = a->apex_off == 0;
        uint8_t wbuf[DNS_WIRE_NAME_MAX];
        size_t ce;

        if (q->type == DNS_TYPE_SOA && at_apex) {
                (void) put_soa(a, true);
                return DNS_RCODE_NOERROR;
        }

        if (lookup(a->store, q->wire, q->wire_len, &name) || at_apex)
                return answer_node(a, &name, at_apex);

        /* RFC 4592: the closest encloser is the longest existing ancestor; the
         * apex always exists, and we never look above it. */
        ce = a->apex_off;
        for (unsigned i = 1; i < q->n_labels; i++) {
                size_t off = q->labels[i];
                StoreName anc;

                if (off >= a->apex_off)
                        break;
                if (lookup(a->store, q->wire + off, q->wire_len - off, &anc)) {
                        ce = off;
                        break;
                }
        }

        if (q->wire_len - ce + 2 <= DNS_WIRE_NAME_MAX) {
                wbuf[0] = 1;
                wbuf[1] = '*';
                memcpy(wbuf + 2, q->wire + ce, q->wire_len - ce);
                if (lookup(a->store, wbuf, q->wire_len - ce + 2, &wild))
                        return answer_node(a, &wild, false);
        }

        (void) put_soa(a, false);
        return DNS_RCODE_NXDOMAIN;
}

static void put_opt(Wire *w, uint8_t rcode, bool dnssec_ok) {
        wire_write_u8(w, 0); /* root owner */
        wire_write_u16(w, DNS_TYPE_OPT);
        wire_write_u16(w, DNS_EDNS_PAYLOAD_OURS);            /* class: our payload size */
        wire_write_u8(w, rcode >> 4);                        /* extended rcode, upper 8 bits */
        wire_write_u8(w, 0);                                 /* version 0 */
        wire_write_u16(w, dnssec_ok ? DNS_EDNS_FLAG_DO : 0); /* DO as asked, Z clear */
        wire_write_u16(w, 0);                                /* no options */
}

void dns_answer_prefetch(const Store *s, const uint8_t *req, size_t req_len, DnsPrefetch *p, unsigned step) {
        if (step == 0) {
                uint8_t wire[DNS_WIRE_NAME_MAX];
                size_t r = DNS_HEADER_SIZE, w = 0;

                /* The question's name, lowercased, as parse_question() reads
                 * it; anything odd is left to dns_answer(). */
                p->valid = false;
                if (req_len <= DNS_HEADER_SIZE || wire_get_u16(req + 4) != 1)
                        return;
                for (;;) {
                        uint8_t l;

                        if (r >= req_len)
                                return;
                        l = req[r++];
                        if (l == 0)
                                break;
                        if (l > 63 || w + 1 + l + 1 > DNS_WIRE_NAME_MAX || r + l > req_len)
                                return;
                        wire[w++] = l;
                        for (size_t i = 0; i < l; i++)
                                wire[w++] = ascii_lower(req[r++]);
                }
                wire[w++] = 0;
                p->hash = store_name_hash(wire, w);
                p->len = (uint16_t) w;
                p->valid = true;
        }
        if (p->valid)
                store_prefetch(s, p->hash, p->len, step);
}

/* The rcode of everything answered without looking at data; NOERROR when
 * the store decides. q is read only with have_q. */
static uint8_t request_rcode(bool query, bool have_q, const Question *q, int edns_r, const Edns *edns) {
        if (!query)
                return DNS_RCODE_NOTIMP;
        if (!have_q)
                return DNS_RCODE_FORMERR;
        if (edns_r < 0)
                return DNS_RCODE_FORMERR;
        if (edns->present && edns->version > 0)
                return DNS_RCODE_BADVERS;
        if (q->class != DNS_CLASS_IN && q->class != DNS_CLASS_ANY)
                return DNS_RCODE_REFUSED;
        if (q->type == DNS_TYPE_OPT)
                return DNS_RCODE_FORMERR;
        if (q->type == DNS_TYPE_AXFR || q->type == DNS_TYPE_IXFR)
                return DNS_RCODE_REFUSED;
        return DNS_RCODE_NOERROR; /* decided by resolve() */
}

/* How long the reply may be on this transport, for this client. */
static size_t reply_limit(DnsTransport transport, const Edns *edns, size_t reply_size) {
        size_t limit;

        if (transport == DNS_TRANSPORT_TCP)
                limit = DNS_TCP_MESSAGE_MAX;
        else if (edns->present)
                limit = MIN(MAX((size_t) edns->payload, (size_t) DNS_UDP_PAYLOAD_DEFAULT), (size_t) DNS_UDP_REPLY_MAX);
        else
                limit = DNS_UDP_PAYLOAD_DEFAULT;
        return MIN(limit, reply_size);
}

/* A question that passed request_rcode(), answered from the store into p:
 * its rcode, AA in *out_flags for our names, and *ret_forward for a name
 * that is not ours (REFUSED: a forwarder may answer it instead, see
 * DnsQueryInfo.forward). */
static uint8_t answer_question(const Store *s, const DnsAnswerConfig *cfg, const Question *q, Packet *p,
                               uint16_t *out_flags, bool *ret_forward) {
        Answer a = {
                .store = s,
                .cfg = cfg,
                .q = q,
                .p = p,
        };
        uint8_t rcode;
        int r;

        r = find_apex(s, q, cfg);
        if (r < 0) {
                /* Not ours: no authority, no SOA. */
                *ret_forward = true;
                return DNS_RCODE_REFUSED;
        }
        /* The question's suffixes are the first compression targets. */
        for (unsigned i = 0; i < q->n_labels; i++)
                pkt_remember(p, DNS_HEADER_SIZE + q->labels[i], q->wire_len - q->labels[i]);
        a.apex_off = r;
        rcode = resolve(&a);
        /* Not for QCLASS ANY: there may be data of other
         * classes elsewhere (RFC 1034 3.7.1; NSD does the same). */
        if (q->class == DNS_CLASS_IN)
                *out_flags |= DNS_FLAG_AA;
        return rcode;
}

size_t dns_answer(const Store *s, const DnsAnswerConfig *cfg, DnsTransport transport, const uint8_t *req,
                  size_t req_len, uint8_t *reply, size_t reply_size, DnsQueryInfo *ret_info) {
        DnsQueryInfo info = {};
        Question q;
        Edns edns = {};
        Packet p;
        uint16_t flags, out_flags, qdcount;
        bool have_q, query;
        size_t limit, qend, len;
        ssize_t after_q;
        uint8_t rcode;
        int edns_r;

        if (ret_info)
                *ret_info = info;
        if (!req || req_len < DNS_HEADER_SIZE || !reply || reply_size < DNS_UDP_PAYLOAD_DEFAULT)
                return 0;
        flags = wire_get_u16(req + 2);
        if (flags & DNS_FLAG_QR)
                return 0;

        qdcount = wire_get_u16(req + 4);
        query = (flags & DNS_OPCODE_MASK) == DNS_OPCODE_QUERY;
        /* RD and CD mean something in a QUERY only: other opcodes get neither back. */
        out_flags = DNS_FLAG_QR | (flags & DNS_OPCODE_MASK);
        if (query)
                out_flags |= flags & (DNS_FLAG_RD | DNS_FLAG_CD);
        have_q = qdcount == 1 && parse_question(req, req_len, &q) >= 0;
        if (have_q)
                info.qtype = q.type;

        /* A request with an OPT gets one back whatever the rcode (RFC 6891 7),
         * so look for it even when the question is not one we answer: after
         * no question, or after several. */
        after_q = have_q ? (ssize_t) q.end : skip_questions(req, req_len, qdcount);
        edns_r = after_q >= 0 ? parse_edns(req, req_len, (size_t) after_q, &edns) : -EBADMSG;

        rcode = request_rcode(query, have_q, &q, edns_r, &edns);
        limit = reply_limit(transport, &edns, reply_size);

        /* Header, and the question exactly as the client wrote it. It always
         * fits: 12 + 255 + 4 + 11 < 512. */
        memcpy(reply, req, 2);
        memset(reply + 2, 0, DNS_HEADER_SIZE - 2);
        qend = DNS_HEADER_SIZE;
        if (have_q) {
                qend = q.end;
                memcpy(reply + DNS_HEADER_SIZE, req + DNS_HEADER_SIZE, q.end - DNS_HEADER_SIZE);
                wire_put_u16(reply + 4, 1);
        }

        p = (Packet) { .w = wire_init(reply, limit - (edns.present ? DNS_OPT_RR_SIZE : 0)) };
        wire_seek(&p.w, qend);

        if (have_q && rcode == DNS_RCODE_NOERROR)
                rcode = answer_question(s, cfg, &q, &p, &out_flags, &info.forward);

        len = wire_offset(&p.w);
        if (!wire_ok(&p.w)) {
                /* Too big for this transport: header and question only, TC set,
                 * so the client comes back over TCP. */
                len = qend;
                p.ancount = p.nscount = 0;
                out_flags |= DNS_FLAG_TC;
                info.truncated = true;
        }

        if (edns.present) {
                /* Into the room kept for it. */
                Wire o = wire_init(reply, limit);

                wire_seek(&o, len);
                put_opt(&o, rcode, edns.dnssec_ok);
                len = wire_offset(&o);
                wire_put_u16(reply + 10, 1);
        }

        out_flags |= rcode & 0x0f;
        wire_put_u16(reply + 2, out_flags);
        wire_put_u16(reply + 6, p.ancount);
        wire_put_u16(reply + 8, p.nscount);

        info.rcode = rcode;
        info.edns = edns.present;
        info.answer_count = p.ancount;
        if (ret_info)
                *ret_info = info;
        return len;
}
