// A member's walk through the console, through its forms only: log in, create a space,
// post two messages, read them (newest first), open the members, grant `rw` to another
// user, delete a message, log out; then /console/spaces must land on the login page, even
// with the old session cookie put back (logout revoked it on the server). A screenshot of
// every page. Every console page is checked on the way: no script, the CSP of the contract,
// a csrf input in every POST form, the header, main and nav of a signed-in page, and no
// admin links for a member (whose GET /console/audit is refused).
//
//   params: {
//     base: "https://127.0.0.1:PORT",
//     member: { username, password },   // an existing user who is not an admin
//     grantee: "bob",                   // another existing user
//     space: "garden",                  // optional: the new space's name
//     messages: ["first", "second"],    // optional: the two messages posted
//   }
//
// Returns { spaceId }.

import {
  button,
  check,
  checkHeaders,
  checkPage,
  expectPath,
  formWith,
  link,
  login,
  logout,
  sessionCookie,
  watchDocuments,
} from './lib/console.mjs';

export default async function consoleWalk({ page, context, params, shot, expectConsoleError, note }) {
  const { base, member, grantee } = params;
  check(base && member?.username && member?.password && grantee, 'params: base, member, grantee');
  const user = member.username;
  const spaceName = params.space ?? `walk ${Date.now()}`;
  const [first, second] = params.messages ?? [
    `First words from the browser, ${Date.now()}`,
    `Second words from the browser, ${Date.now()}`,
  ];
  const documents = watchDocuments(page);

  // Signed out, the console's root leads to the login form.
  await page.goto(`${base}/console/`);
  await expectPath(page, '/console/login');
  await shot('login');

  await login(page, { base, username: user, password: member.password });
  await checkPage(page, { user, admin: false });
  await shot('spaces');

  // Create a space: the form answers 303 to the new space.
  const create = formWith(page, 'Create space');
  await create.locator('input[name="name"]').fill(spaceName);
  await button(create, 'Create space').click();
  await expectPath(page, /^\/console\/spaces\/[^/]+$/);
  const spacePath = new URL(page.url()).pathname;
  const spaceId = decodeURIComponent(spacePath.split('/').pop());
  await checkPage(page, { user, admin: false });
  check((await page.locator('main').innerText()).includes(spaceName), `the new space's page does not name "${spaceName}"`);
  await shot('space-created');

  // Post twice; each POST answers 303 back to the space.
  for (const text of [first, second]) {
    const post = formWith(page, 'Post');
    await post.locator('textarea[name="body"]').fill(text);
    await button(post, 'Post').click();
    await page.locator('article.message', { hasText: text }).waitFor();
    await expectPath(page, spacePath);
  }
  await checkPage(page, { user, admin: false });
  await shot('posted');

  // Read: from the list of spaces to the space, newest message first.
  await link(page.locator('nav'), 'Spaces').click();
  await expectPath(page, '/console/spaces');
  await page.locator(`main a[href="${spacePath}"]`).first().click();
  await expectPath(page, spacePath);
  const articles = page.locator('article.message');
  check((await articles.count()) === 2, `the space shows ${await articles.count()} messages, not 2`);
  check((await articles.nth(0).innerText()).includes(second), 'the newest message is not first');
  check((await articles.nth(1).innerText()).includes(first), 'the first message is not second');
  await shot('space-read');
  // The picture of the console in docs/console.png: this page, 1000 pixels wide.
  await page.setViewportSize({ width: 1000, height: 640 });
  await shot('space-1000px', { fullPage: false });
  await page.setViewportSize({ width: 1280, height: 800 });

  // The members page; grant rw to another user.
  await link(page, 'Members').click();
  await expectPath(page, `${spacePath}/members`);
  await checkPage(page, { user, admin: false });
  await shot('members');
  const grant = formWith(page, 'Grant');
  await grant.locator('input[name="username"]').fill(grantee);
  await grant.locator('input[name="permissions"]').fill('rw');
  await button(grant, 'Grant').click();
  await expectPath(page, `${spacePath}/members`);
  const alert = page.locator('p[role="alert"]');
  if ((await alert.count()) > 0) {
    throw new Error(`granting rw to ${grantee} was refused: ${await alert.innerText()}`);
  }
  const row = page.locator('tr', { hasText: grantee });
  check((await row.count()) === 1, `no single members row for ${grantee} after the grant`);
  check((await button(row, 'Revoke').count()) === 1, `the row of ${grantee} has no "Revoke" button`);
  note(`members row after the grant: ${(await row.innerText()).replace(/\s+/g, ' ')}`);
  await checkPage(page, { user, admin: false });
  await shot('granted');

  // Delete the first message (the creator holds `d`).
  await page.goto(`${base}${spacePath}`);
  const doomed = page.locator('article.message', { hasText: first });
  await button(doomed, 'Delete').click();
  await expectPath(page, spacePath);
  await page.locator('article.message', { hasText: first }).waitFor({ state: 'detached' });
  check((await page.locator('article.message', { hasText: second }).count()) === 1, 'deleting one message removed the other');
  await checkPage(page, { user, admin: false });
  await shot('deleted');

  // A member has no admin pages.
  expectConsoleError('status of 40[34]');
  const refused = await page.goto(`${base}/console/audit`);
  check([403, 404].includes(refused?.status()), `a member's GET /console/audit answered ${refused?.status()}`);
  await shot('audit-refused');
  await page.goto(`${base}${spacePath}`);

  // Log out; afterwards the console sends the browser to the login form, and so does the old
  // session cookie put back by hand.
  const session = await sessionCookie(context, base);
  await logout(page);
  await checkPage(page);
  await shot('logged-out');
  check((await sessionCookie(context, base))?.value !== session.value, 'the session cookie is still held after logging out');
  await page.goto(`${base}/console/spaces`);
  await expectPath(page, '/console/login');
  const { name, value, secure, httpOnly, sameSite } = session;
  await context.addCookies([{ name, value, url: `${base}/`, secure, httpOnly, sameSite }]);
  check((await sessionCookie(context, base))?.value === value, 'the old session cookie could not be put back');
  await page.goto(`${base}/console/spaces`);
  await expectPath(page, '/console/login');
  await shot('after-logout');

  checkHeaders(documents);
  return { spaceId };
}
