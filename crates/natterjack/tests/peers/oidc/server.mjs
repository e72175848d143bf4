// A real OpenID provider (oidc-provider) for the natterjack integration tests.
//
//   OIDC_TLS_CERT=server.pem OIDC_TLS_KEY=server.key OIDC_AUDIENCE=https://natterjack.test \
//     [OIDC_PORT=0] node server.mjs
//
// Serves HTTPS on 127.0.0.1 (port 0: any free port) with issuer https://127.0.0.1:<port>, then
// prints exactly one line, `listening https://127.0.0.1:<port>`, on stdout. Exits when its
// stdin closes, so a test process that dies never leaves it behind.
//
// Access tokens for OIDC_AUDIENCE are RFC 9068 JWTs (typ at+jwt), signed RS256 or ES256 with
// keys generated at start. Control endpoints for the tests (plain JSON, no authentication;
// the server listens on loopback only), answered before the provider sees the request:
//
//   POST /_test/token/client?alg=RS256|ES256[&ttl=S]     client-credentials grant of svc-reports
//   POST /_test/token/user?account=alice[&alg=][&ttl=]   authorization code flow with PKCE
//   POST /_test/rotate                                   new RS256 and ES256 keys, old ones gone
//   GET  /_test/jwks_fetches, /_test/discovery_fetches   {"count": N} since start
//   POST /_test/down[?mode=reset|503], POST /_test/up    the provider unreachable / back
//   POST /_test/clients?client_id=ID&redirect_uri=URI[&redirect_uri=URI...][&client_secret=S]
//        registers (or replaces) a web client for the authorization code flow with PKCE,
//        public (no secret) or confidential (client_secret_basic), whose redirect URIs are
//        known only at test time (a console's https://127.0.0.1:PORT/console/oidc/callback)
//
// Both token endpoints drive the provider over HTTPS, through its own endpoints, so every
// token is really issued by it.
//
// A browser (or a client with a cookie store) can run the flow itself: the authorization
// endpoint redirects to GET /interaction/<uid>, a plain HTML page without JavaScript. The
// login page has a form with a text input `account` (alice, bob or mallory; no password)
// and a button "Sign in"; the consent page a form with a button "Continue". Each form POSTs
// to its own /interaction/<uid>, which redirects back to the authorization endpoint and, in
// the end, to the client's redirect URI with `code`, `state` and `iss`. ID tokens carry the
// profile claims (`preferred_username`, `groups`) and the request's `nonce`.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import { once } from 'node:events';

