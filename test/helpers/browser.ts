// A real Chromium for the tests that need a browser: the Debian package at
// /usr/bin/chromium driven by playwright-core (no downloaded browsers), headless,
// with nothing that would reach beyond 127.0.0.1, closed when the test ends.
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
