// SPDX-License-Identifier: MIT
// The dashboard as a person sees it, in headless Chromium: it loads without
// console errors, shows the hosts file's records, adds and removes rows live
// when the hosts directory changes, filters and sorts, lists a hosts file's
// warnings behind the pill that counts them (by mouse and keyboard, live),
// follows the system colour scheme, toggles and remembers the theme, keeps
// readable contrast, fits a phone. Run by run.sh, which starts the daemon and sets the env.
"use strict";

const fs = require("fs");
const path = require("path");
const { chromium } = require("playwright-core");

const URL = process.env.JOYRIDE_URL;
const HOSTS = process.env.JOYRIDE_HOSTS_DIR;
const ARTIFACTS = process.env.JOYRIDE_ARTIFACTS;
const PROFILE = process.env.JOYRIDE_PROFILE;

let failures = 0;
function ok(what) {
  console.log("ok - " + what);
}
function check(cond, what) {
  if (!cond) throw new Error(what);
}

// WCAG relative luminance and contrast ratio of two "rgb(...)" colours.
function luminance(rgb) {
  const [r, g, b] = rgb.match(/[\d.]+/g).slice(0, 3).map((v) => {
    v = Number(v) / 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}
function contrast(a, b) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

// The rows once `cond` holds for them (the server searches, sorts and pages,
// so the table changes a moment after the input does), or the last ones seen.
async function rowsWhen(page, cond, timeout = 5000) {
  const deadline = Date.now() + timeout;
  let names = await rowNames(page);
  while (!cond(names) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    names = await rowNames(page);
  }
  return names;
}

async function rowNames(page) {
  return page.$$eval("#records-body tr td:first-child", (tds) => tds.map((td) => td.textContent));
}

async function waitForRow(page, name, timeout = 5000) {
  await page.waitForFunction(
    (n) => Array.from(document.querySelectorAll("#records-body tr td:first-child")).some((td) => td.textContent === n),
    name,
    { timeout }
  );
}

async function colours(page) {
  return page.evaluate(() => {
    const body = getComputedStyle(document.body);
    const card = document.querySelector(".card");
    const muted = document.querySelector("dt");
    return {
      theme: document.documentElement.dataset.theme || null,
      bg: body.backgroundColor,
      text: body.color,
      surface: getComputedStyle(card).backgroundColor,
      muted: getComputedStyle(muted).color,
    };
  });
}

async function checkContrast(page, label) {
  const c = await colours(page);
  const main = contrast(c.text, c.bg);
  const muted = contrast(c.muted, c.surface);
  check(main >= 7, `${label}: body text contrast ${main.toFixed(2)} < 7`);
  check(muted >= 4.5, `${label}: muted text contrast ${muted.toFixed(2)} < 4.5`);
  return c;
}

async function main() {
  fs.rmSync(PROFILE, { recursive: true, force: true });
  const context = await chromium.launchPersistentContext(PROFILE, {
    executablePath: process.env.JOYRIDE_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-default-apps",
    ],
    viewport: { width: 1280, height: 900 },
    colorScheme: "light",
    timeout: 30000,
  });
  const problems = [];
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("requestfailed", (r) => {
    // A reload cuts the feed and any fetch still in flight (ERR_ABORTED):
    // that is the browser navigating away, not a failure of the page.
    const err = r.failure().errorText;
    if (!r.url().endsWith("/api/events") && err !== "net::ERR_ABORTED")
      problems.push("request failed: " + r.url() + " " + err);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
  });

  try {
    // --- loads, shows the hosts file -----------------------------------------
    await page.goto(URL, { waitUntil: "load" });
    await waitForRow(page, "web.browser.test");
    const names = await rowNames(page);
    check(names.includes("six.browser.test") && names.length === 4, "expected the 4 records, got " + names);
    const webRow = await page.$$eval("#records-body tr", (trs) =>
      trs
        .map((tr) => Array.from(tr.children).map((td) => td.textContent))
        .find((cells) => cells[0] === "web.browser.test")
    );
    check(webRow[1] === "A" && webRow[2] === "10.30.0.1" && webRow[3] === "30s", "web row: " + webRow);
    check(webRow[4].startsWith("hosts:" + HOSTS + "/base.hosts:1"), "web row source: " + webRow[4]);
    await page.waitForFunction(() => document.getElementById("live").textContent === "Live", null, { timeout: 5000 });
    await page.waitForFunction(() => document.getElementById("version").textContent !== "…", null, { timeout: 5000 });
    const cluster = await page.textContent("#cluster-empty");
    check(/disabled/i.test(cluster), "cluster empty-state text: " + cluster);
    const docker = await page.textContent("#docker-state");
    check(docker === "disabled", "docker state pill: " + docker);
    // etcd points at a port where nothing listens: out of reach, names still served.
    await page.waitForFunction(() => /^disconnected/.test(document.getElementById("etcd-state").textContent),
                               null, { timeout: 10000 });
    const etcdError = await page.textContent("#etcd-error");
    check(/refused|connect/i.test(etcdError), "etcd last error: " + etcdError);
    ok("the page loads and shows the hosts file's records, service, Docker, cluster and etcd state");

    // --- forwarding: one upstream, where nothing listens ---------------------
    await page.waitForFunction(() => document.getElementById("forward-state").textContent !== "…", null, { timeout: 5000 });
    const fwdState = await page.textContent("#forward-state");
    check(fwdState === "upstreams failing", "forwarding pill: " + fwdState);
    const fwdRow = await page.$$eval("#forward-body tr", (trs) => trs.map((tr) => Array.from(tr.children).map((td) => td.textContent)));
    check(fwdRow.length === 1 && fwdRow[0][0] === process.env.JOYRIDE_FORWARD_UPSTREAM && fwdRow[0][1] === "failing",
          "forwarding upstream rows: " + JSON.stringify(fwdRow));
    check((await page.textContent("#forward-source")) === "configured", "forwarding source");
    ok("the forwarding card shows the upstream, failing");

    // --- live: a new file makes a row appear, without a reload ---------------
    await page.evaluate(() => (window.__notReloaded = true));
    fs.writeFileSync(path.join(HOSTS, "live.hosts"), "10.30.0.9 live.browser.test\n");
    await waitForRow(page, "live.browser.test", 5000);
    check(await page.evaluate(() => window.__notReloaded === true), "the page reloaded");
    ok("editing the hosts directory adds a row live, without a reload");

    // --- search -------------------------------------------------------------
    await page.fill("#search", "live.browser");
    let shown = await rowsWhen(page, (n) => n.length === 1);
    check(shown.length === 1 && shown[0] === "live.browser.test", "search 'live.browser' shows " + shown);
    await page.fill("#search", "10.30.0.1");
    shown = await rowsWhen(page, (n) => n.length === 2);
    check(shown.length === 2 && shown.every((n) => n === "web.browser.test" || n === "db.browser.test"), "value search: " + shown);
    await page.fill("#search", "no-such-thing");
    check((await rowsWhen(page, (n) => n.length === 0)).length === 0, "a search matching nothing shows rows");
    check(await page.isVisible("#records-empty"), "no empty-search message");
    await page.fill("#search", "");
    check((await rowsWhen(page, (n) => n.length === 5)).length === 5, "clearing the search does not bring every row back");
    ok("search filters the rows (on the server)");

    // --- sort ---------------------------------------------------------------
    const asc = await rowNames(page);
    check(JSON.stringify(asc) === JSON.stringify([...asc].sort()), "rows not sorted by name: " + asc);
    await page.click('th[data-sort="hostname"] button');
    const desc = await rowsWhen(page, (n) => JSON.stringify(n) === JSON.stringify([...asc].reverse()));
    check(JSON.stringify(desc) === JSON.stringify([...asc].reverse()), "second click does not reverse: " + desc);
    check((await page.getAttribute('th[data-sort="hostname"]', "aria-sort")) === "descending", "aria-sort not updated");
    await page.click('th[data-sort="ttl"] button');
    await page.click('th[data-sort="hostname"] button');
    await rowsWhen(page, (n) => JSON.stringify(n) === JSON.stringify(asc));
    ok("clicking a column header sorts, and again reverses");

    // --- removal is live too ----------------------------------------------------
    fs.unlinkSync(path.join(HOSTS, "live.hosts"));
    await page.waitForFunction(
      () => !Array.from(document.querySelectorAll("#records-body td:first-child")).some((td) => td.textContent === "live.browser.test"),
      null,
      { timeout: 5000 }
    );
    ok("removing the file removes its row live");

    // --- hosts warnings: the pill opens the list, which follows the file ------
    const badFile = path.join(HOSTS, "bad.hosts");
    fs.writeFileSync(badFile, "# a bad address\n10.30.0.300 broken.browser.test\n");
    // /status is polled every 5 s.
    await page.waitForSelector("#hosts-warnings-button:not([hidden])", { timeout: 9000 });
    const pillText = await page.textContent("#hosts-warnings-button");
    check(pillText === "1 warning", "warnings pill: " + pillText);
    check(await page.isHidden("#hosts-state"), "the state pill still shows beside the warnings pill");
    check(!(await page.evaluate(() => document.getElementById("hosts-warnings-dialog").open)), "the dialog is open before a click");
    await page.click("#hosts-warnings-button");
    await page.waitForSelector("#hosts-warnings-dialog[open]", { timeout: 2000 });
    const listed = await page.$$eval("#hosts-warnings-list li", (lis) =>
      lis.map((li) => [li.querySelector(".where").textContent, li.querySelector(".why").textContent]));
    check(JSON.stringify(listed) === JSON.stringify([[badFile + ":2", "not an IP address: '10.30.0.300'"]]),
          "the dialog lists: " + JSON.stringify(listed));
    check(await page.evaluate(() => document.getElementById("hosts-warnings-dialog").contains(document.activeElement)),
          "focus is not in the dialog once it opens");
    ok("a bad line shows a '1 warning' pill; clicking it lists the file, line and reason");

    // Readable in both themes; screenshots of each.
    async function dialogContrast(label) {
      const c = await page.evaluate(() => {
        const d = document.getElementById("hosts-warnings-dialog");
        return {
          bg: getComputedStyle(d).backgroundColor,
          why: getComputedStyle(d.querySelector(".why")).color,
          where: getComputedStyle(d.querySelector(".where")).color,
        };
      });
      check(contrast(c.why, c.bg) >= 7, `${label}: warning text contrast ${contrast(c.why, c.bg).toFixed(2)}`);
      check(contrast(c.where, c.bg) >= 4.5, `${label}: file:line contrast ${contrast(c.where, c.bg).toFixed(2)}`);
      return c;
    }
    const dLight = await dialogContrast("light dialog");
    check(luminance(dLight.bg) > 0.5, "the dialog is not light in the light theme: " + dLight.bg);
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-warnings-light.png") });

    // Keyboard: Escape closes and gives the focus back; Enter on the pill opens.
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => !document.getElementById("hosts-warnings-dialog").open, null, { timeout: 2000 });
    check(await page.evaluate(() => document.activeElement === document.getElementById("hosts-warnings-button")),
          "focus does not return to the pill after Escape");
    await page.click("#theme-toggle");
    await page.focus("#hosts-warnings-button");
    await page.keyboard.press("Enter");
    await page.waitForSelector("#hosts-warnings-dialog[open]", { timeout: 2000 });
    const dDark = await dialogContrast("dark dialog");
    check(luminance(dDark.bg) < 0.05, "the dialog is not dark in the dark theme: " + dDark.bg);
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-warnings-dark.png") });
    // The page behind a modal dialog is inert: Tab reaches nothing there
    // (past the dialog's last control it goes to the browser, not the page).
    for (let i = 0; i < 3; i++) {
      await page.keyboard.press("Tab");
      const where = await page.evaluate(() => {
        const a = document.activeElement;
        return !a || a === document.body || document.getElementById("hosts-warnings-dialog").contains(a) ? null : a.outerHTML.slice(0, 80);
      });
      check(where === null, "Tab reaches the page behind the dialog: " + where);
    }
    await page.click("#hosts-warnings-close");
    await page.waitForFunction(() => !document.getElementById("hosts-warnings-dialog").open, null, { timeout: 2000 });
    ok("keyboard: Enter opens, Escape closes and returns the focus, Tab stays off the page behind; readable in light and dark");

    // Phone width: the dialog fits the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click("#hosts-warnings-button");
    await page.waitForSelector("#hosts-warnings-dialog[open]", { timeout: 2000 });
    const fit = await page.evaluate(() => {
      const d = document.getElementById("hosts-warnings-dialog");
      const r = d.getBoundingClientRect();
      return { left: r.left, right: r.right, width: window.innerWidth, scroll: d.scrollWidth - d.clientWidth };
    });
    check(fit.left >= 0 && fit.right <= fit.width && fit.scroll <= 1, "the dialog does not fit a phone: " + JSON.stringify(fit));
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-warnings-phone.png") });
    ok("the warnings dialog fits a phone screen");

    // Fixed: the list empties while open, the pill goes back to "watching".
    fs.writeFileSync(badFile, "# a bad address, fixed\n10.30.0.30 broken.browser.test\n");
    await page.waitForFunction(() => document.querySelectorAll("#hosts-warnings-list li").length === 0, null, { timeout: 9000 });
    check(/No warnings/.test(await page.textContent("#hosts-warnings-summary")), "the open dialog does not say the warnings are gone");
    await page.click("#hosts-warnings-close");
    check(await page.isHidden("#hosts-warnings-button"), "the warnings pill stays after the fix");
    check((await page.textContent("#hosts-state")) === "watching" && (await page.isVisible("#hosts-state")),
          "the hosts pill does not say watching after the fix");
    fs.unlinkSync(badFile);
    await page.setViewportSize({ width: 1280, height: 900 });
    // Back to no stored theme, as the theme checks below expect.
    await page.evaluate(() => localStorage.clear());
    await page.reload({ waitUntil: "load" });
    await waitForRow(page, "web.browser.test");
    await page.waitForFunction(() => !document.querySelector("#records-body td:first-child") ||
      !Array.from(document.querySelectorAll("#records-body td:first-child")).some((td) => td.textContent === "broken.browser.test"),
      null, { timeout: 5000 });
    ok("fixing the file clears the list and the pill, live");

    // --- theme ----------------------------------------------------------------
    const light = await checkContrast(page, "light");
    check(light.theme === null && luminance(light.bg) > 0.5, "does not start light with a light system scheme: " + JSON.stringify(light));
    await page.waitForTimeout(300);   // let the fresh-row highlight fade in the picture
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-light.png"), fullPage: true });

    await page.click("#theme-toggle");
    let dark = await checkContrast(page, "dark (toggled)");
    check(dark.theme === "dark" && luminance(dark.bg) < 0.05, "the toggle did not switch to dark: " + JSON.stringify(dark));
    await page.reload({ waitUntil: "load" });
    await waitForRow(page, "web.browser.test");
    dark = await colours(page);
    check(dark.theme === "dark" && luminance(dark.bg) < 0.05, "dark theme not kept across a reload: " + JSON.stringify(dark));
    await page.waitForFunction(() => document.getElementById("live").textContent === "Live", null, { timeout: 5000 });
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-dark.png"), fullPage: true });
    await page.click("#theme-toggle");
    await page.reload({ waitUntil: "load" });
    const back = await colours(page);
    check(back.theme === "light" && luminance(back.bg) > 0.5, "light choice not kept across a reload: " + JSON.stringify(back));
    ok("the theme toggle switches and persists across reloads; contrast is readable in both");

    // With no stored choice, the system's dark scheme is followed.
    await page.evaluate(() => localStorage.clear());
    await page.emulateMedia({ colorScheme: "dark" });
    await page.reload({ waitUntil: "load" });
    const sys = await checkContrast(page, "dark (system)");
    check(sys.theme === null && luminance(sys.bg) < 0.05, "prefers-color-scheme: dark not followed: " + JSON.stringify(sys));
    ok("follows prefers-color-scheme when nothing is stored");

    // --- phone width --------------------------------------------------------------
    await page.emulateMedia({ colorScheme: "light" });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload({ waitUntil: "load" });
    await waitForRow(page, "web.browser.test");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `the page is ${overflow}px wider than a phone screen`);
    const stacked = await page.$eval("#records-body td", (td) => getComputedStyle(td).display);
    check(stacked !== "table-cell", "the records table does not stack at phone width");
    const order = await page.evaluate(() => [
      document.querySelector("section.records").getBoundingClientRect().top,
      document.querySelector("section.cards").getBoundingClientRect().top,
    ]);
    check(order[0] < order[1], "the records do not come first on a phone: " + order);
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-phone.png"), fullPage: true });
    ok("usable at phone width: records first, no horizontal scroll, rows stacked");

    check(problems.length === 0, "console errors or failed requests:\n  " + problems.join("\n  "));
    ok("no console errors, no failed requests");
  } catch (e) {
    failures++;
    console.log("FAIL - " + e.message);
    try {
      await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-failure.png"), fullPage: true });
    } catch (_) {
      // the browser may be gone
    }
    if (problems.length) console.log("browser problems:\n  " + problems.join("\n  "));
  } finally {
    await context.close();
    fs.rmSync(PROFILE, { recursive: true, force: true });
  }
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.log("FAIL - " + (e && e.stack ? e.stack : e));
  process.exit(1);
});