import Provider from 'oidc-provider';
// The package's own in-memory adapter (oidc-provider exports no name for it), made once so
// that every provider of this process (see /_test/rotate) shares one storage.
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} must be set`);
    process.exit(2);
  }
  return value;
};

const TLS_CERT = fs.readFileSync(env('OIDC_TLS_CERT'));
const TLS_KEY = fs.readFileSync(env('OIDC_TLS_KEY'));
const AUDIENCE = env('OIDC_AUDIENCE');
const PORT = Number(process.env.OIDC_PORT ?? '0');

// The scope of the one resource server: the user-login flow asks for it with `openid`.
const API_SCOPE = 'api';
const USER_CLIENT = 'natterjack-web';
const REDIRECT_URI = 'https://127.0.0.1/cb';
const SERVICE_CLIENT = 'svc-reports';
const SERVICE_SECRET = 'svc-reports-secret';
const ALGS = new Set(['RS256', 'ES256']);

// Requests the peer sends to itself carry this header: they pass while the provider is
// "down" (a test may take a token first and then take the issuer away, or the reverse).
const INTERNAL = crypto.randomBytes(16).toString('hex');
// The per-token choices of the control endpoints travel on the token request as headers.
const ALG_HEADER = 'x-test-alg';
const TTL_HEADER = 'x-test-ttl';

// The accounts: `mallory` claims alice's name, for tests of which claim identifies a user.
const ACCOUNTS = {
  alice: { preferred_username: 'alice', groups: [] },
  bob: { preferred_username: 'bob', groups: ['natterjack-admins'] },
  mallory: { preferred_username: 'alice', groups: [] },
};
// The service client's token is not a user's; it still needs a valid Natterjack username.
const SERVICE_CLAIMS = { preferred_username: 'svcreports' };

// ---------------------------------------------------------------------------------------
// Keys

function signingKeys() {
  const tag = crypto.randomBytes(6).toString('hex');
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  return [
    { ...rsa.export({ format: 'jwk' }), kid: `rsa-${tag}`, alg: 'RS256', use: 'sig' },
    { ...ec.export({ format: 'jwk' }), kid: `ec-${tag}`, alg: 'ES256', use: 'sig' },
  ];
}

// ---------------------------------------------------------------------------------------
// The provider

const cookieKeys = [crypto.randomBytes(32).toString('hex')];

function headerValue(ctx, name) {
  const value = ctx.get(name);
  return value === '' ? undefined : value;
}

// The web clients registered through /_test/clients, by client_id, served to the provider
// as its `Client` model's storage: a registration needs no new provider, so logins under way
// carry on, and the memory adapter (an LRU cache) cannot evict a registered client.
const registeredClients = new Map();

const CLOCK_TOLERANCE = 15;
const memoryAdapter = createMemoryAdapter(CLOCK_TOLERANCE);
const clientAdapter = {
  async find(id) { return registeredClients.get(id); },
  async upsert(id, metadata) { registeredClients.set(id, metadata); },
  async destroy(id) { registeredClients.delete(id); },
};
const adapter = (model) => (model === 'Client' ? clientAdapter : memoryAdapter(model));

function webClient(clientId, redirectUris, secret) {
  return {
    client_id: clientId,
    ...(secret
      ? { client_secret: secret, token_endpoint_auth_method: 'client_secret_basic' }
      : { token_endpoint_auth_method: 'none' }),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: redirectUris,
  };
}

function newProvider(issuer, keys) {
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: SERVICE_CLIENT,
        client_secret: SERVICE_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
      },
      webClient(USER_CLIENT, [REDIRECT_URI]),
    ],
    adapter,
    clockTolerance: CLOCK_TOLERANCE,
    jwks: { keys },
    // ID tokens carry the claims of the granted scopes (preferred_username, groups), as the
    // console's login needs, although the code flow also offers them at userinfo.
    conformIdTokenClaims: false,
    cookies: { keys: cookieKeys },
    pkce: { required: () => true },
    claims: { openid: ['sub'], profile: ['preferred_username', 'groups'] },
    async findAccount(_ctx, id) {
      const claims = ACCOUNTS[id];
      if (!claims) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
    },
    async extraTokenClaims(_ctx, token) {
      if (token.accountId) return ACCOUNTS[token.accountId];
      if (token.kind === 'ClientCredentials' && token.clientId === SERVICE_CLIENT) {
        return SERVICE_CLAIMS;
      }
      return undefined;
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx, _client, oneOf) => oneOf ?? AUDIENCE,
        useGrantedResource: () => true,
        async getResourceServerInfo(ctx, indicator) {
          if (indicator !== AUDIENCE) throw new Provider.errors.InvalidTarget();
          const alg = headerValue(ctx, ALG_HEADER) ?? 'RS256';
          const ttl = Number(headerValue(ctx, TTL_HEADER) ?? '3600');
          return {
            scope: API_SCOPE,
            audience: AUDIENCE,
            accessTokenTTL: ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
  });
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error', err));
  return provider;
}

// ---------------------------------------------------------------------------------------
// Talking to itself

let origin; // https://127.0.0.1:<port>

// One HTTPS request to this server; resolves to { status, headers, body }. The server's
// certificate is not verified: the request goes to our own socket on loopback.
function self(method, path, { headers = {}, form } = {}) {
  const body = form ? new URLSearchParams(form).toString() : undefined;
  return new Promise((resolve, reject) => {
    const req = https.request(`${origin}${path}`, {
      method,
      rejectUnauthorized: false,
      headers: {
        'x-test-internal': INTERNAL,
        ...(body ? {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
        } : {}),
        ...headers,
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode,
        headers: res.headers,
        body: Buffer.concat(chunks).toString(),
      }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function tokenHeaders(alg, ttl) {
  return { [ALG_HEADER]: alg, ...(ttl ? { [TTL_HEADER]: String(ttl) } : {}) };
}

function accessToken(response, what) {
  if (response.status !== 200) {
    throw new Error(`${what}: token endpoint answered ${response.status}: ${response.body}`);
  }
  return JSON.parse(response.body).access_token;
}

async function clientToken(alg, ttl) {
  const basic = Buffer.from(
    `${encodeURIComponent(SERVICE_CLIENT)}:${encodeURIComponent(SERVICE_SECRET)}`,
  ).toString('base64');
  const response = await self('POST', '/token', {
    headers: { authorization: `Basic ${basic}`, ...tokenHeaders(alg, ttl) },
    form: { grant_type: 'client_credentials', resource: AUDIENCE, scope: API_SCOPE },
  });
  return accessToken(response, 'client credentials');
}

// The authorization code flow with PKCE, as a browser and the public client would run it:
// GET /auth, the login and consent interactions (POSTed to /interaction/<uid>, answered
// below), back to /auth, the code from the redirect, then the code exchanged at /token.
async function userToken(account, alg, ttl) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const state = crypto.randomBytes(8).toString('hex');
  const cookies = new Map();
  const keepCookies = (headers) => {
    for (const line of headers['set-cookie'] ?? []) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) cookies.delete(name);
      else cookies.set(name, value);
    }
  };
  const cookieHeader = () => [...cookies].map(([n, v]) => `${n}=${v}`).join('; ');

  let response = await self('GET', `/auth?${new URLSearchParams({
    client_id: USER_CLIENT,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope: `openid profile ${API_SCOPE}`,
    resource: AUDIENCE,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  })}`);
  for (let step = 0; step < 10; step += 1) {
    keepCookies(response.headers);
    if (![302, 303].includes(response.status)) {
      throw new Error(`authorization flow: ${response.status}: ${response.body}`);
    }
    const location = new URL(response.headers.location, origin);
    if (location.href.startsWith(REDIRECT_URI)) {
      const error = location.searchParams.get('error');
      if (error) {
        throw new Error(`authorization flow: ${error}: ${location.searchParams.get('error_description')}`);
      }
      if (location.searchParams.get('state') !== state) throw new Error('state mismatch');
      const code = location.searchParams.get('code');
      response = await self('POST', '/token', {
        headers: tokenHeaders(alg, ttl),
        form: {
          grant_type: 'authorization_code',
          client_id: USER_CLIENT,
          code,
          code_verifier: verifier,
          redirect_uri: REDIRECT_URI,
          resource: AUDIENCE,
        },
      });
      return accessToken(response, 'authorization code');
    }
    const path = `${location.pathname}${location.search}`;
    if (location.pathname.startsWith('/interaction/')) {
      // The "browser" submits the login form (and then the consent form) as `account`.
      response = await self('POST', path, {
        headers: { cookie: cookieHeader() },
        form: { account },
      });
    } else {
      response = await self('GET', path, { headers: { cookie: cookieHeader() } });
    }
  }
  throw new Error('authorization flow: too many redirects');
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function html(res, status, title, body) {
  const text = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>
<body><main>
<h1>${escapeHtml(title)}</h1>
${body}
</main></body></html>
`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    // No form-action: browsers hold a form submission's redirects to it, and the last
    // interaction's POST ends in a redirect to the client's callback, on another origin.
    'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  });
  res.end(text);
}

