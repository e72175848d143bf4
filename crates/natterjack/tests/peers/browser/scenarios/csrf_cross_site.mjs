// A page on another site posts a form to the server: the cross-site request forgery the
// console must refuse. The other site is https://attacker.test (params.attackerOrigin),
// served by Playwright itself (route interception), so Chromium sends the POST to the real
// server as a real cross-site form submission: `Origin: https://attacker.test` and
// `Sec-Fetch-Site: cross-site`, with only the cookies a cross-site POST may carry.
//
//   params: {
//     action: "https://127.0.0.1:PORT/console/login",   // where the form posts
//     fields: { username: "alice", password: "...", csrf: "forged" },
//     login: { base, username, password },   // optional: log in first, in this context
//     attackerOrigin: "https://attacker.test",
//     expectStatus: 403,                     // what the server must answer (null: any)
//     cookie: "__Host-natterjack-session",  // must be the same after the POST as before
//   }
//
// Fails unless the request went out cross-site from the attacker's origin, the server
// answered expectStatus, and the cookie did not change (no session was made, or swapped).
// Returns { status, origin, secFetchSite, cookieSent, requestId, text }: cookieSent is whether
// Chromium attached any cookie to the forged POST (as its network log shows the request it
// sent), requestId the server's x-request-id, to find the request in the audit trail.

import { login } from './lib/console.mjs';

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export default async function csrfCrossSite({ page, context, params, shot, expectConsoleError }) {
  const {
    action,
    fields = {},
    attackerOrigin = 'https://attacker.test',
    expectStatus = 403,
    cookie = '__Host-natterjack-session',
  } = params;
  if (!action) throw new Error('params.action: the URL the forged form posts to');
  const target = new URL(action);

  if (params.login) {
    await login(page, params.login);
  }
  const cookieValue = async () =>
    (await context.cookies(target.origin)).find((c) => c.name === cookie)?.value ?? null;
  const before = await cookieValue();

  const inputs = Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name="${escape(k)}" value="${escape(v)}">`)
    .join('\n');
  const html = `<!doctype html><title>A page on another site</title>
<form method="post" action="${escape(action)}">
${inputs}
<button id="forge" type="submit">Win a prize</button>
</form>`;
  await page.route(`${attackerOrigin}/**`, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: html }),
  );
  await page.goto(`${attackerOrigin}/prize`);
  await shot('attacker-page');
  // Interception off before the POST: the request goes out untouched, and Playwright then
  // sees every header Chromium sent (with interception on, it misses Sec-Fetch-*).
  await page.unrouteAll();

  // The refusal is an error status: Chromium logs it as a failed load.
  expectConsoleError(expectStatus === null ? 'status of [45]\\d\\d' : `status of ${expectStatus}`);
  const [request] = await Promise.all([
    page.waitForRequest((r) => r.url() === action && r.method() === 'POST'),
    page.click('#forge'),
  ]);
  const response = await request.response();
  await page.waitForLoadState('load');
  await shot('after-forged-post');
  const headers = await request.allHeaders();
  const result = {
    status: response?.status() ?? null,
    origin: headers.origin ?? null,
    secFetchSite: headers['sec-fetch-site'] ?? null,
    cookieSent: Boolean(headers.cookie),
    requestId: (await response?.allHeaders())?.['x-request-id'] ?? null,
    text: (await page.locator('body').innerText()).slice(0, 2000),
  };

  if (result.origin !== attackerOrigin || result.secFetchSite !== 'cross-site') {
    throw new Error(
      `the forged POST did not go out cross-site from ${attackerOrigin}: ${JSON.stringify(result)}`,
    );
  }
  if (expectStatus !== null && result.status !== expectStatus) {
    throw new Error(`the forged POST was answered ${result.status}, not ${expectStatus}: ${result.text}`);
  }
  const after = await cookieValue();
  if (after !== before) {
    // (Never the values: a session token has no place in a test log.)
    const how = before === null ? 'set' : after === null ? 'removed' : 'replaced';
    throw new Error(`the forged POST ${how} the cookie ${cookie}`);
  }
  return result;
}
