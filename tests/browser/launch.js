// SPDX-License-Identifier: MIT
// Headless Chromium as every browser test here starts it: Debian's chromium,
// a fresh profile, and the flags that keep it off the (closed) network.
"use strict";

const fs = require("fs");
const { chromium } = require("playwright-core");

async function launch(profile, options = {}) {
  fs.rmSync(profile, { recursive: true, force: true });
  return chromium.launchPersistentContext(profile, {
    executablePath: process.env.JOYRIDE_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run", "--disable-default-apps"],
    viewport: { width: 1280, height: 900 },
    timeout: 30000,
    ...options,
  });
}

module.exports = { launch };
