// Playwright driving Debian's Chromium for the natterjack integration tests.
//
//   [BROWSER_CHROMIUM=/usr/bin/chromium] [BROWSER_SPKI_PINS=pin,pin] node driver.mjs
//
// Launches Chromium once at start (with the pins of BROWSER_SPKI_PINS, if any), prints one
// line `{"ready":true,"chromium":"<version>"}` on stdout, then reads commands as JSON lines
// on stdin and answers each with one JSON line on stdout, several at once. Exits when stdin
// closes (after answering what still runs, 30 s at most), so it dies with the test process
// that holds the pipe, and Chromium, whose DevTools pipe is ours, dies with it.
//
// A command:
//
//   {"id": 1, "scenario": "console_walk" | "/abs/path.mjs", "params": {...},
//    "pins": ["<base64 SHA-256 of a SubjectPublicKeyInfo>", ...],
//    "shotDir": "/abs/dir", "timeoutMs": 90000}
//
// runs the scenario (an ES module whose default export is an async function taking
// `{page, context, params, shot, expectConsoleError, note}`; a bare name is a file of
// scenarios/) in a new browser context, so with cookies of its own. `await shot(name)`
// writes a full-page PNG of the page into shotDir (`{fullPage: false}`: the viewport only,
// for pages too long to render whole) and returns its path. Its answer:
//
//   {"id": 1, "ok": true|false, "error": "message and stack" | null, "value": <what the
//    scenario returned>, "consoleErrors": [...], "expectedConsoleErrors": [...],
//    "cspViolations": [...], "failedRequests": [{"method","url","failure"}],
//    "shots": ["/abs/dir/01-name.png"], "notes": [...], "chromium": "<version>"}
//
// consoleErrors are the page's console messages of type error and its uncaught exceptions
// (`pageerror`); Chromium reports a Content Security Policy violation as a console error
// ("Refused to ..." or "... violates the following Content Security Policy directive ..."),
// so those are also listed in cspViolations. A scenario that provokes an error on purpose
// (a 401 page makes Chromium log "Failed to load resource") names it with
// expectConsoleError(regex): it is then listed in expectedConsoleErrors instead (a CSP
// violation stays in cspViolations all the same). So is the failure of the browser's own
// request for /favicon.ico, which no page asks for.
//
// TLS: Chromium trusts no development CA. It accepts a certificate whose chain holds a key
// in --ignore-certificate-errors-spki-list, and nothing else: never ignoreHTTPSErrors or
// --ignore-certificate-errors. The list is fixed when Chromium starts, and every test server
// has a key of its own, so a browser is launched per distinct pin list (the Rust side pins
// the servers of one test; about a second each); one no longer in use is closed as soon as
// another list is asked for, so one Chromium runs at a time, or a few while tests with
// different servers run at once.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SCENARIOS = path.join(HERE, 'scenarios');
const EXECUTABLE = process.env.BROWSER_CHROMIUM || '/usr/bin/chromium';
const LAUNCH_TIMEOUT_MS = 60_000;
const DEFAULT_SCENARIO_TIMEOUT_MS = 90_000;
// Every action and navigation of a scenario: long enough for a debug build on two busy cores.
const ACTION_TIMEOUT_MS = 20_000;
// How long the scenarios still running when stdin closes may take to finish.
const CLOSE_GRACE_MS = 30_000;
// As run here: headless, as root, on a machine whose only network is loopback (without the
// background-networking flags Chromium keeps trying Google's hosts).
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];
// How Chromium words a Content Security Policy violation on the console: "Refused to load
// the stylesheet ... because it violates the following Content Security Policy directive",
// and in newer builds (156 here) also "Applying inline style violates the following
// Content Security Policy directive ...".
const CSP_VIOLATION = /^Refused to|violates the following Content Security Policy/;
// A SPKI pin: base64 of a SHA-256 digest (32 bytes: 43 characters and one `=`).
const PIN = /^[A-Za-z0-9+/]{43}=$/;

