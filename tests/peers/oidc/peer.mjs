// Local OAuth2 / OpenID Connect authorization server (oidc-provider) used by the
// Junction test suite as a strict, certified stand-in for a SaaS provider.
//
// Protocol with the spawning process:
//   * listens on 127.0.0.1:$PORT (default 0 = ephemeral port);
//   * prints exactly one line on stdout when ready: `READY http://127.0.0.1:<port>`;
//   * everything else (logs, warnings) goes to stderr;
//   * exits when its stdin reaches EOF, so it dies with the test process.
//
// Environment:
//   PORT      listen port (default 0)
//   CLIENTS   JSON array of {client_id, client_secret, redirect_uris, ...}
//             (default: junction-test / junction-test-secret,
//              redirect_uris ["https://app.example.test/oauth/callback"])
//   ROTATE    "1" rotates refresh tokens (Google/Microsoft-like); reusing a rotated
//             refresh token gives invalid_grant and revokes the whole grant.
//             Default: refresh tokens are not rotated (Salesforce-like).
//   AT_TTL    access token lifetime in seconds (default 3600)
//   RT_TTL    refresh token lifetime in seconds (default 1209600)
//   CODE_TTL  authorization code lifetime in seconds (default 60, oidc-provider's); a
//             benchmark that issues thousands of codes before exchanging them sets more
//   EXIT_ON_STDIN_EOF  "0" keeps the server running when stdin closes (manual use)
//
// Endpoints: /.well-known/openid-configuration, /auth, /token, /token/revocation,
// /me (userinfo), /jwks, plus /interaction/:uid (automatic login + consent) and the
// bearer-protected "REST API": GET /api/me, POST /api/echo.
// `login_hint=deny` on /auth makes the user refuse: redirect with error=access_denied.
// GET /__stats counts refresh_token grants: {"refreshGrants": <succeeded>,
// "refreshFailures": <refused>, "refreshErrors": {"invalid_grant": n, ...}}, so tests can
// prove a refresh token was spent exactly once.
// Successful /token responses carry a non-standard `instance_url` = `<issuer>/api`.

import express from 'express';
import Provider from 'oidc-provider';

// Keep stdout for the READY line only: oidc-provider prints notices with console.info.
for (const level of ['log', 'info', 'debug']) console[level] = (...args) => console.error(...args);

const PORT = Number(process.env.PORT || 0);
const AT_TTL = Number(process.env.AT_TTL || 3600);
const RT_TTL = Number(process.env.RT_TTL || 1209600);
const CODE_TTL = Number(process.env.CODE_TTL || 60);
const ROTATE = process.env.ROTATE === '1';

const DEFAULT_CLIENTS = [{
  client_id: 'junction-test',
  client_secret: 'junction-test-secret',
  redirect_uris: ['https://app.example.test/oauth/callback'],
}];
const CLIENTS = (process.env.CLIENTS ? JSON.parse(process.env.CLIENTS) : DEFAULT_CLIENTS).map((c) => ({
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_post', // HTTP Basic is accepted as well
  ...c,
}));

const SCOPES = ['openid', 'offline_access', 'profile', 'email', 'read_feed', 'write_feed', 'full', 'refresh_token', 'api'];

