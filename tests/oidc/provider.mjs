// The OpenID provider of the end-to-end tests (npm oidc-provider), started by tests/src/idp.rs.
//
// Issuer http://127.0.0.1:PORT on a port the system chose (printed on start). Each person a
// test registers is a client-credentials client whose id is the user (`sub`); its tokens are
// JWT access tokens for the resource $IDP_RESOURCE (audience $IDP_AUDIENCE), carrying the
// person's `email`, `groups` and any extra claims as they are when the token is issued, so a
// test changes a person's groups at the IdP and the next token says so. Signing keys (RS256
// and ES256) are generated here at start and on rotation; the private halves never leave
// this process.
//
// Test-only routes beside the provider's own (JSON in and out):
//   PUT  /test/people/:id  {email, groups, claims?, alg?, ttl_s?} -> {client_id, client_secret}
//   POST /test/rotate      {keep_old, extra_es256?} -> {signing, published}: new keys in front
//                          (they sign from now on), the old ones still published if keep_old
//   GET  /test/stats       {jwks_requests}: how often the JWKS was fetched

import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';

// The package is installed outside the checkout, in $IDP_PACKAGES (the Makefile's
// oidc-provider target).
const installed = createRequire(`${process.env.IDP_PACKAGES}/`);
const { default: Provider } = await import(
  pathToFileURL(installed.resolve('oidc-provider')).href
);

const resource = process.env.IDP_RESOURCE;
const audience = process.env.IDP_AUDIENCE;
let issuer;
// A second resource server, so a test gets a real token minted for someone else.
const otherResource = process.env.IDP_OTHER_RESOURCE;
const otherAudience = process.env.IDP_OTHER_AUDIENCE;

const people = new Map();
let keys = [];
let generation = 0;
let jwksRequests = 0;
let handler;

function signingKey(alg) {
  generation += 1;
  const kid = `${alg.toLowerCase()}-${generation}`;
  const { privateKey } = alg === 'RS256'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

function clients() {
  return [...people.values()].map((person) => ({
    client_id: person.id,
    client_secret: person.secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_post',
  }));
}

// The provider reads its keys and clients once, so a change builds a new one; tokens the
// old one issued are self-contained JWTs and stay as valid as their keys.
function rebuild() {
  const provider = new Provider(issuer, {
    jwks: { keys },
    clients: clients(),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        getResourceServerInfo: (_ctx, indicator, client) => {
          const person = people.get(client.clientId);
          const known = {
            [resource]: audience,
            [otherResource]: otherAudience,
          };
          if (!(indicator in known)) {
            throw new Provider.errors.InvalidTarget();
          }
          return {
            scope: 'chat',
            audience: known[indicator],
            accessTokenTTL: person?.ttl_s ?? 3600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: person?.alg ?? 'ES256' } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
    },
    extraTokenClaims: (_ctx, token) => {
      const person = people.get(token.clientId);
      // The extra claims come last, so a test can also give `email` or `groups` odd shapes.
      return person && {
        email: person.email,
        groups: person.groups,
        ...person.claims,
      };
    },
  });
  handler = provider.callback();
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function rotate({ keep_old: keepOld, extra_es256: extra = 0 }) {
  const fresh = [signingKey('RS256'), signingKey('ES256')];
  for (let i = 0; i < extra; i += 1) fresh.push(signingKey('ES256'));
  keys = keepOld ? [...fresh, ...keys] : fresh;
  rebuild();
  return {
    signing: fresh.slice(0, 2).map((key) => key.kid),
    published: keys.map((key) => key.kid),
  };
}

async function testRoute(req, res) {
  const path = new URL(req.url, issuer).pathname;
  const body = await readJson(req);
  const person = path.match(/^\/test\/people\/([^/]+)$/);
  if (req.method === 'PUT' && person) {
    const id = decodeURIComponent(person[1]);
    const known = people.get(id);
    people.set(id, {
      id,
      secret: known?.secret ?? randomBytes(24).toString('base64url'),
      email: body.email,
      groups: body.groups ?? [],
      claims: body.claims ?? {},
      alg: body.alg,
      ttl_s: body.ttl_s,
    });
    if (!known) rebuild();
    return reply(res, 200, { client_id: id, client_secret: people.get(id).secret });
  }
  if (req.method === 'POST' && path === '/test/rotate') {
    return reply(res, 200, rotate(body));
  }
  if (req.method === 'GET' && path === '/test/stats') {
    return reply(res, 200, { jwks_requests: jwksRequests });
  }
  return reply(res, 404, { error: `no test route ${req.method} ${path}` });
}

const server = createServer((req, res) => {
  if (req.url.startsWith('/test/')) {
    testRoute(req, res).catch((err) => reply(res, 400, { error: String(err) }));
    return;
  }
  if (req.url.startsWith('/jwks')) jwksRequests += 1;
  handler(req, res);
});
// The issuer names the port, so the provider is built once the port is bound.
server.listen(0, '127.0.0.1', () => {
  issuer = `http://127.0.0.1:${server.address().port}`;
  rotate({ keep_old: false });
  // The harness waits for this line, then for discovery to answer.
  console.log(`oidc-provider listening on ${issuer}`);
});
