/** Debian's chromium driven by playwright-core, for the dashboard tests and benchmark. */
import { existsSync } from 'node:fs';
import { type BrowserContext, chromium } from 'playwright-core';
import { tempDir } from './helpers.js';

export const CHROMIUM = '/usr/bin/chromium';

/** The flags every run uses: headless, no network of its own, nothing from a previous profile. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A browser with a fresh profile (--user-data-dir in a temp dir); close() ends it. */
export async function launchChromium(): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) {
    // Never a skip: CI installs it (.ci/install-system-packages).
    const message =
      'chromium is not installed: run `bash .ci/install-system-packages` (Debian package chromium)';
    console.error(message);
    throw new Error(message);
  }
  return chromium.launchPersistentContext(tempDir('tv-chromium-'), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1400, height: 1500 },
  });
}
