// SPDX-License-Identifier: MIT
// The dashboard's behaviour: loads /status and /dns/records, then follows the
// /api/events feed (Server-Sent Events) so records appear and disappear
// without a reload; /status is polled for the counters. All data goes into
// the page through textContent, never as markup.
"use strict";

(function () {
  const THEME_KEY = "joyride-theme";
  const STATUS_INTERVAL_MS = 5000;

  // --- theme: applied before the body renders, to avoid a flash ----------
  function storedTheme() {
    try {
      const t = window.localStorage.getItem(THEME_KEY);
      return t === "dark" || t === "light" ? t : null;
    } catch (e) {
      return null;
    }
  }
  function systemTheme() {
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }
  function currentTheme() {
    return document.documentElement.dataset.theme || systemTheme();
  }
  const initial = storedTheme();
  if (initial) document.documentElement.dataset.theme = initial;

  // --- state -----------------------------------------------------------------
  let recordsVersion = 0;
  let loading = null; // Promise while /dns/records is being fetched
  let sortKey = "hostname";
  let sortDir = 1;
  let uptimeBase = null; // [seconds, Date.now() when read]
  const fresh = new Set();

  const $ = (id) => document.getElementById(id);

  function keyOf(r) {
    return [r.hostname, r.type, r.ip_address, r.owner || r.source].join("\u0000");
  }

  function setText(id, value) {
    const el = $(id);
    if (el) el.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  }

  function setPill(id, text, kind) {
    const el = $(id);
    if (!el) return;
    el.textContent = text;
    el.className = "pill" + (kind ? " pill-" + kind : "");
  }

  function formatDuration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    const d = Math.floor(seconds / 86400);
    const h = Math.floor((seconds % 86400) / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    if (d > 0) return d + "d " + h + "h " + m + "m";
    if (h > 0) return h + "h " + m + "m " + s + "s";
    if (m > 0) return m + "m " + s + "s";
    return s + "s";
  }

  // "udp 127.0.0.1:53, tcp 127.0.0.1:53" -> "127.0.0.1:53 (UDP, TCP)"
  function describeBind(dns) {
    if (!dns.bind) return dns.bind_address + ":" + dns.port;
    const parts = dns.bind.split(/,\s*/).map((p) => p.split(" "));
    const addrs = new Set(parts.map((p) => p[1]));
    if (addrs.size === 1 && parts.every((p) => p.length === 2))
      return parts[0][1] + " (" + parts.map((p) => p[0].toUpperCase()).join(", ") + ")";
    return dns.bind;
  }

  function formatTime(iso) {
    if (!iso) return null;
    const t = new Date(iso);
    return isNaN(t) ? iso : t.toLocaleString();
  }

  // --- theme toggle ----------------------------------------------------------
  function renderThemeButton() {
    const b = $("theme-toggle");
    const next = currentTheme() === "dark" ? "light" : "dark";
    b.textContent = next === "dark" ? "\u263e Dark" : "\u2600 Light";
    b.setAttribute("aria-label", "Switch to " + next + " theme");
    b.dataset.current = currentTheme();
  }

  function toggleTheme() {
    const next = currentTheme() === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    try {
      window.localStorage.setItem(THEME_KEY, next);
    } catch (e) {
      // private mode: the choice lasts for this page only
    }
    renderThemeButton();
  }

  // --- status ----------------------------------------------------------------
  function fillCounters(id, obj) {
    const ul = $(id);
    ul.replaceChildren();
    for (const [k, v] of Object.entries(obj || {})) {
      const li = document.createElement("li");
      li.append(k);
      const b = document.createElement("b");
      b.textContent = v;
      li.append(b);
      ul.append(li);
    }
  }

  function renderStatus(s) {
    document.title = (s.service || "Joyride DNS") + " · " + (s.node_id || "");
    setText("service-name", s.service);
    setText("node-id", s.node_id);
    setText("environment", s.environment);
    setText("version", s.version);
    uptimeBase = [Number(s.uptime) || 0, Date.now()];
    renderUptime();

    const dns = s.dns_server || {};
    setText("dns-bind", describeBind(dns));
    const http = s.http_server || {};
    setText("http-bind", http.host ? http.host + ":" + http.port : location.host);
    setText("record-count", dns.records);
    setText("store-version", dns.store_version);
    setText("queries-total", dns.queries || 0);
    setText("queries-udp", dns.queries_udp || 0);
    setText("queries-tcp", dns.queries_tcp || 0);
    fillCounters("queries-by-type", dns.queries_by_type);
    fillCounters("responses-by-rcode", dns.responses_by_rcode);

    const d = s.docker_monitor || {};
    if (!d.enabled) setPill("docker-state", "disabled", null);
    else if (d.connected) setPill("docker-state", "connected", "ok");
    else if (d.state === "connecting") setPill("docker-state", "connecting", "warn");
    else setPill("docker-state", d.state || "disconnected", "err");
    setText("docker-socket", d.socket);
    setText("docker-api", d.api_version);
    setText("docker-containers", d.enabled ? d.containers : null);
    setText("docker-hostip", [d.hostip, d.hostip6].filter(Boolean).join(", "));
    setText("docker-error", d.last_error);
    setText("docker-retry", formatTime(d.next_retry));

    const h = s.hosts_monitor || {};
    if (!h.enabled) setPill("hosts-state", "not configured", null);
    else if (!h.exists) setPill("hosts-state", "missing", "warn");
    else setPill("hosts-state", "watching", "ok");
    renderHostsWarnings(h);
    setText("hosts-dir", h.directory);
    setText("hosts-files", h.enabled ? h.files : null);
    setText("hosts-records", h.enabled ? h.records : null);
    setText("hosts-warnings", h.enabled ? h.warnings : null);
    setText("hosts-loaded", formatTime(h.last_load));

    renderForwarding(dns.forwarding || {});

    const e = s.etcd || {};
    if (!e.enabled) setPill("etcd-state", "disabled", null);
    else if (e.connected) setPill("etcd-state", "connected", "ok");
    else if (e.state === "connecting") setPill("etcd-state", "connecting", "warn");
    else setPill("etcd-state", (e.state || "disconnected") + " · serving last known", "err");
    setText("etcd-endpoint", e.endpoint);
    setText("etcd-prefix", e.prefix);
    setText("etcd-keys", e.enabled ? e.keys : null);
    setText("etcd-published", e.enabled ? e.published + (e.pending ? " (" + e.pending + " pending)" : "") : null);
    setText("etcd-revision", e.enabled ? e.revision : null);
    setText("etcd-error", e.last_error);
    setText("etcd-retry", formatTime(e.next_retry));

    const c = s.dns_sync_cluster || {};
    const members = Array.isArray(c.members) ? c.members : [];
    setPill("cluster-state", c.enabled ? members.length + " members" : "disabled", c.enabled ? "ok" : null);
    const empty = $("cluster-empty");
    const table = $("cluster-table");
    if (!c.enabled || members.length === 0) {
      empty.hidden = false;
      empty.textContent = c.enabled
        ? "No other members yet."
        : "Cluster sync is disabled on this node (set ENABLE_DNS_SYNC=true to join a cluster).";
      table.hidden = true;
    } else {
      empty.hidden = true;
      table.hidden = false;
      const body = $("cluster-body");
      body.replaceChildren();
      for (const m of members) {
        const tr = document.createElement("tr");
        if (m.self) tr.className = "self";
        for (const [label, v] of [
          ["Node", m.node_id],
          ["Address", m.address],
          ["State", m.state],
          ["Records", m.records],
          ["Last change", formatTime(m.last_change)],
        ]) {
          const td = document.createElement("td");
          td.dataset.label = label;
          td.textContent = v === undefined || v === null ? "—" : v;
          if (label === "Node" && m.self) {
            const mark = document.createElement("span");
            mark.className = "badge badge-self";
            mark.textContent = "this node";
            td.append(" ", mark);
          }
          tr.append(td);
        }
        body.append(tr);
      }
    }
    renderChart(dns.queries_per_second);
    setText("updated", new Date().toLocaleTimeString());
  }

  // The hosts directory's warnings: a button in place of the state pill that
  // opens a dialog listing them (file:line, why), kept current while open.
  function renderHostsWarnings(h) {
    const count = h.enabled ? Number(h.warnings) || 0 : 0;
    const list = Array.isArray(h.warning_list) ? h.warning_list : [];
    const button = $("hosts-warnings-button");
    const label = count + (count === 1 ? " warning" : " warnings");

    // The directory itself missing says so in the state pill; the button
    // then only adds the details.
    $("hosts-state").hidden = count > 0 && !!h.exists;
    button.hidden = count === 0;
    button.textContent = h.exists ? label : "details";
    button.setAttribute("aria-label", "Show the " + label + " of the hosts files");

    const items = list.map((w) => {
      const li = document.createElement("li");
      const where = document.createElement("code");
      where.className = "where";
      where.textContent = w.line ? w.file + ":" + w.line : w.file;
      const why = document.createElement("span");
      why.className = "why";
      why.textContent = w.message;
      li.append(where, why);
      return li;
    });
    $("hosts-warnings-list").replaceChildren(...items);
    $("hosts-warnings-summary").textContent =
      count === 0 ? "No warnings: every file loads cleanly."
      : count > list.length ? "The first " + list.length + " of " + count + " warnings, by file and line."
      : label + ", by file and line.";
  }

  function openHostsWarnings() {
    const dialog = $("hosts-warnings-dialog");
    if (dialog.open) return;
    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    $("hosts-warnings-close").focus();
    refreshStatus();
  }

  function closeHostsWarnings() {
    const dialog = $("hosts-warnings-dialog");
    if (typeof dialog.close === "function") dialog.close();
    else dialog.removeAttribute("open");
  }

  // Queries per second over the last minutes, as an inline SVG: one point per
  // second, scaled to the peak.
  function renderChart(series) {
    const values = Array.isArray(series) ? series.map((v) => Number(v) || 0) : [];
    const peak = values.reduce((a, b) => Math.max(a, b), 0);
    const w = 300, h = 60, n = Math.max(values.length, 2);
    const x = (i) => ((i + (n - values.length)) * w) / (n - 1);
    const y = (v) => h - 2 - (peak > 0 ? (v / peak) * (h - 4) : 0);
    let line = "";
    values.forEach((v, i) => {
      line += (i ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1);
    });
    $("qps-line").setAttribute("d", line);
    $("qps-area").setAttribute("d", values.length ? line + "L" + w + " " + h + "L" + x(0).toFixed(1) + " " + h + "Z" : "");
    setText("qps-now", values.length ? values[values.length - 1] : 0);
    setText("qps-peak", peak);
    const secs = values.length;
    setText("qps-window", secs >= 60 ? Math.round(secs / 60) + " min" : secs + " s");
  }

  function renderForwarding(f) {
    const ups = Array.isArray(f.upstreams) ? f.upstreams : [];
    const failing = ups.filter((u) => u.state === "failing").length;
    if (!f.enabled) setPill("forward-state", "off", null);
    else if (ups.length === 0) setPill("forward-state", "no upstreams", "err");
    else if (failing === ups.length) setPill("forward-state", "upstreams failing", "err");
    else if (failing > 0) setPill("forward-state", failing + " failing", "warn");
    else setPill("forward-state", ups.length + (ups.length === 1 ? " upstream" : " upstreams"), "ok");
    $("forward-empty").hidden = !!f.enabled;
    $("forward-details").hidden = !f.enabled;
    $("forward-table").hidden = !f.enabled || ups.length === 0;
    if (!f.enabled) return;

    const cache = f.cache || {};
    const lookups = (cache.hits || 0) + (cache.misses || 0);
    setText("forward-source", f.source);
    setText("forward-queries", (f.queries || 0) + " questions, " + (f.coalesced || 0) + " joined one in flight, " +
      (f.refused || 0) + " refused");
    setText("forward-cache", (cache.entries || 0) + " of " + (cache.size || 0) + " answers, " +
      (lookups ? Math.round((100 * (cache.hits || 0)) / lookups) : 0) + "% hits");
    setText("forward-servfail", f.servfail || 0);
    setText("forward-allow", f.allow_default ? "loopback and the host's subnets" : (f.allow || []).join(", "));

    const body = $("forward-body");
    body.replaceChildren();
    for (const u of ups) {
      const tr = document.createElement("tr");
      for (const [label, v] of [
        ["Upstream", u.address],
        ["State", u.state],
        ["Queries", u.queries],
        ["Failures", u.failures],
        ["Round trip", u.answers ? u.average_rtt_ms.toFixed(1) + " ms" : "—"],
      ]) {
        const td = document.createElement("td");
        td.dataset.label = label;
        td.textContent = v === undefined || v === null ? "—" : v;
        if (label === "State") td.className = u.state === "failing" ? "err" : "";
        tr.append(td);
      }
      body.append(tr);
    }
  }

  function renderUptime() {
    if (!uptimeBase) return;
    setText("uptime", formatDuration(uptimeBase[0] + (Date.now() - uptimeBase[1]) / 1000));
  }

  async function refreshStatus() {
    try {
      const r = await fetch("/status", { cache: "no-store" });
      if (r.ok) renderStatus(await r.json());
    } catch (e) {
      // the feed's state shows that the daemon is unreachable
    }
  }

  // --- records ---------------------------------------------------------------
  // The server pages, searches, filters and sorts (/dns/records?limit=&offset=
  // &q=&source=&sort=&order=): the page holds PAGE_SIZE rows whatever the
  // store holds, so it stays fast at 100,000 records.
  const PAGE_SIZE = 100;
  const SORT_PARAM = { hostname: "hostname", type: "type", ip_address: "value", ttl: "ttl", source: "source" };
  let offset = 0;
  let matched = 0;
  let total = 0;
  let reloadTimer = null;

  function recordsUrl() {
    const p = new URLSearchParams({
      limit: String(PAGE_SIZE),
      offset: String(offset),
      sort: SORT_PARAM[sortKey] || "hostname",
      order: sortDir > 0 ? "asc" : "desc",
    });
    const needle = $("search").value.trim();
    const kind = $("source-filter").value;
    if (needle) p.set("q", needle);
    if (kind) p.set("source", kind);
    return "/dns/records?" + p.toString();
  }

  // A record learned from a peer has the source "peer:NODE · ORIGIN", ORIGIN
  // being where the node itself has it ("docker:3f2a… (web-1)",
  // "hosts:/etc/joyride/hosts/lab"): the node stands out, the text stays
  // the server's.
  function renderSource(td, r) {
    const added = r.added ? "added " + formatTime(r.added) : "";
    const sep = " \u00b7 ";
    const cut = r.source.startsWith("peer:") ? r.source.indexOf(sep) : -1;
    if (cut < 0) {
      td.textContent = r.source;
      td.title = added;
      return;
    }
    const via = document.createElement("span");
    via.className = "via";
    via.textContent = r.source.slice(0, cut);
    const origin = document.createElement("span");
    origin.className = "origin";
    origin.textContent = r.source.slice(cut + sep.length);
    td.append(via, sep, origin);
    const node = via.textContent.slice("peer:".length);
    td.title = "learned from node " + node + ", which has it from " + origin.textContent + (added ? "; " + added : "");
  }

  function renderRecords(list) {
    const body = $("records-body");
    const rows = [];
    for (const r of list) {
      const tr = document.createElement("tr");
      const key = keyOf(r);
      tr.dataset.key = key;
      if (fresh.has(key)) tr.className = "fresh";

      const name = document.createElement("td");
      name.dataset.label = "Hostname";
      name.textContent = r.hostname;
      const type = document.createElement("td");
      type.dataset.label = "Type";
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = r.type;
      type.append(badge);
      const value = document.createElement("td");
      value.dataset.label = "Value";
      value.textContent = r.ip_address;
      const ttl = document.createElement("td");
      ttl.dataset.label = "TTL";
      ttl.textContent = r.ttl + "s";
      const src = document.createElement("td");
      src.dataset.label = "Source";
      src.className = "source";
      renderSource(src, r);
      tr.append(name, type, value, ttl, src);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    fresh.clear();
    const filtered = $("search").value.trim() !== "" || $("source-filter").value !== "";
    $("records-empty").hidden = list.length !== 0;
    $("records-empty").textContent = total === 0 ? "No records yet." : "No records match the search.";
    $("records-shown").textContent = filtered ? "(" + matched + " of " + total + ")" : "(" + total + ")";
    const pages = Math.max(1, Math.ceil(matched / PAGE_SIZE));
    const page = Math.floor(offset / PAGE_SIZE) + 1;
    $("pager").hidden = matched <= PAGE_SIZE;
    $("page-info").textContent =
      matched === 0 ? "" : (offset + 1) + "–" + (offset + list.length) + " of " + matched + " · page " + page + " of " + pages;
    $("page-prev").disabled = offset === 0;
    $("page-next").disabled = offset + PAGE_SIZE >= matched;
  }

  // Events only mark what is new and ask for the page again, at most a few
  // times a second: the server has the truth, in the order asked for.
  function applyEvent(e) {
    if (e.version <= recordsVersion) return;
    if (e.change === "added")
      fresh.add(keyOf({ hostname: e.hostname, type: e.type, ip_address: e.value, owner: e.owner, source: e.source }));
    scheduleReload();
    scheduleStatus();
  }

  // A change of records is often a reload of a hosts file: its counters and
  // warnings are worth showing before the next poll.
  let statusTimer = null;
  function scheduleStatus() {
    if (statusTimer) return;
    statusTimer = window.setTimeout(() => {
      statusTimer = null;
      refreshStatus();
    }, 500);
  }

  function scheduleReload(delay = 150) {
    if (reloadTimer) return;
    reloadTimer = window.setTimeout(() => {
      reloadTimer = null;
      loadRecords();
    }, delay);
  }

  function loadRecords() {
    if (loading) {
      scheduleReload();
      return loading;
    }
    const url = recordsUrl();
    loading = (async () => {
      try {
        const r = await fetch(url, { cache: "no-store" });
        if (r.status === 503) {
          scheduleReload(1000);
          return;
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        const doc = await r.json();
        total = Number(doc.total_records) || 0;
        matched = doc.matched_records === undefined ? total : Number(doc.matched_records) || 0;
        recordsVersion = Number(doc.version) || 0;
        if (offset > 0 && offset >= matched) {
          // the page went away (records removed): show the last one
          offset = Math.max(0, Math.floor((matched - 1) / PAGE_SIZE) * PAGE_SIZE);
          scheduleReload(0);
        }
        renderRecords(doc.records || []);
      } catch (err) {
        // keep what we have; the next hello or resync loads again
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  function restart() {
    offset = 0;
    loadRecords();
  }

  // --- live feed -------------------------------------------------------------
  function connect() {
    if (!window.EventSource) {
      setPill("live", "Polling", "warn");
      window.setInterval(loadRecords, STATUS_INTERVAL_MS);
      return;
    }
    const es = new EventSource("/api/events");
    es.addEventListener("open", () => setPill("live", "Live", "ok"));
    es.addEventListener("error", () => setPill("live", "Reconnecting…", "err"));
    // On every (re)connect: reload, since changes may have been missed.
    es.addEventListener("hello", () => {
      loadRecords();
      refreshStatus();
    });
    es.addEventListener("resync", () => loadRecords());
    es.addEventListener("record", (m) => {
      let e;
      try {
        e = JSON.parse(m.data);
      } catch (err) {
        return;
      }
      applyEvent(e);
    });
  }

  // --- wiring ----------------------------------------------------------------
  function setupSorting() {
    for (const th of document.querySelectorAll("#records-table th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => {
        const key = th.dataset.sort;
        sortDir = key === sortKey ? -sortDir : 1;
        sortKey = key;
        for (const other of document.querySelectorAll("#records-table th[data-sort]"))
          other.setAttribute("aria-sort", "none");
        th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
        restart();
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    renderThemeButton();
    $("theme-toggle").addEventListener("click", toggleTheme);
    if (window.matchMedia)
      window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", renderThemeButton);
    let searchTimer = null;
    $("search").addEventListener("input", () => {
      window.clearTimeout(searchTimer);
      searchTimer = window.setTimeout(restart, 200);
    });
    $("source-filter").addEventListener("change", restart);
    $("hosts-warnings-button").addEventListener("click", openHostsWarnings);
    $("hosts-warnings-close").addEventListener("click", closeHostsWarnings);
    // Back to the button that opened it (Escape closes a modal dialog too).
    $("hosts-warnings-dialog").addEventListener("close", () => {
      const b = $("hosts-warnings-button");
      if (!b.hidden) b.focus();
    });
    // A click on the backdrop (outside the box) closes it.
    $("hosts-warnings-dialog").addEventListener("click", (e) => {
      if (e.target === e.currentTarget) {
        const r = e.currentTarget.getBoundingClientRect();
        if (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom) closeHostsWarnings();
      }
    });
    $("page-prev").addEventListener("click", () => {
      offset = Math.max(0, offset - PAGE_SIZE);
      loadRecords();
    });
    $("page-next").addEventListener("click", () => {
      if (offset + PAGE_SIZE < matched) offset += PAGE_SIZE;
      loadRecords();
    });
    setupSorting();
    refreshStatus();
    loadRecords();
    connect();
    window.setInterval(refreshStatus, STATUS_INTERVAL_MS);
    window.setInterval(renderUptime, 1000);
  });
})();
