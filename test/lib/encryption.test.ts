// Secrets at rest: AES-256-GCM under a key ring whose first key encrypts and
// every key decrypts, each ciphertext bound to its use by a context (AAD).
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { KeyRing } from '../../src/lib/encryption.ts';

const OLD_KEY = randomBytes(32);
const NEW_KEY = randomBytes(32);
const SECRET = 'JBSWY3DPEHPK3PXP-totp-seed';
const CONTEXT = 'users.totp_secret:42';

/** Flips one bit of byte `index` of the dot-separated part `part` (base64url). */
function tamper(ciphertext: string, part: number, index: number): string {
  const parts = ciphertext.split('.');
  const bytes = Buffer.from(parts[part]!, 'base64url');
  bytes[index] = bytes[index]! ^ 0x01;
  parts[part] = bytes.toString('base64url');
  return parts.join('.');
}

t.test('round trip', async (t) => {
  const ring = new KeyRing([NEW_KEY]);
  for (const plaintext of [SECRET, '', 'ünïcödé ✓ 🔑', 'x'.repeat(10_000)]) {
    t.equal(ring.decrypt(ring.encrypt(plaintext, CONTEXT), CONTEXT), plaintext);
  }
});

t.test('every encryption differs (random IV) and never shows the plaintext', async (t) => {
  const ring = new KeyRing([NEW_KEY]);
  const ciphertexts = Array.from({ length: 20 }, () => ring.encrypt(SECRET, CONTEXT));
  t.equal(new Set(ciphertexts).size, ciphertexts.length, 'no two ciphertexts are equal');
  t.equal(new Set(ciphertexts.map((c) => c.split('.')[2])).size, ciphertexts.length, 'no IV repeats');
  const encodings = [
    SECRET,
    Buffer.from(SECRET).toString('base64'),
    Buffer.from(SECRET).toString('base64url'),
    Buffer.from(SECRET).toString('hex'),
  ];
  for (const ciphertext of ciphertexts) {
    for (const encoding of encodings) t.notOk(ciphertext.includes(encoding));
    t.notOk(ciphertext.includes('totp'), 'not even a fragment of the plaintext');
  }
});

t.test('a ciphertext only decrypts in its own context', async (t) => {
  const ring = new KeyRing([NEW_KEY]);
  const ciphertext = ring.encrypt(SECRET, CONTEXT);
  t.throws(() => ring.decrypt(ciphertext, 'users.totp_secret:43'), 'another row');
  t.throws(() => ring.decrypt(ciphertext, 'clients.secret:42'), 'another column');
  t.throws(() => ring.decrypt(ciphertext, ''), 'no context');
  t.equal(ring.decrypt(ciphertext, CONTEXT), SECRET);
});

t.test('any tampered byte is detected', async (t) => {
  const ring = new KeyRing([NEW_KEY]);
  const ciphertext = ring.encrypt(SECRET, CONTEXT);
  const bodyLength = Buffer.from(ciphertext.split('.')[3]!, 'base64url').length;
  t.throws(() => ring.decrypt(tamper(ciphertext, 3, 0), CONTEXT), 'first ciphertext byte');
  t.throws(() => ring.decrypt(tamper(ciphertext, 3, bodyLength - 20), CONTEXT), 'last ciphertext byte');
  t.throws(() => ring.decrypt(tamper(ciphertext, 3, bodyLength - 1), CONTEXT), 'authentication tag');
  t.throws(() => ring.decrypt(tamper(ciphertext, 2, 0), CONTEXT), 'IV');
  t.throws(() => ring.decrypt(ciphertext.slice(0, -4), CONTEXT), 'truncated');
  t.throws(() => ring.decrypt(`g2.${ciphertext.slice(3)}`, CONTEXT), /not a Gatehouse ciphertext/, 'version');
  t.throws(() => ring.decrypt('plain text', CONTEXT), /not a Gatehouse ciphertext/);
});

t.test('rotation: a ring [new, old] reads old values and writes under the new key', async (t) => {
  const oldRing = new KeyRing([OLD_KEY]);
  const rotated = new KeyRing([NEW_KEY, OLD_KEY]);
  const legacy = oldRing.encrypt(SECRET, CONTEXT);
  t.equal(rotated.decrypt(legacy, CONTEXT), SECRET, 'decrypts a value made under the old key');
  t.notOk(rotated.isCurrent(legacy), 'the old value needs re-encryption');
  t.ok(oldRing.isCurrent(legacy));

  const fresh = rotated.encrypt(SECRET, CONTEXT);
  t.ok(rotated.isCurrent(fresh), 'new values are under the new key');
  t.equal(new KeyRing([NEW_KEY]).decrypt(fresh, CONTEXT), SECRET, 'the new key alone decrypts them');
  t.throws(() => oldRing.decrypt(fresh, CONTEXT), 'the old key alone cannot');
});

t.test('a ring without the key says so', async (t) => {
  const ciphertext = new KeyRing([OLD_KEY]).encrypt(SECRET, CONTEXT);
  const keyId = ciphertext.split('.')[1]!;
  t.throws(() => new KeyRing([NEW_KEY]).decrypt(ciphertext, CONTEXT), {
    message: `no configured encryption key matches ciphertext key ${keyId}`,
  });
  t.notOk(keyId.length > 8 || OLD_KEY.toString('base64url').includes(keyId), 'the key id is no key material');
});

t.test('the constructor refuses bad keys and an empty ring', async (t) => {
  t.throws(() => new KeyRing([]), /at least one key/);
  t.throws(() => new KeyRing([randomBytes(16)]), /32 bytes/);
  t.throws(() => new KeyRing([randomBytes(33)]), /32 bytes/);
  t.throws(() => new KeyRing([NEW_KEY, randomBytes(31)]), /32 bytes/, 'every key is checked');
  t.doesNotThrow(() => new KeyRing([NEW_KEY, OLD_KEY]));
});