// Protocol lines are the only thing on stdout: whatever a scenario or a library logs goes
// to stderr.
const answer = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
console.log = console.error;
console.info = console.error;

/** The pin list's key: sorted, without repeats, checked so that no flag can be smuggled in. */
function pinKey(pins) {
  if (!Array.isArray(pins)) throw new Error('pins must be an array of strings');
  for (const pin of pins) {
    if (typeof pin !== 'string' || !PIN.test(pin)) {
      throw new Error(`not a base64 SHA-256 SPKI pin: ${JSON.stringify(pin)}`);
    }
  }
  return [...new Set(pins)].sort().join(',');
}

async function launch(key) {
  const args = [...FLAGS];
  if (key) args.push(`--ignore-certificate-errors-spki-list=${key}`);
  // Playwright gives every launch a fresh empty --user-data-dir, which Chromium requires
  // before it honours the SPKI list.
  return chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    chromiumSandbox: false,
    args,
    timeout: LAUNCH_TIMEOUT_MS,
  });
}

// key -> { browser: Promise<Browser>, active: number of scenarios using it }
const browsers = new Map();
let latestKey = '';

function retire(key, entry) {
  if (browsers.get(key) === entry) browsers.delete(key);
  entry.browser.then((b) => b.close()).catch(() => {});
}

/** A browser launched with exactly `pins`, and the function that hands it back. */
async function acquire(pins) {
  const key = pinKey(pins);
  latestKey = key;
  for (const [k, entry] of browsers) {
    if (k !== key && entry.active === 0) retire(k, entry);
  }
  let entry = browsers.get(key);
  if (!entry) {
    entry = { browser: launch(key), active: 0 };
    browsers.set(key, entry);
    const launched = entry;
    launched.browser.then(
      (b) => b.on('disconnected', () => {
        if (browsers.get(key) === launched) browsers.delete(key);
      }),
      () => {
        if (browsers.get(key) === launched) browsers.delete(key);
      },
    );
  }
  entry.active += 1;
  const held = entry;
  const release = () => {
    held.active -= 1;
    if (held.active === 0 && key !== latestKey) retire(key, held);
  };
  try {
    return { browser: await held.browser, release };
  } catch (e) {
    release();
    throw new Error(`launching ${EXECUTABLE}: ${e.message}`);
  }
}

/**
 * Whether a console message is about `/favicon.ico`: Chromium asks every server for it on
 * its own, a moment after a page loads (or not, if the page is gone by then), and logs the
 * 404 as the page's error. Not the page's doing, and it would make reports flaky.
 */
function isFavicon(url) {
  try {
    return new URL(url).pathname === '/favicon.ico';
  } catch {
    return false;
  }
}

function scenarioFile(name) {
  if (typeof name !== 'string' || !name) throw new Error('scenario must be a non-empty string');
  if (path.isAbsolute(name)) return name;
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`not a scenario name: ${name}`);
  return path.join(SCENARIOS, `${name}.mjs`);
}

function describe(error) {
  if (error instanceof Error) return error.stack || `${error.name}: ${error.message}`;
  return String(error);
}

