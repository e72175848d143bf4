// The harness's check of itself: pages that go wrong in every way the driver reports, so
// that a clean report of a console page means something. Served by Playwright on
// https://harness.test (route interception; no server involved):
//
//   /strict     CSP `default-src 'none'`, an inline style and an image: two violations
//   /scripted   a script that logs a console error and then throws (a pageerror)
//   /linked     a stylesheet whose request is refused at the network level
//
//   params: { expect: "regex" }   // optional: a console error this scenario provokes on purpose
//
// Passes when the pages were shown; the report carries what went wrong on them.

const ORIGIN = 'https://harness.test';

const PAGES = {
  '/strict': {
    headers: { 'content-security-policy': "default-src 'none'" },
    body: '<!doctype html><title>strict</title><p style="color: red">styled inline</p><img src="/pixel.png" alt="">',
  },
  '/scripted': {
    headers: {},
    body: '<!doctype html><title>scripted</title><p>scripted</p><script>console.error("logged by the page"); throw new Error("thrown by the page");</script>',
  },
  '/linked': {
    headers: {},
    body: '<!doctype html><title>linked</title><link rel="stylesheet" href="/missing.css"><p>linked</p>',
  },
};

export default async function harnessViolations({ page, params, shot, expectConsoleError }) {
  if (params.expect) expectConsoleError(params.expect);
  await page.route(`${ORIGIN}/**`, (route) => {
    const path = new URL(route.request().url()).pathname;
    const known = PAGES[path];
    if (known) {
      return route.fulfill({
        status: 200,
        headers: { 'content-type': 'text/html; charset=utf-8', ...known.headers },
        body: known.body,
      });
    }
    if (path === '/missing.css') return route.abort('connectionrefused');
    return route.fulfill({ status: 200, contentType: 'image/png', body: Buffer.alloc(0) });
  });
  for (const path of Object.keys(PAGES)) {
    await page.goto(`${ORIGIN}${path}`, { waitUntil: 'load' });
    await shot(path.slice(1));
  }
  return null;
}
