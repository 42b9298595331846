// Pushed authorization requests (RFC 9126) and DPoP-bound access tokens
// (RFC 9449), with openid-client as the relying party against a listening
// Gatehouse, and the browserless Agent on the sign-in pages.
import { createRemoteJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import t from 'tap';
import { startTestServer } from '../helpers/server.ts';
import { Agent, csrfOf, discover, formActionOf, signIn } from '../helpers/sign-in.ts';

const REDIRECT = 'https://rp.example.com/callback';
const PASSWORD = 'correct horse battery staple';
const EMAIL = 'par.dpop@example.com';

/** Runs the sign-in pages from an authorization URL already built, to the client's redirect_uri. */
async function signInFrom(
  url: URL,
  options: { issuer: string; email: string; password: string; agent?: Agent },
): Promise<{ callback: URL; sawConsent: boolean }> {
  const agent = options.agent ?? new Agent();
  let step = await agent.follow(await agent.request(url.toString()), options.issuer);
  let sawConsent = false;
  for (let pages = 0; pages < 5 && step.status < 300; pages++) {
    const action = new URL(formActionOf(step.body), options.issuer).toString();
    if (action.endsWith('/login')) {
      step = await agent.request(action, {
        form: { csrf: csrfOf(step.body), username: options.email, password: options.password },
      });
    } else if (action.endsWith('/confirm')) {
      sawConsent = true;
      step = await agent.request(action, { form: { csrf: csrfOf(step.body) } });
    } else {
      throw new Error(`unexpected page with form ${action}`);
    }
    if (step.status >= 400)
      throw new Error(`sign-in page answered ${step.status}: ${step.body.slice(0, 300)}`);
    step = await agent.follow(step, options.issuer);
  }
  if (!step.location) throw new Error(`sign-in ended on a page (${step.status}): ${step.body.slice(0, 300)}`);
  return { callback: new URL(step.location), sawConsent };
}

t.test('PAR and DPoP', async (t) => {
  const server = await startTestServer(t);
  const { issuer, gatehouse } = server;
  const user = await gatehouse.users.create(
    { email: EMAIL, name: 'Pat Dee', password: PASSWORD },
    { actor: 'test' },
  );
  const rp = await gatehouse.clients.create(
    {
      name: 'Third-Party RP',
      grants: ['authorization_code', 'refresh_token'],
      redirect_uris: [REDIRECT],
      scope: 'openid profile email offline_access',
    },
    { actor: 'test' },
  );
  const clientId = rp.client.client_id;
  const config = await discover(issuer, clientId, rp.client_secret);
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));

  await t.test('a pushed authorization request signs in and its code is exchanged', async (t) => {
    const metadata = config.serverMetadata();
    t.equal(metadata.pushed_authorization_request_endpoint, `${issuer}/request`, 'PAR endpoint advertised');

    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = await oidc.buildAuthorizationUrlWithPAR(config, {
      redirect_uri: REDIRECT,
      scope: 'openid profile email',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      prompt: 'consent',
    });
    t.equal(url.origin + url.pathname, `${issuer}/auth`, 'the browser goes to the authorization endpoint');
    t.match(url.searchParams.get('request_uri'), /^urn:ietf:params:oauth:request_uri:/, 'with a request_uri');
    t.equal(url.searchParams.get('client_id'), clientId);
    t.same(
      [...url.searchParams.keys()].sort(),
      ['client_id', 'request_uri'],
      'nothing else of the request is in the front channel',
    );

    const flow = await signInFrom(url, { issuer, email: EMAIL, password: PASSWORD });
    t.ok(flow.sawConsent, 'prompt=consent from the pushed request is honoured');
    t.equal(flow.callback.origin + flow.callback.pathname, REDIRECT, 'back at the redirect_uri');
    t.equal(flow.callback.searchParams.get('state'), state, 'state from the pushed request round-trips');

    const tokens = await oidc.authorizationCodeGrant(config, flow.callback, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
    });
    const { payload } = await jwtVerify(tokens.id_token!, jwks, { issuer, audience: clientId });
    t.equal(payload.sub, user.id, 'sub is the user id');
    t.equal(payload.nonce, nonce, 'nonce from the pushed request');
    t.equal(payload.email, EMAIL);
    t.equal(payload.name, 'Pat Dee');
    t.same(payload.amr, ['pwd']);
    t.equal(payload.acr, 'urn:gatehouse:loa:1');

    // A request_uri is single-use.
    const again = await new Agent().request(url.toString());
    const refused =
      again.status === 400 ||
      (again.status === 303 && new URL(again.location!).searchParams.get('error') === 'invalid_request_uri');
    t.ok(refused, `a used request_uri is not accepted again (${again.status})`);
  });

  await t.test('DPoP binds the access token to the key; userinfo wants the proof', async (t) => {
    const metadata = config.serverMetadata();
    t.ok(metadata.dpop_signing_alg_values_supported?.includes('ES256'), 'DPoP with ES256 advertised');
    const flow = await signIn({
      issuer,
      config,
      redirectUri: REDIRECT,
      email: EMAIL,
      password: PASSWORD,
      scope: 'openid profile email',
      params: { prompt: 'consent' },
    });
    t.ok(flow.sawConsent);
    const keyPair = await oidc.randomDPoPKeyPair();
    const DPoP = oidc.getDPoPHandle(config, keyPair);
    const tokens = await oidc.authorizationCodeGrant(
      config,
      flow.callback,
      { pkceCodeVerifier: flow.verifier, expectedState: flow.state, expectedNonce: flow.nonce },
      undefined,
      { DPoP },
    );
    t.equal(tokens.token_type.toLowerCase(), 'dpop', `token_type is DPoP (${tokens.token_type})`);
    t.equal(tokens.claims()?.sub, user.id);

    const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, user.id, { DPoP });
    t.match(userinfo, { sub: user.id, email: EMAIL, name: 'Pat Dee' }, 'userinfo answers with the proof');

    const userinfoEndpoint = metadata.userinfo_endpoint!;
    const bearer = await fetch(userinfoEndpoint, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    });
    t.equal(bearer.status, 401, 'the same token as a plain Bearer token is refused');
    t.match(bearer.headers.get('www-authenticate') ?? '', /invalid_token|DPoP/i);

    const otherKey = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair());
    await t.rejects(
      oidc.fetchUserInfo(config, tokens.access_token, user.id, { DPoP: otherKey }),
      'a proof from another key is refused',
    );
  });
});