async function run(command) {
  const report = {
    id: command.id,
    ok: false,
    error: null,
    value: null,
    consoleErrors: [],
    expectedConsoleErrors: [],
    cspViolations: [],
    failedRequests: [],
    shots: [],
    notes: [],
    chromium: null,
  };
  let held = null;
  let context = null;
  let page = null;
  let timer = null;
  try {
    const file = scenarioFile(command.scenario);
    const scenario = (await import(pathToFileURL(file).href)).default;
    if (typeof scenario !== 'function') throw new Error(`${file} has no default export function`);
    const shotDir = command.shotDir;
    if (typeof shotDir !== 'string' || !path.isAbsolute(shotDir)) {
      throw new Error('shotDir must be an absolute path');
    }
    fs.mkdirSync(shotDir, { recursive: true });

    held = await acquire(command.pins ?? []);
    report.chromium = held.browser.version();
    context = await held.browser.newContext({ viewport: { width: 1280, height: 800 } });
    context.setDefaultTimeout(ACTION_TIMEOUT_MS);
    context.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS);

    const expected = [];
    const consoleError = (text, url = '') => {
      if (CSP_VIOLATION.test(text)) report.cspViolations.push(text);
      if (expected.some((re) => re.test(text)) || isFavicon(url)) {
        report.expectedConsoleErrors.push(text);
      } else {
        report.consoleErrors.push(text);
      }
    };
    const watch = (p) => {
      p.on('console', (message) => {
        if (message.type() !== 'error') return;
        const { url, lineNumber } = message.location();
        consoleError(url ? `${message.text()} (${url}:${lineNumber})` : message.text(), url);
      });
      p.on('pageerror', (error) => consoleError(`uncaught ${describe(error)}`));
    };
    context.on('page', watch);
    context.on('requestfailed', (request) => {
      report.failedRequests.push({
        method: request.method(),
        url: request.url(),
        failure: request.failure()?.errorText ?? 'unknown',
      });
    });
    page = await context.newPage();

    const shot = async (name, { fullPage = true } = {}) => {
      const safe = String(name).replace(/[^A-Za-z0-9_.-]+/g, '-');
      const n = String(report.shots.length + 1).padStart(2, '0');
      const file = path.join(shotDir, `${n}-${safe}.png`);
      await page.screenshot({ path: file, fullPage });
      report.shots.push(file);
      return file;
    };
    const expectConsoleError = (pattern) => expected.push(new RegExp(pattern));
    const note = (text) => report.notes.push(String(text));

    const limit = Number(command.timeoutMs) || DEFAULT_SCENARIO_TIMEOUT_MS;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`scenario timed out after ${limit} ms`)), limit);
    });
    const params = command.params ?? {};
    report.value =
      (await Promise.race([
        scenario({ page, context, params, shot, expectConsoleError, note }),
        timeout,
      ])) ?? null;
    report.ok = true;
  } catch (error) {
    report.error = describe(error);
    if (page && !page.isClosed()) {
      // What the page showed when it went wrong: the artefact that explains the failure.
      try {
        const n = String(report.shots.length + 1).padStart(2, '0');
        const file = path.join(command.shotDir, `${n}-failure.png`);
        await page.screenshot({ path: file, fullPage: true, timeout: 5_000 });
        report.shots.push(file);
      } catch {
        // No page to show.
      }
    }
  } finally {
    clearTimeout(timer);
    if (context) await context.close().catch(() => {});
    if (held) held.release();
  }
  return report;
}

async function closeAll() {
  await Promise.allSettled(
    [...browsers.values()].map((entry) => entry.browser.then((b) => b.close())),
  );
}

async function main() {
  let initial;
  try {
    const pins = (process.env.BROWSER_SPKI_PINS || '').split(',').filter(Boolean);
    initial = await acquire(pins);
  } catch (e) {
    console.error(`cannot launch Chromium: ${describe(e)}`);
    process.exit(3);
  }
  const version = initial.browser.version();
  initial.release();
  answer({ ready: true, chromium: version });

  const running = new Set();
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (!line.trim()) return;
    let command;
    try {
      command = JSON.parse(line);
    } catch (e) {
      answer({ id: null, ok: false, error: `not a JSON command: ${e.message}` });
      return;
    }
    const job = run(command).then(answer);
    running.add(job);
    job.finally(() => running.delete(job));
  });
  lines.on('close', async () => {
    // The test process is done (or gone): answer what still runs, for a while, then go.
    const stop = setTimeout(() => process.exit(0), CLOSE_GRACE_MS);
    await Promise.allSettled([...running]);
    await closeAll();
    clearTimeout(stop);
    process.exit(0);
  });
}

main();
