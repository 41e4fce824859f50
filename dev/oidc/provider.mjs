// The local stack's OpenID Connect provider (YARDLAB_AUTH=oidc): node-oidc-provider, an
// OpenID-certified server library, with the stack's accounts and a password login page.
//
//   node dev/oidc/provider.mjs <settings.json>
//
// The settings file is written by dev/stack.py into the state folder (0600): the issuer's port,
// the one client (the hub: its id, secret and callback URL), the cookie signing key and the
// accounts, whose passwords are kept as scrypt hashes.  The provider listens on 127.0.0.1 only.
// What is ours here is the account list and the login form; authorization, tokens, PKCE, ID
// tokens and userinfo are the library's.
import { generateKeyPairSync, randomBytes, scryptSync, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = settings.accounts;
const ISSUER = `http://127.0.0.1:${settings.port}`;
const SCRYPT = { N: 16384, r: 8, p: 1 };
const CLIENT_ORIGIN = new URL(settings.client.redirect_uri).origin;

/** Whether ``password`` is the account's (constant time; a missing account costs the same). */
function passwordMatches(name, password) {
  const account = Object.hasOwn(accounts, name) ? accounts[name] : null;
  const salt = Buffer.from(account ? account.salt : randomBytes(16).toString('hex'), 'hex');
  const expected = Buffer.from(account ? account.scrypt : randomBytes(32).toString('hex'), 'hex');
  const got = scryptSync(String(password), salt, expected.length, SCRYPT);
  return timingSafeEqual(got, expected) && account !== null;
}

// password guessing: an account with FAILURES_ALLOWED wrong passwords within FAILURE_WINDOW_MS
// is refused (429) until the oldest of them is that old
const FAILURES_ALLOWED = 10;
const FAILURE_WINDOW_MS = 5 * 60 * 1000;
const failures = new Map();

function recentFailures(name) {
  const now = Date.now();
  const recent = (failures.get(name) || []).filter((t) => now - t < FAILURE_WINDOW_MS);
  if (recent.length) {
    failures.set(name, recent);
  } else {
    failures.delete(name);
  }
  return recent;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function loginPage(uid, { name = '', error = '' } = {}) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>yardlab sign-in</title></head>
<body>
<h1>yardlab sign-in</h1>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
  <label>User name <input name="username" value="${escapeHtml(name)}" autofocus required></label>
  <label>Password <input name="password" type="password" required></label>
  <button type="submit">Sign in</button>
</form>
</body></html>`;
}

async function formBody(req, limit = 8192) {
  let body = '';
  for await (const chunk of req) {
    body += chunk;
    if (body.length > limit) {
      throw new Error('form too large');
    }
  }
  return new URLSearchParams(body);
}

// a signing key of its own each start (the hub reads ID token claims over the back channel;
// nothing outlives the provider)
const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: settings.client.id,
    client_secret: settings.client.secret,
    redirect_uris: [settings.client.redirect_uri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: ['openid', 'profile', 'groups'],
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], groups: ['groups'] },
  async findAccount(_ctx, id) {
    if (!Object.hasOwn(accounts, id)) {
      return undefined;
    }
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, name: id, groups: accounts[id].groups };
      },
    };
  },
  // the stack's own hub is a first-party client: its grant is made without a consent screen
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const grant = await ctx.oidc.provider.Grant.find(grantId);
      if (grant) {
        return grant;
      }
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile groups');
    await grant.save();
    return grant;
  },
  // the library's development login accepts any name without a password: ours checks them
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  cookies: { keys: [settings.cookie_key] },
  jwks: { keys: [{ ...signingKey, use: 'sig', alg: 'RS256', kid: randomBytes(8).toString('hex') }] },
  ttl: {
    Session: 8 * 3600, Grant: 8 * 3600, Interaction: 600, AuthorizationCode: 60, AccessToken: 3600, IdToken: 3600,
  },
});

const INTERACTION = /^\/interaction\/([\w-]{1,64})(\/login)?$/;

provider.use(async (ctx, next) => {
  const match = INTERACTION.exec(ctx.path);
  if (!match) {
    return next();
  }
  ctx.set('Cache-Control', 'no-store');
  // form-action covers the redirects after the form too: on to the hub's callback
  ctx.set('Content-Security-Policy', `default-src 'none'; form-action 'self' ${CLIENT_ORIGIN}`);
  let details;
  try {
    details = await provider.interactionDetails(ctx.req, ctx.res);
  } catch {
    ctx.status = 400;
    ctx.body = 'This sign-in has expired or was not started here; start again from the hub.';
    return undefined;
  }
  if (details.uid !== match[1]) {
    ctx.status = 400;
    ctx.body = 'This sign-in does not belong to this browser; start again from the hub.';
    return undefined;
  }
  if (!match[2] && ctx.method === 'GET') {
    ctx.type = 'html';
    ctx.body = loginPage(details.uid);
    return undefined;
  }
  if (!match[2] || ctx.method !== 'POST' || details.prompt.name !== 'login') {
    ctx.status = 405;
    ctx.body = 'Sign in with the form.';
    return undefined;
  }
  let form;
  try {
    form = await formBody(ctx.req);
  } catch {
    ctx.status = 413;
    ctx.body = 'The form is too large.';
    return undefined;
  }
  const name = (form.get('username') || '').slice(0, 256);
  if (recentFailures(name).length >= FAILURES_ALLOWED) {
    ctx.status = 429;
    ctx.type = 'html';
    ctx.body = loginPage(details.uid, { name, error: 'Too many wrong passwords for this user; try again in a few minutes.' });
    return undefined;
  }
  if (!passwordMatches(name, form.get('password') || '')) {
    if (failures.size > 10000) {
      failures.clear();  // bounded memory, whatever names are tried
    }
    failures.set(name, [...recentFailures(name), Date.now()]);
    ctx.status = 401;
    ctx.type = 'html';
    ctx.body = loginPage(details.uid, { name, error: 'Wrong user name or password.' });
    return undefined;
  }
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, { login: { accountId: name } },
    { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(returnTo);
  return undefined;
});

provider.listen(settings.port, '127.0.0.1', () => {
  console.log(`oidc provider ${ISSUER} ready (${Object.keys(accounts).length} accounts)`);
});
