// A real Chromium for the tests that need a browser: the Debian package at
// /usr/bin/chromium driven by playwright-core (no downloaded browsers), headless,
// with nothing that would reach beyond 127.0.0.1, closed when the test ends.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Browser, chromium } from 'playwright-core';
import type { TestContext } from './database.ts';

export const CHROMIUM_PATH = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
];

export async function launchBrowser(t: TestContext): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  return browser;
}

/** The relying party's callback: records every request URL and answers 200 "ok". */
export async function startCallbackServer(t: TestContext): Promise<{ redirectUri: string; hits: URL[] }> {
  const hits: URL[] = [];
  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', `http://${request.headers.host}`);
    hits.push(url);
    response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end('ok');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { redirectUri: `http://127.0.0.1:${port}/cb`, hits };
}
