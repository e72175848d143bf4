// A signed-in member follows a link to the console from a page on another site: the request
// is a cross-site top-level navigation, with which a browser never sends a SameSite=Strict
// cookie, so the console answers as to a stranger (its login page) and the member's session
// is neither used nor lost. Then the member opens the console directly (a navigation the
// browser started itself), and the session is there.
//
//   params: {
//     base: "https://127.0.0.1:PORT",
//     member: { username, password },
//     attackerOrigin: "https://attacker.test",   // optional
//   }
//
// Returns { crossSiteRequestId, crossSiteCookieSent, directRequestId, directCookieSent }: the
// server's x-request-id of each GET /console/spaces (for the audit trail) and whether Chromium
// attached any cookie to it, as its network log shows the request it sent.

import {
  button,
  check,
  checkHeaders,
  checkPage,
  expectPath,
  login,
  pathOf,
  sessionCookie,
  watchDocuments,
} from './lib/console.mjs';

export default async function crossSiteLink({ page, context, params, shot }) {
  const { base, member, attackerOrigin = 'https://attacker.test' } = params;
  check(base && member?.username && member?.password, 'params: base, member');
  const documents = watchDocuments(page);
  const target = `${base}/console/spaces`;

  await login(page, { base, username: member.username, password: member.password });
  const session = await sessionCookie(context, base);

  // The other site's page, served by Playwright (route interception), with a plain link.
  await page.route(`${attackerOrigin}/**`, (route) =>
    route.fulfill({
      status: 200,
      contentType: 'text/html; charset=utf-8',
      body: `<!doctype html><title>A page on another site</title><a id="go" href="${target}">Your spaces</a>`,
    }),
  );
  await page.goto(`${attackerOrigin}/news`);
  await shot('other-site');
  await page.unrouteAll();

  const sent = async (request) => {
    const headers = await request.allHeaders();
    const response = await request.response();
    return {
      cookie: Boolean(headers.cookie),
      site: headers['sec-fetch-site'] ?? null,
      requestId: (await response?.allHeaders())?.['x-request-id'] ?? null,
    };
  };

  const [crossSite] = await Promise.all([
    page.waitForRequest((r) => r.url() === target && r.isNavigationRequest()),
    page.click('#go'),
  ]);
  await expectPath(page, '/console/login');
  await checkPage(page);
  await shot('arrived-from-other-site');
  const across = await sent(crossSite);
  check(across.site === 'cross-site', `the link's request went out as Sec-Fetch-Site ${across.site}`);
  const kept = await sessionCookie(context, base);
  check(kept?.value === session.value, 'following the link from another site changed or removed the session cookie');

  // Typed in (a navigation the browser starts itself): the session is there.
  const [direct] = await Promise.all([
    page.waitForRequest((r) => r.url() === target && r.isNavigationRequest()),
    page.goto(target),
  ]);
  check(pathOf(page) === '/console/spaces', `opening ${target} directly landed on ${page.url()}`);
  await checkPage(page, { user: member.username, admin: false });
  check((await button(page.locator('body > header'), 'Log out').count()) === 1, 'not signed in');
  await shot('opened-directly');
  const typed = await sent(direct);

  checkHeaders(documents);
  return {
    crossSiteRequestId: across.requestId,
    crossSiteCookieSent: across.cookie,
    directRequestId: typed.requestId,
    directCookieSent: typed.cookie,
  };
}
