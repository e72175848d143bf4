// Single sign-on through SAML 2.0 in the browser, as a person does it: on the console's login
// page the button "Sign in with SAML", at the identity provider (the test IdP, see
// tests/peers/saml/idp.py) the button "Continue", whose form posts the signed response to the
// console's assertion consumer service; its page moves on to /console/spaces by a meta
// refresh, signed in. Each user of params.users in turn (the IdP's "Switch user" form picks
// one), logging out in between (the last stays signed in, for the test to find the session);
// an admin also opens the audit page. Before all that, a wrong password on the login form:
// its 401 page says so and still offers the sign-on button.
//
//   params: {
//     base: "https://127.0.0.1:PORT",
//     idp: "http://127.0.0.1:PORT",              // the IdP's origin
//     users: [{ username: "alice", admin: false }, { username: "bob", admin: true }],
//   }
//
// Checks every console page as console_walk does, the session cookie's attributes, that the
// pending sign-on cookie is gone once used, and that the assertion consumer answered the
// landing page (200) rather than a redirect. Returns { acs: [status per user] }.

import {
  button,
  check,
  checkHeaders,
  checkPage,
  checkSessionCookie,
  expectPath,
  formWith,
  link,
  logout,
  startSignOn,
  watchDocuments,
} from './lib/console.mjs';

const SIGN_ON_COOKIE = '__Host-natterjack-sso';

export default async function signOnSaml({ page, context, params, shot, expectConsoleError }) {
  const { base, idp, users } = params;
  check(base && idp && Array.isArray(users) && users.length > 0, 'params: base, idp, users');
  const documents = watchDocuments(page);
  const acs = [];
  page.on('response', (response) => {
    if (new URL(response.url()).pathname === '/console/saml/acs') acs.push(response.status());
  });

  // A mistyped password: the form again, with the problem and the way to sign on instead.
  await page.goto(`${base}/console/login`);
  const form = formWith(page, 'Log in');
  await form.locator('input[name="username"]').fill(users[0].username);
  await form.locator('input[name="password"]').fill('not-the-password-at-all');
  expectConsoleError('status of 401');
  const [refused] = await Promise.all([
    page.waitForResponse((r) => new URL(r.url()).pathname === '/console/login' && r.request().method() === 'POST'),
    button(form, 'Log in').click(),
  ]);
  check(refused.status() === 401, `a wrong password was answered ${refused.status()}, not 401`);
  await page.waitForLoadState('load');
  await checkPage(page);
  const problem = (await page.locator('p[role="alert"]').innerText()).trim();
  check(problem === 'Wrong username or password', `the wrong password's page says "${problem}"`);
  check((await formWith(page, 'Sign in with SAML').count()) === 1, 'the wrong password\'s page offers no "Sign in with SAML"');
  await shot('wrong-password');

  for (const [i, { username, admin }] of users.entries()) {
    await startSignOn(page, { base, name: 'Sign in with SAML', action: '/console/saml/login' });
    if (i === 0) await shot('login-with-sign-on');
    // The console sent the browser to the IdP with an AuthnRequest (HTTP-Redirect binding).
    await page.waitForURL((url) => url.origin === idp && url.pathname === '/sso');
    check(new URL(page.url()).searchParams.has('SAMLRequest'), `no SAMLRequest in ${page.url()}`);
    const signOn = (await context.cookies(base)).find((c) => c.name === SIGN_ON_COOKIE);
    check(signOn, `no ${SIGN_ON_COOKIE} cookie while the sign-on is pending`);
    check(signOn.secure && signOn.httpOnly && signOn.sameSite === 'None', `${SIGN_ON_COOKIE} is not Secure, HttpOnly and SameSite=None`);

    const current = async () => (await page.locator('#user').innerText()).trim();
    if ((await current()) !== username) {
      await page.locator('select[name="user"]').selectOption(username);
      await button(page, 'Switch user').click();
      await page.waitForURL((url) => url.searchParams.get('user') === username);
    }
    check((await current()) === username, `the IdP signs in ${await current()}, not ${username}`);
    await shot(`idp-${username}`);

    await button(page, 'Continue').click();
    await expectPath(page, '/console/spaces');
    await checkPage(page, { user: username, admin });
    await checkSessionCookie(context, base);
    const left = (await context.cookies(base)).find((c) => c.name === SIGN_ON_COOKIE);
    check(!left, `${SIGN_ON_COOKIE} is still held after the sign-on`);
    await shot(`signed-in-${username}`);

    if (admin) {
      await link(page.locator('nav'), 'Audit').click();
      await expectPath(page, '/console/audit');
      await checkPage(page, { user: username, admin });
      await shot(`audit-${username}`);
    }
    if (i < users.length - 1) await logout(page);
  }

  checkHeaders(documents);
  check(acs.length === users.length, `the assertion consumer answered ${acs.length} times, not ${users.length}`);
  return { acs };
}
