// What the console scenarios share: logging in and out through the forms, and the checks
// every console page must pass (the layout and form rules of the console's contract). Only
// Playwright's locators and navigation: the console pages run no JavaScript, and nothing
// here needs them to.

/** The session cookie: `__Host-` prefixed, so Secure, Path=/ and no Domain. */
export const SESSION_COOKIE = '__Host-natterjack-session';

/** The Content Security Policy of every console page, directive by directive. */
export const CONSOLE_CSP = {
  'default-src': "'none'",
  'style-src': "'self'",
  'img-src': "'self'",
  'form-action': "'self'",
  'frame-ancestors': "'none'",
  'base-uri': "'none'",
};

/**
 * The POST forms that carry no csrf input: the password login and the buttons that start a
 * single sign-on. There is no session yet to bind a token to; the server's Origin and
 * Sec-Fetch-Site check protects them.
 */
export const SIGN_IN_ACTIONS = ['/console/login', '/console/saml/login', '/console/oidc/login'];

export class Failure extends Error {}

export function check(condition, message) {
  if (!condition) throw new Failure(message);
}

/** The path of the page's URL (no query). */
export const pathOf = (page) => new URL(page.url()).pathname;

/** Waits until the page is at `path` (a string, or a RegExp on the pathname). */
export async function expectPath(page, path) {
  const matches = (url) =>
    typeof path === 'string' ? url.pathname === path : path.test(url.pathname);
  try {
    await page.waitForURL(matches);
  } catch {
    throw new Failure(`expected to be at ${path}, but the page is at ${page.url()}`);
  }
}

/** A button by its exact text. */
export const button = (scope, name) => scope.getByRole('button', { name, exact: true });

/** A link by its exact text. */
export const link = (scope, name) => scope.getByRole('link', { name, exact: true });

/** The form holding the button named `name`. */
export const formWith = (page, name) =>
  page.locator('form').filter({ has: button(page, name) });

/**
 * Records the HTML documents the page loads under /console/, for checkHeaders: every
 * navigation response, including those after a form POST and its 303.
 */
export function watchDocuments(page) {
  const documents = [];
  page.on('response', (response) => {
    const request = response.request();
    if (request.resourceType() !== 'document' || !new URL(response.url()).pathname.startsWith('/console/')) {
      return;
    }
    documents.push({
      url: response.url(),
      status: response.status(),
      contentType: response.headers()['content-type'] ?? '',
      csp: response.headers()['content-security-policy'] ?? null,
    });
  });
  return documents;
}

/** Parses a CSP header into { directive: value }. */
export function parseCsp(header) {
  const directives = {};
  for (const part of header.split(';')) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) directives[name.toLowerCase()] = values.join(' ');
  }
  return directives;
}

/** Every console HTML document (not the redirects) carried exactly the console's CSP. */
export function checkHeaders(documents) {
  const pages = documents.filter((d) => d.contentType.startsWith('text/html') && (d.status < 300 || d.status >= 400));
  check(pages.length > 0, 'no console page was loaded');
  for (const d of pages) {
    check(d.csp, `${d.url} (${d.status}) has no Content-Security-Policy`);
    const got = parseCsp(d.csp);
    const same =
      Object.keys(got).length === Object.keys(CONSOLE_CSP).length &&
      Object.entries(CONSOLE_CSP).every(([k, v]) => got[k] === v);
    check(same, `${d.url} (${d.status}) has Content-Security-Policy ${d.csp}`);
  }
}

/**
 * The rules every console page keeps: no script at all; a POST form carries the hidden
 * `csrf` input (but those of SIGN_IN_ACTIONS); and, for a page of a signed-in user, the
 * header with the user's name and the "Log out" form, `<main>`, and a `<nav>` with
 * "Spaces", plus "Audit", "Alerts" and "Activity" exactly when `admin`.
 */
export async function checkPage(page, { user = null, admin = null } = {}) {
  const where = page.url();
  check((await page.locator('script').count()) === 0, `${where} has a <script> element`);
  const unguarded = page.locator(
    `form[method="post" i]${SIGN_IN_ACTIONS.map((a) => `:not([action="${a}"])`).join('')}:not(:has(input[type="hidden"][name="csrf"]))`,
  );
  check((await unguarded.count()) === 0, `${where} has a POST form without a hidden csrf input`);
  if (user === null) return;
  // The page's header (a message's <article> has a header of its own).
  const header = page.locator('body > header');
  check((await header.count()) === 1, `${where} has no single <header>`);
  check((await header.innerText()).includes(user), `${where}: the header does not name ${user}`);
  check((await button(header, 'Log out').count()) === 1, `${where}: no "Log out" button in the header`);
  check((await page.locator('main').count()) === 1, `${where} has no single <main>`);
  const nav = page.locator('nav');
  check((await nav.count()) >= 1, `${where} has no <nav>`);
  check((await link(nav, 'Spaces').count()) >= 1, `${where}: no "Spaces" link in the nav`);
  if (admin !== null) {
    for (const name of ['Audit', 'Alerts', 'Activity']) {
      const shown = (await link(nav, name).count()) > 0;
      check(shown === admin, `${where}: the nav ${shown ? 'shows' : 'lacks'} "${name}" for ${admin ? 'an admin' : 'a member'}`);
    }
  }
}

/** The session cookie the browser holds for `base`, or null. */
export async function sessionCookie(context, base) {
  return (await context.cookies(base)).find((c) => c.name === SESSION_COOKIE) ?? null;
}

/** The browser holds a session cookie for `base` with the attributes of the contract. */
export async function checkSessionCookie(context, base) {
  const cookie = await sessionCookie(context, base);
  check(cookie, `no ${SESSION_COOKIE} cookie after logging in`);
  check(cookie.secure && cookie.httpOnly, `${SESSION_COOKIE} is not Secure and HttpOnly`);
  check(cookie.sameSite === 'Strict', `${SESSION_COOKIE} is SameSite=${cookie.sameSite}, not Strict`);
  check(cookie.path === '/', `${SESSION_COOKIE} has Path=${cookie.path}`);
  check(!cookie.domain.startsWith('.'), `${SESSION_COOKIE} has Domain=${cookie.domain}`);
  return cookie;
}

/**
 * Logs in through the login form: from /console/ (which must send a signed-out browser to
 * /console/login) to /console/spaces. Checks the session cookie's attributes.
 */
export async function login(page, { base, username, password }) {
  await page.goto(`${base}/console/`);
  await expectPath(page, '/console/login');
  await checkPage(page);
  const form = formWith(page, 'Log in');
  check((await form.count()) === 1, 'the login page has no single form with a "Log in" button');
  await form.locator('input[name="username"]').fill(username);
  await form.locator('input[name="password"]').fill(password);
  await button(form, 'Log in').click();
  await expectPath(page, '/console/spaces');
  await checkSessionCookie(page.context(), base);
}

/**
 * Starts a single sign-on from the login page: the form whose one button is `name` ("Sign in
 * with SAML", "Sign in with OpenID Connect") must post to `action`.
 */
export async function startSignOn(page, { base, name, action }) {
  await page.goto(`${base}/console/login`);
  await checkPage(page);
  const form = formWith(page, name);
  check((await form.count()) === 1, `the login page has no single form with a "${name}" button`);
  const target = await form.getAttribute('action');
  check(target === action, `the "${name}" form posts to ${target}, not ${action}`);
  await button(form, name).click();
}

/** Logs out with the header's "Log out" button; lands on /console/login. */
export async function logout(page) {
  await button(page.locator('header'), 'Log out').click();
  await expectPath(page, '/console/login');
}
