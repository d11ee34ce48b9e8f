// SPDX-License-Identifier: MIT
// The dashboard of a clustered node, in headless Chromium: the cluster table
// lists both members, marks this node, shows each member's record count and a
// real "Last change" time (not 1970), the record learned from the peer shows
// the peer and the peer's own source ("peer:node-b · hosts:/…/b.hosts") and is
// found by the source filter and by the node's name, and the
// queries-per-second chart draws the queries the node answered. Run by run.sh
// with two nodes on loopback.
"use strict";

const fs = require("fs");
const path = require("path");
const { launch } = require("./launch");

const URL = process.env.JOYRIDE_URL;
const ARTIFACTS = process.env.JOYRIDE_ARTIFACTS;
const PROFILE = process.env.JOYRIDE_PROFILE;
const SELF = process.env.JOYRIDE_SELF;
const PEER = process.env.JOYRIDE_PEER;
// Where each node has its own record: "hosts:FILE:LINE" here, "hosts:FILE" as
// the peer's source (lines are not gossiped).
const SELF_SOURCE = process.env.JOYRIDE_SELF_SOURCE;
const PEER_SOURCE = process.env.JOYRIDE_PEER_SOURCE;

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function main() {
  const context = await launch(PROFILE);
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  let failed = false;
  try {
    await page.goto(URL, { waitUntil: "load" });
    await page.waitForFunction(() => document.querySelectorAll("#cluster-body tr").length >= 2, null, { timeout: 15000 });
    const rows = await page.$$eval("#cluster-body tr", (trs) =>
      trs.map((tr) => ({
        self: tr.classList.contains("self"),
        cells: Object.fromEntries([...tr.children].map((td) => [td.dataset.label, td.textContent])),
      }))
    );
    const self = rows.find((r) => r.cells.Node.startsWith(SELF));
    const peer = rows.find((r) => r.cells.Node.startsWith(PEER));
    check(self && peer, "cluster rows: " + JSON.stringify(rows));
    check(self.self && /this node/.test(self.cells.Node), "this node is not marked: " + JSON.stringify(self));
    check(!peer.self && !/this node/.test(peer.cells.Node), "the peer is marked as this node: " + JSON.stringify(peer));
    check(peer.cells.Records === "1" && self.cells.Records === "1", "record counts: " + JSON.stringify(rows));
    for (const r of rows) {
      const shown = r.cells["Last change"];
      check(!/1970/.test(shown), "a 1970 date in Last change: " + shown);
      const t = new Date(shown);
      check(!isNaN(t) && Math.abs(Date.now() - t.getTime()) < 3600 * 1000, "Last change is not about now: " + shown);
    }
    console.log("ok - the clustered dashboard lists both members, marks this node, counts records, shows real times");

    // The records table: each row's source as shown.
    const shownRecords = () =>
      page.$$eval("#records-body tr", (trs) =>
        trs.map((tr) => {
          const src = tr.querySelector('td[data-label="Source"]');
          const via = src.querySelector(".via");
          return {
            hostname: tr.querySelector('td[data-label="Hostname"]').textContent,
            source: src.textContent,
            via: via ? via.textContent : null,
            title: src.title,
          };
        })
      );
    await page.waitForFunction(() => document.querySelectorAll("#records-body tr").length >= 2, null, { timeout: 15000 });
    let records = await shownRecords();
    const learned = records.find((r) => r.hostname === "b.cluster.test");
    const own = records.find((r) => r.hostname === "a.cluster.test");
    check(learned && own, "record rows: " + JSON.stringify(records));
    check(
      learned.source === `peer:${PEER} \u00b7 ${PEER_SOURCE}`,
      `the peer's record shows "${learned.source}", expected "peer:${PEER} · ${PEER_SOURCE}"`
    );
    check(learned.via === "peer:" + PEER, "the peer is not marked out in the source: " + JSON.stringify(learned));
    check(learned.title.includes(PEER_SOURCE), "the source's tooltip does not say where the peer has it: " + learned.title);
    check(own.source === SELF_SOURCE && own.via === null, "this node's record shows " + JSON.stringify(own));
    console.log(`ok - the record learned from ${PEER} shows "${learned.source}"`);

    // Filtering on the server still finds it: the source filter "Peers" ...
    const onlyLearned = () =>
      page.waitForFunction(
        () => {
          const names = [...document.querySelectorAll('#records-body td[data-label="Hostname"]')].map((td) => td.textContent);
          return names.length === 1 && names[0] === "b.cluster.test";
        },
        null,
        { timeout: 10000 }
      );
    await page.selectOption("#source-filter", "peer");
    await onlyLearned().catch(async () => {
      throw new Error("the Peers filter shows " + JSON.stringify(await shownRecords()));
    });
    // ... and a search for the node's name.
    await page.selectOption("#source-filter", "");
    await page.fill("#search", PEER);
    await onlyLearned().catch(async () => {
      throw new Error(`a search for ${PEER} shows ` + JSON.stringify(await shownRecords()));
    });
    records = await shownRecords();
    check(records[0].source === `peer:${PEER} \u00b7 ${PEER_SOURCE}`, "filtered row: " + JSON.stringify(records));
    await page.fill("#search", "");
    console.log(`ok - the Peers filter and a search for "${PEER}" find it`);

    // The chart: the queries run.sh sent show as a non-empty line and a peak.
    // A daemon a second old has one sample, which draws no line yet: wait
    // (the page refreshes its status) for a peak and a second sample.
    await page
      .waitForFunction(
        () =>
          Number(document.getElementById("qps-peak").textContent) > 0 &&
          (document.getElementById("qps-line").getAttribute("d") || "").includes("L"),
        null,
        { timeout: 15000 }
      )
      .catch(() => {});
    const peakShown = await page.textContent("#qps-peak");
    check(Number(peakShown) > 0, "the chart's peak is not above 0: " + peakShown);
    const d = await page.getAttribute("#qps-line", "d");
    check(d && d.startsWith("M") && d.split("L").length >= 2, "the chart line is empty: " + d);
    console.log("ok - the queries-per-second chart draws the queries answered");
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-cluster.png"), fullPage: true });
    check(problems.length === 0, "page errors:\n  " + problems.join("\n  "));
  } catch (e) {
    failed = true;
    console.log("FAIL - " + e.message);
    try {
      await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-cluster-failure.png"), fullPage: true });
    } catch (_) {
      // the browser may be gone
    }
  } finally {
    await context.close();
    fs.rmSync(PROFILE, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log("FAIL - " + (e && e.stack ? e.stack : e));
  process.exit(1);
});
