// /account/mfa: a signed-in user adds a second factor on their own.
import { generate } from 'otplib';
import t from 'tap';
import { startTestServer } from '../helpers/server.ts';
import { Agent, csrfOf, discover, signIn } from '../helpers/sign-in.ts';

const PASSWORD = 'correct horse battery staple';
const REDIRECT = 'https://app.example.com/callback';

t.test('/account/mfa', async (t) => {
  const server = await startTestServer(t);
  const { issuer, gatehouse } = server;
  const user = await gatehouse.users.create(
    { email: 'dana@example.com', password: PASSWORD },
    { actor: 'test' },
  );
  const client = await gatehouse.clients.create(
    { name: 'Portal', grants: ['authorization_code'], redirect_uris: [REDIRECT], first_party: true },
    { actor: 'test' },
  );
  const config = await discover(issuer, client.client.client_id, client.client_secret);

  await t.test('without a session the page says to sign in first', async (t) => {
    const response = await new Agent().request(`${issuer}/account/mfa`);
    t.equal(response.status, 401);
    t.match(response.body, /Not signed in/);
  });

  await t.test(
    'a signed-in user enrols: secret and QR shown, a code turns it on, recovery codes shown once',
    async (t) => {
      const { agent } = await signIn({
        issuer,
        config,
        redirectUri: REDIRECT,
        email: 'dana@example.com',
        password: PASSWORD,
      });
      const page = await agent.request(`${issuer}/account/mfa`);
      t.equal(page.status, 200);
      t.equal(page.headers.get('cache-control'), 'no-store');
      const secret = /id="totp-secret"[^>]*>([A-Z2-7]+)</.exec(page.body)?.[1];
      t.ok(secret, 'the secret is in #totp-secret');
      t.match(page.body, /<svg/, 'and a QR code');
      const pending = /name="pending" value="([^"]+)"/.exec(page.body)?.[1] ?? '';
      const csrf = csrfOf(page.body);

      const forged = await agent.request(`${issuer}/account/mfa`, {
        form: { csrf: 'nope', code: '000000', pending },
      });
      t.equal(forged.status, 403, 'a form without the right CSRF token is refused');
      const wrong = await agent.request(`${issuer}/account/mfa`, { form: { csrf, code: '000000', pending } });
      t.equal(wrong.status, 401, 'a wrong code');
      t.match(wrong.body, new RegExp(`id="totp-secret"[^>]*>${secret}<`), 'shows the same secret again');
      t.notOk(await gatehouse.mfa.hasFactor(user.id));

      const code = await generate({ secret: secret! });
      const done = await agent.request(`${issuer}/account/mfa`, { form: { csrf, code, pending } });
      t.equal(done.status, 200);
      const codes = [...done.body.matchAll(/<li>([0-9A-Z]{5}-[0-9A-Z]{5})<\/li>/g)].map((match) => match[1]);
      t.equal(codes.length, 10, 'ten recovery codes in #recovery-codes');
      t.match(done.body, /id="recovery-codes"/);
      t.ok(await gatehouse.mfa.hasFactor(user.id), 'the factor is on');
    },
  );
});