if (process.env.EXIT_ON_STDIN_EOF !== '0') {
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

// The built-in development adapter is an LRU (1000 entries) that silently evicts
// tokens and grants under load; this one is unbounded.
const store = new Map();
class MapAdapter {
  constructor(name) { this.name = name; }
  key(id) { return `${this.name}:${id}`; }
  async upsert(id, payload, expiresIn) {
    store.set(this.key(id), { payload, exp: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    if (payload.grantId) {
      const k = `grant:${payload.grantId}`;
      const set = store.get(k) || new Set();
      set.add(this.key(id));
      store.set(k, set);
    }
    if (payload.uid) store.set(`uid:${this.name}:${payload.uid}`, id);
    if (payload.userCode) store.set(`uc:${payload.userCode}`, id);
  }
  async find(id) {
    const e = store.get(this.key(id));
    return e && e.exp >= Date.now() ? e.payload : undefined;
  }
  async findByUid(uid) { const id = store.get(`uid:${this.name}:${uid}`); return id && this.find(id); }
  async findByUserCode(uc) { const id = store.get(`uc:${uc}`); return id && this.find(id); }
  async consume(id) { const e = store.get(this.key(id)); if (e) e.payload.consumed = Math.floor(Date.now() / 1000); }
  async destroy(id) { store.delete(this.key(id)); }
  async revokeByGrantId(grantId) {
    const k = `grant:${grantId}`;
    for (const t of store.get(k) || []) store.delete(t);
    store.delete(k);
  }
}

let provider; // constructed once the real port (and so the issuer URL) is known

const app = express();

const stats = { refreshGrants: 0, refreshFailures: 0, refreshErrors: {} };
app.get('/__stats', (req, res) => res.json(stats));

// Automatic login + consent. login_hint=deny: the user refuses.
app.get('/interaction/:uid', async (req, res, next) => {
  try {
    const { params, session, grantId } = await provider.interactionDetails(req, res);
    if (params.login_hint === 'deny') {
      return await provider.interactionFinished(req, res,
        { error: 'access_denied', error_description: 'the user denied the request' },
        { mergeWithLastSubmission: false });
    }
    const accountId = session?.accountId || params.login_hint || 'user1';
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId, clientId: params.client_id });
    grant.addOIDCScope(params.scope || 'openid');
    const newGrantId = await grant.save();
    return await provider.interactionFinished(req, res,
      { login: { accountId }, consent: { grantId: newGrantId } },
      { mergeWithLastSubmission: false });
  } catch (e) { return next(e); }
});

// The provider's "REST API", protected by its own access tokens.
async function bearer(req, res, next) {
  try {
    const m = /^Bearer (.+)$/i.exec(req.get('authorization') || '');
    const at = m && await provider.AccessToken.find(m[1]);
    if (!at || at.isExpired) {
      return res.status(401).set('WWW-Authenticate', 'Bearer error="invalid_token"').json({ error: 'invalid_token' });
    }
    req.at = at;
    return next();
  } catch (e) { return next(e); }
}
app.get('/api/me', bearer, (req, res) => res.json({ id: req.at.accountId, scope: req.at.scope, client: req.at.clientId }));
app.post('/api/echo', bearer, express.json(), (req, res) => res.status(201).json({ got: req.body, by: req.at.accountId }));

const server = app.listen(PORT, '127.0.0.1');
server.on('error', (e) => { console.error('listen failed:', e); process.exit(1); });
server.on('listening', () => {
  const { port } = server.address();
  const ISSUER = `http://127.0.0.1:${port}`;
  provider = new Provider(ISSUER, {
    adapter: MapAdapter,
    clients: CLIENTS,
    scopes: SCOPES,
    claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
    findAccount: async (ctx, id) => ({
      accountId: id,
      async claims() { return { sub: id, name: `User ${id}`, email: `${id}@example.test` }; },
    }),
    // Default: a refresh token only for scope offline_access (+ prompt=consent). Always issue one.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => ROTATE,
    ttl: {
      AccessToken: AT_TTL, AuthorizationCode: CODE_TTL, IdToken: 3600, RefreshToken: RT_TTL,
      Interaction: 600, Session: 3600, Grant: RT_TTL,
    },
    features: { devInteractions: { enabled: false }, revocation: { enabled: true } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: ['junction-test-cookie-key-1'] },
    pkce: { required: () => false },
  });
  // Non-standard token response field, as Salesforce sends it.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.oidc?.params?.grant_type === 'refresh_token') {
      if (ctx.status === 200) {
        stats.refreshGrants += 1;
      } else {
        stats.refreshFailures += 1;
        const error = (ctx.body && ctx.body.error) || String(ctx.status);
        stats.refreshErrors[error] = (stats.refreshErrors[error] || 0) + 1;
      }
    }
    if (ctx.path === '/token' && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
      ctx.body.instance_url = `${ISSUER}/api`;
    }
  });
  app.use(provider.callback());
  process.stdout.write(`READY ${ISSUER}\n`);
});
