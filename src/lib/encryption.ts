// Secrets at rest: AES-256-GCM under a key ring. The first key encrypts, every
// key decrypts, so an operator can add a new key, run `gatehouse rekey`, then
// drop the old one. Ciphertexts name their key by a short fingerprint, so
// decryption never has to try every key.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const VERSION = 'g1';
const IV_BYTES = 12; // 96-bit nonce: GCM's recommended size
const TAG_BYTES = 16;

export class KeyRing {
  readonly #keys: ReadonlyMap<string, Buffer>;
  readonly #primaryId: string;

  constructor(keys: readonly Buffer[]) {
    if (keys.length === 0) throw new Error('the key ring needs at least one key');
    const map = new Map<string, Buffer>();
    for (const key of keys) {
      if (key.length !== 32) throw new Error('encryption keys must be 32 bytes');
      map.set(fingerprint(key), key);
    }
    this.#keys = map;
    this.#primaryId = fingerprint(keys[0]!);
  }

  /** Encrypts under the first key. `context` binds the ciphertext to its use (AAD). */
  encrypt(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#keys.get(this.#primaryId)!, iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return [VERSION, this.#primaryId, iv.toString('base64url'), body.toString('base64url')].join('.');
  }

  decrypt(ciphertext: string, context: string): string {
    const [version, keyId, ivText, bodyText] = ciphertext.split('.');
    if (version !== VERSION || !keyId || !ivText || !bodyText) throw new Error('not a Gatehouse ciphertext');
    const key = this.#keys.get(keyId);
    if (!key) throw new Error(`no configured encryption key matches ciphertext key ${keyId}`);
    const body = Buffer.from(bodyText, 'base64url');
    const iv = Buffer.from(ivText, 'base64url');
    // A fixed tag length: GCM would otherwise accept truncated (forgeable) tags.
    if (iv.length !== IV_BYTES || body.length < TAG_BYTES) throw new Error('not a Gatehouse ciphertext');
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    return Buffer.concat([
      decipher.update(body.subarray(0, body.length - TAG_BYTES)),
      decipher.final(),
    ]).toString('utf8');
  }

  /** True when the value is already encrypted under the first key. */
  isCurrent(ciphertext: string): boolean {
    return ciphertext.split('.')[1] === this.#primaryId;
  }
}

function fingerprint(key: Buffer): string {
  return createHash('sha256').update(key).digest('base64url').slice(0, 8);
}
