// Development only: when GATEHOUSE_ENCRYPTION_KEY or GATEHOUSE_COOKIE_KEYS is
// unset (production refuses to start then), generate them once into the data
// dir, readable by the owner only, and reuse them on every start so encrypted
// data and sessions survive restarts.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface StoredSecrets {
  encryptionKey: string;
  cookieKeys: string[];
}

export interface Secrets {
  encryptionKeys: Buffer[];
  cookieKeys: string[];
  /** Which variables were filled from generated values (for a warning). */
  generated: string[];
}

export function resolveSecrets(config: {
  dataDir: string;
  encryptionKeys: Buffer[] | undefined;
  cookieKeys: string[] | undefined;
}): Secrets {
  if (config.encryptionKeys && config.cookieKeys) {
    return { encryptionKeys: config.encryptionKeys, cookieKeys: config.cookieKeys, generated: [] };
  }
  const stored = loadOrCreate(config.dataDir);
  const generated: string[] = [];
  if (!config.encryptionKeys) generated.push('GATEHOUSE_ENCRYPTION_KEY');
  if (!config.cookieKeys) generated.push('GATEHOUSE_COOKIE_KEYS');
  return {
    encryptionKeys: config.encryptionKeys ?? [Buffer.from(stored.encryptionKey, 'base64')],
    cookieKeys: config.cookieKeys ?? stored.cookieKeys,
    generated,
  };
}

function loadOrCreate(dataDir: string): StoredSecrets {
  const file = join(dataDir, 'development-secrets.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as StoredSecrets;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const secrets: StoredSecrets = {
    encryptionKey: randomBytes(32).toString('base64'),
    cookieKeys: [randomBytes(32).toString('base64url')],
  };
  try {
    // 'wx': if another process created it meanwhile, use theirs.
    writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600, flag: 'wx' });
    return secrets;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return JSON.parse(readFileSync(file, 'utf8')) as StoredSecrets;
  }
}