// The page of an interaction, for a browser: a form that POSTs to the same path.
async function interactionPage(provider, req, res) {
  const { uid, prompt, params } = await provider.interactionDetails(req, res);
  const action = `/interaction/${encodeURIComponent(uid)}`;
  const client = escapeHtml(params.client_id);
  if (prompt.name === 'login') {
    return html(res, 200, 'Sign in', `<p>Sign in to continue to ${client}.</p>
<form method="post" action="${action}">
<label>Account <input type="text" name="account" autocomplete="username" autofocus required></label>
<button type="submit">Sign in</button>
</form>`);
  }
  if (prompt.name === 'consent') {
    return html(res, 200, 'Authorize', `<p>${client} asks for your profile.</p>
<form method="post" action="${action}">
<button type="submit">Continue</button>
</form>`);
  }
  throw new Error(`unexpected prompt ${prompt.name}`);
}

// The login and consent pages of this provider, reduced to their form submission: login
// accepts any known account (no password: the tests are about tokens, not logins), consent
// grants everything the client asked for.
async function interaction(provider, req, res) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const form = new URLSearchParams(Buffer.concat(chunks).toString());
  const details = await provider.interactionDetails(req, res);
  const { prompt, params } = details;
  let result;
  if (prompt.name === 'login') {
    const account = form.get('account');
    if (!ACCOUNTS[account]) {
      result = { error: 'access_denied', error_description: `no account ${account}` };
    } else {
      result = { login: { accountId: account } };
    }
  } else if (prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    result = { consent: { grantId: await grant.save() } };
  } else {
    throw new Error(`unexpected prompt ${prompt.name}`);
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

// ---------------------------------------------------------------------------------------
// The HTTPS server

let provider;
let callback;
let keys = signingKeys();
let down = null; // null, 'reset' or '503'
const fetches = { jwks: 0, discovery: 0 };

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

async function control(req, res, url) {
  const method = req.method;
  const route = `${method} ${url.pathname}`;
  const alg = url.searchParams.get('alg') ?? 'RS256';
  const ttl = url.searchParams.get('ttl') ?? undefined;
  if (route.startsWith('POST /_test/token/') && !ALGS.has(alg)) {
    return json(res, 400, { error: `alg must be one of ${[...ALGS].join(', ')}` });
  }
  if (ttl !== undefined && !/^[1-9][0-9]*$/.test(ttl)) {
    return json(res, 400, { error: 'ttl must be a positive number of seconds' });
  }
  switch (route) {
    case 'POST /_test/token/client':
      return json(res, 200, { access_token: await clientToken(alg, ttl) });
    case 'POST /_test/token/user': {
      const account = url.searchParams.get('account');
      if (!ACCOUNTS[account]) return json(res, 400, { error: `unknown account ${account}` });
      return json(res, 200, { access_token: await userToken(account, alg, ttl) });
    }
    case 'POST /_test/rotate':
      keys = signingKeys();
      provider = newProvider(origin, keys);
      callback = provider.callback();
      return json(res, 200, { kids: keys.map((k) => k.kid) });
    case 'GET /_test/jwks_fetches':
      return json(res, 200, { count: fetches.jwks });
    case 'GET /_test/discovery_fetches':
      return json(res, 200, { count: fetches.discovery });
    case 'POST /_test/down': {
      const mode = url.searchParams.get('mode') ?? 'reset';
      if (!['reset', '503'].includes(mode)) return json(res, 400, { error: 'mode: reset or 503' });
      down = mode;
      return json(res, 200, { down: mode });
    }
    case 'POST /_test/up':
      down = null;
      return json(res, 200, { down: false });
    case 'POST /_test/clients': {
      const clientId = url.searchParams.get('client_id');
      const redirectUris = url.searchParams.getAll('redirect_uri');
      const secret = url.searchParams.get('client_secret') ?? undefined;
      if (!clientId || [SERVICE_CLIENT, USER_CLIENT].includes(clientId)) {
        return json(res, 400, { error: 'client_id must be given and not a built-in client' });
      }
      if (redirectUris.length === 0) {
        return json(res, 400, { error: 'at least one redirect_uri' });
      }
      const metadata = webClient(clientId, redirectUris, secret);
      try {
        await provider.Client.validate(metadata);
      } catch (err) {
        return json(res, 400, { error: String(err?.error_description ?? err?.message ?? err) });
      }
      registeredClients.set(clientId, metadata);
      return json(res, 200, { client_id: clientId, redirect_uris: redirectUris });
    }
    default:
      return json(res, 404, { error: `no control endpoint ${route}` });
  }
}

async function handle(req, res) {
  const url = new URL(req.url, 'https://127.0.0.1');
  if (url.pathname.startsWith('/_test/')) {
    return control(req, res, url);
  }
  const internal = req.headers['x-test-internal'] === INTERNAL;
  if (down && !internal) {
    if (down === '503') {
      return json(res, 503, { error: 'the test took the provider down' });
    }
    // The TCP connection under TLS, reset (RST) rather than closed.
    const tcp = req.socket._parent ?? req.socket;
    if (typeof tcp.resetAndDestroy === 'function') tcp.resetAndDestroy();
    req.socket.destroy();
    return undefined;
  }
  if (!internal) {
    if (url.pathname === '/jwks') fetches.jwks += 1;
    if (url.pathname === '/.well-known/openid-configuration') fetches.discovery += 1;
  }
  if (url.pathname.startsWith('/interaction/') && req.method === 'POST') {
    return interaction(provider, req, res);
  }
  if (url.pathname.startsWith('/interaction/') && req.method === 'GET') {
    return interactionPage(provider, req, res);
  }
  return callback(req, res);
}

const server = https.createServer({ cert: TLS_CERT, key: TLS_KEY }, (req, res) => {
  handle(req, res).catch((err) => {
    console.error(err);
    if (!res.headersSent) json(res, 500, { error: String(err?.message ?? err) });
    else res.destroy();
  });
});
server.keepAliveTimeout = 5000;
server.listen(PORT, '127.0.0.1');
await once(server, 'listening');
const { port } = server.address();
origin = `https://127.0.0.1:${port}`;
provider = newProvider(origin, keys);
callback = provider.callback();

process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
process.stdin.resume();

process.stdout.write(`listening ${origin}\n`);
