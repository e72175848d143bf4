// Loads each of params.urls in turn in one page and takes a screenshot of each that loaded
// (the whole page of HTML, the first screen of anything else).
//
//   params: { urls: ["https://127.0.0.1:PORT/health", ...], mustLoad: true }
//
// Returns one entry per URL: { url, loaded, status, contentType, text, error }, where text
// is the start of what the page shows and error the navigation's failure (a refused
// certificate is net::ERR_CERT_AUTHORITY_INVALID). With mustLoad (the default) a URL that
// fails to load, or answers other than 2xx, fails the scenario.

export default async function loadPages({ page, params, shot }) {
  const { urls, mustLoad = true } = params;
  if (!Array.isArray(urls) || urls.length === 0) throw new Error('params.urls: a non-empty array');
  const results = [];
  for (const [i, url] of urls.entries()) {
    const result = { url, loaded: false, status: null, contentType: null, text: null, error: null };
    try {
      const response = await page.goto(url, { waitUntil: 'load' });
      result.loaded = true;
      result.status = response?.status() ?? null;
      result.contentType = response?.headers()['content-type'] ?? null;
      result.text = (await page.locator('body').innerText()).slice(0, 2000);
      // A JSON document shown as text can be tens of thousands of pixels long: its first
      // screen says enough.
      const html = (result.contentType ?? '').startsWith('text/html');
      await shot(`page-${i + 1}-${new URL(url).pathname}`, { fullPage: html });
    } catch (error) {
      result.error = error.message;
      // Chromium shows its error page a moment after the navigation failed; a navigation
      // started before that would be cut short by it.
      await page.waitForURL(/^chrome-error:/, { timeout: 5_000 }).catch(() => {});
    }
    results.push(result);
    if (mustLoad && (!result.loaded || result.status < 200 || result.status > 299)) {
      throw new Error(`${url} did not load: ${result.error ?? `status ${result.status}`}`);
    }
  }
  return results;
}
