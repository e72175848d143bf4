// A member on a phone-sized screen (390×844) who uses the keyboard alone: logs in (the
// username field has the focus when the page opens), creates a space and posts a message by
// moving with Tab and pressing Enter, never clicking. On every page: nothing wider than the
// screen (no sideways scrolling), and the focused control visibly outlined. A screenshot of
// each page at that size.
//
//   params: { base: "https://127.0.0.1:PORT", member: { username, password }, space, message }
//
// Returns { spaceId }.

import { check, checkPage, expectPath, pathOf } from './lib/console.mjs';

const PHONE = { width: 390, height: 844 };

/** Nothing on the page is wider than the screen. */
async function fitsTheScreen(page) {
  const { scroll, inner } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth,
  }));
  check(scroll <= inner, `${pathOf(page)} is ${scroll}px wide on a ${inner}px screen`);
}

/** Presses Tab until the focus is on the element `selector` (at most 30 times). */
async function tabTo(page, selector) {
  for (let i = 0; i < 30; i += 1) {
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) {
      const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
      check(outline !== 'none', `the focused ${selector} on ${pathOf(page)} shows no outline`);
      return;
    }
    await page.keyboard.press('Tab');
  }
  throw new Error(`Tab never reaches ${selector} on ${pathOf(page)}`);
}

export default async function keyboardPhone({ page, params, shot }) {
  const { base, member } = params;
  check(base && member?.username && member?.password, 'params: base, member');
  await page.setViewportSize(PHONE);

  await page.goto(`${base}/console/login`);
  await fitsTheScreen(page);
  await tabTo(page, 'input[name="username"]');
  await page.keyboard.type(member.username);
  await tabTo(page, 'input[name="password"]');
  await page.keyboard.type(member.password);
  await shot('phone-login');
  await page.keyboard.press('Enter');
  await expectPath(page, '/console/spaces');
  await checkPage(page, { user: member.username, admin: false });
  await fitsTheScreen(page);

  await tabTo(page, 'input[name="name"]');
  await page.keyboard.type(params.space ?? 'pocket');
  await shot('phone-spaces');
  await page.keyboard.press('Enter');
  await expectPath(page, /^\/console\/spaces\/[^/]+$/);
  const spaceId = decodeURIComponent(pathOf(page).split('/').pop());
  await fitsTheScreen(page);

  const message = params.message ?? 'typed on a phone';
  await tabTo(page, 'textarea[name="body"]');
  await page.keyboard.type(message);
  await tabTo(page, 'form.post button[type="submit"]');
  await page.keyboard.press('Enter');
  await expectPath(page, `/console/spaces/${spaceId}`);
  const shown = await page.locator('article.message p').first().textContent();
  check(shown === message, `the newest message reads ${JSON.stringify(shown)}`);
  await fitsTheScreen(page);
  await shot('phone-space');

  await tabTo(page, 'a[href$="/members"]');
  await page.keyboard.press('Enter');
  await expectPath(page, `/console/spaces/${spaceId}/members`);
  await fitsTheScreen(page);
  await shot('phone-members');
  return { spaceId };
}
