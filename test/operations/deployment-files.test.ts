// What can be checked of the container files without a Docker engine: the
// compose file parses and has the shape the README describes, the Dockerfile
// keeps its promises, and every variable the app reads is in .env.example.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { SERVE_NODE_FLAGS } from '../../src/cli/node-flags.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  ports?: string[];
  env_file?: string | string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] | string };
  volumes?: string[];
}

t.test(
  'docker-compose.yml: Gatehouse, PostgreSQL 16+ with a volume and health check, Redis; one published port',
  async (t) => {
    const compose = parse(read('docker-compose.yml')) as {
      services: Record<string, Service>;
      volumes: Record<string, unknown>;
    };
    t.same(Object.keys(compose.services).sort(), ['gatehouse', 'postgres', 'redis']);
    const { gatehouse, postgres, redis } = compose.services as Record<string, Service>;
    t.ok(gatehouse?.build, 'Gatehouse is built from the Dockerfile');
    t.same(gatehouse?.ports, ['3000:3000'], "only Gatehouse's port is published");
    t.notOk(postgres?.ports, 'PostgreSQL is not published');
    t.notOk(redis?.ports, 'Redis is not published');
    t.equal(gatehouse?.env_file, '.env', 'secrets come from an env file');
    t.match(
      gatehouse?.environment?.DATABASE_URL,
      /^postgresql:\/\/gatehouse:\$\{POSTGRES_PASSWORD:\?[^}]*\}@postgres:5432\/gatehouse$/,
    );
    t.equal(gatehouse?.environment?.REDIS_URL, 'redis://redis:6379');
    t.equal(gatehouse?.depends_on?.postgres?.condition, 'service_healthy', 'waits for a healthy database');
    const major = Number(/^postgres:(\d+)/.exec(postgres?.image ?? '')?.[1]);
    t.ok(major >= 16, `PostgreSQL ${major} is 16 or newer`);
    t.ok(postgres?.healthcheck, 'PostgreSQL has a health check');
    t.ok(
      postgres?.volumes?.some((volume) => volume.startsWith('postgres-data:')),
      'on a named volume',
    );
    t.ok('postgres-data' in compose.volumes);
  },
);

t.test('Dockerfile: multi-stage, non-root, health check, gatehouse serve', async (t) => {
  const dockerfile = read('Dockerfile');
  const stages = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((match) => match[1]);
  t.equal(stages.length, 2, 'a build stage and a runtime stage');
  for (const image of stages) t.match(image, /^node:(2[2-9]|[3-9]\d)/, 'on Node 22 or newer');
  t.match(dockerfile, /npm prune --omit=dev/, 'no dev dependencies in the runtime');
  t.match(dockerfile, /^USER node$/m, 'runs as a non-root user');
  t.match(dockerfile, /^HEALTHCHECK .*\/healthz/ms, 'health check on /healthz');
  const flags = SERVE_NODE_FLAGS.map((flag) => `"${flag}", `).join('');
  t.ok(
    dockerfile.includes(`\nENTRYPOINT ["node", ${flags}"bin/gatehouse.js"]\nCMD ["serve"]\n`),
    'gatehouse serve is the entry, with the V8 flags it is measured with',
  );
  t.notMatch(dockerfile, /COPY --from=build [^\n]*\/app\/test/, 'no tests in the image');
  const ignored = read('.dockerignore');
  for (const entry of ['node_modules', 'test', '.env', 'data'])
    t.match(ignored, new RegExp(`^${entry}$`, 'm'), `.dockerignore: ${entry}`);
});

t.test('npm start and the gatehouse command run with the V8 flags Gatehouse is measured with', async (t) => {
  const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  t.equal(scripts.start, ['node', ...SERVE_NODE_FLAGS, 'bin/gatehouse.js', 'serve'].join(' '));
  t.equal(read('bin/gatehouse.js').split('\n')[0], ['#!/usr/bin/env -S node', ...SERVE_NODE_FLAGS].join(' '));
});

t.test('.env.example documents every variable the configuration reads', async (t) => {
  const source = read('src/config.ts');
  const names = new Set(
    [...source.matchAll(/(?:read|optional)\(env, '([A-Z_]+)'/g)].map((match) => match[1]!),
  );
  names.add('NODE_ENV');
  t.ok(names.size >= 20, `found ${names.size} variables`);
  const example = read('.env.example');
  for (const name of names) t.match(example, new RegExp(`^#? ?${name}=`, 'm'), `${name} is in .env.example`);
  const readme = read('README.md');
  for (const name of names) {
    if (name !== 'NODE_ENV') t.match(readme, name, `${name} is in the README`);
  }
});
