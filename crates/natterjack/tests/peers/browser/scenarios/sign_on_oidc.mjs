// Single sign-on through OpenID Connect in the browser, as a person does it: on the console's
// login page the button "Sign in with OpenID Connect", at the provider (the test
// oidc-provider, see tests/peers/oidc/server.mjs) its login page (the account's name in
// `account`, button "Sign in") and, for a client it has not seen, its consent page (button
// "Continue"); the provider sends the browser back to the console's callback, whose page
// moves on to /console/spaces by a meta refresh, signed in. The session stays open, for the
// test to find it.
//
//   params: {
//     base: "https://127.0.0.1:PORT",
//     issuer: "https://127.0.0.1:PORT",          // the provider's origin
//     account: "alice",                          // the provider's account
//     username: "alice",                         // the console account it maps to
//     admin: false,
//   }
//
// Checks every console page as console_walk does, the session cookie's attributes, and that
// the pending sign-on cookie is gone once used. Returns { callback: status }.

import {
  button,
  check,
  checkHeaders,
  checkPage,
  checkSessionCookie,
  expectPath,
  startSignOn,
  watchDocuments,
} from './lib/console.mjs';

const SIGN_ON_COOKIE = '__Host-natterjack-sso';

export default async function signOnOidc({ page, context, params, shot }) {
  const { base, issuer, account, username, admin = false } = params;
  check(base && issuer && account && username, 'params: base, issuer, account, username');
  const documents = watchDocuments(page);
  let callback = null;
  page.on('response', (response) => {
    if (new URL(response.url()).pathname === '/console/oidc/callback') callback = response.status();
  });
  const atProvider = (url) => url.origin === issuer && url.pathname.startsWith('/interaction/');

  await startSignOn(page, { base, name: 'Sign in with OpenID Connect', action: '/console/oidc/login' });
  await shot('login-with-sign-on');
  await page.waitForURL(atProvider);
  const signOn = (await context.cookies(base)).find((c) => c.name === SIGN_ON_COOKIE);
  check(signOn, `no ${SIGN_ON_COOKIE} cookie while the sign-on is pending`);
  check(signOn.secure && signOn.httpOnly && signOn.sameSite === 'None', `${SIGN_ON_COOKIE} is not Secure, HttpOnly and SameSite=None`);

  const loginPage = page.url();
  await page.locator('input[name="account"]').fill(account);
  await shot(`provider-login-${account}`);
  await button(page, 'Sign in').click();
  // The consent page (another interaction), or straight back to the console.
  await page.waitForURL(
    (url) => url.origin === new URL(base).origin || (atProvider(url) && url.href !== loginPage),
  );
  if (atProvider(new URL(page.url()))) {
    await shot(`provider-consent-${account}`);
    await button(page, 'Continue').click();
  }
  await page.waitForURL((url) => url.origin === new URL(base).origin && url.pathname === '/console/spaces');
  await expectPath(page, '/console/spaces');
  await checkPage(page, { user: username, admin });
  await checkSessionCookie(context, base);
  const left = (await context.cookies(base)).find((c) => c.name === SIGN_ON_COOKIE);
  check(!left, `${SIGN_ON_COOKIE} is still held after the sign-on`);
  await shot(`signed-in-${username}`);

  checkHeaders(documents);
  return { callback };
}
