// An admin's look at the console's admin pages, by the links of the nav: Audit (whose
// #chain-status must say OK, and whose outcome filter narrows the trail), Alerts and
// Activity (an inline SVG chart); then log out. A screenshot of every page, and every page
// checked as in console_walk (no script, the contract's CSP, csrf in POST forms, header,
// main, and a nav with the admin links).
//
//   params: {
//     base: "https://127.0.0.1:PORT",
//     admin: { username, password },
//     alert: "forbidden",   // optional: a kind of alert the alerts page must list
//   }
//
// Returns { chainStatus } (the text of #chain-status).

import {
  check,
  checkHeaders,
  checkPage,
  expectPath,
  link,
  login,
  logout,
  watchDocuments,
} from './lib/console.mjs';

export default async function auditAsAdmin({ page, params, shot }) {
  const { base, admin } = params;
  check(base && admin?.username && admin?.password, 'params: base, admin');
  const user = admin.username;
  const documents = watchDocuments(page);
  const nav = page.locator('nav');

  await login(page, { base, username: user, password: admin.password });
  await checkPage(page, { user, admin: true });
  await shot('spaces');

  await link(nav, 'Audit').click();
  await expectPath(page, '/console/audit');
  await checkPage(page, { user, admin: true });
  const status = page.locator('#chain-status');
  check((await status.count()) === 1, 'the audit page has no #chain-status');
  const chainStatus = (await status.innerText()).trim();
  check(/\bOK\b/.test(chainStatus), `#chain-status says "${chainStatus}", not OK`);
  await shot('audit');

  // The outcome filter (a GET form: a select or a text input).
  const outcome = page.locator('[name="outcome"]');
  check((await outcome.count()) === 1, 'the audit page has no single outcome filter');
  if ((await page.locator('select[name="outcome"]').count()) === 1) {
    await outcome.selectOption('allow');
  } else {
    await outcome.fill('allow');
  }
  const filters = page.locator('form').filter({ has: outcome });
  await filters.locator('button, input[type="submit"]').first().click();
  await page.waitForURL((url) => url.pathname === '/console/audit' && url.searchParams.get('outcome') === 'allow');
  await checkPage(page, { user, admin: true });
  check((await page.locator('#chain-status').count()) === 1, 'the filtered audit page has no #chain-status');
  await shot('audit-allow');

  await link(nav, 'Alerts').click();
  await expectPath(page, '/console/alerts');
  await checkPage(page, { user, admin: true });
  if (params.alert) {
    const rows = page.locator('main tr.alert', { hasText: `alert ${params.alert}` });
    check((await rows.count()) >= 1, `the alerts page lists no "alert ${params.alert}"`);
  }
  await shot('alerts');

  await link(nav, 'Activity').click();
  await expectPath(page, '/console/activity');
  await checkPage(page, { user, admin: true });
  check((await page.locator('main svg').count()) >= 1, 'the activity page has no inline SVG chart');
  await shot('activity');

  await logout(page);
  await shot('logged-out');
  checkHeaders(documents);
  return { chainStatus };
}
