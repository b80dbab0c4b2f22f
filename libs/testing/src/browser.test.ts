import { createServer } from 'node:http';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { chromiumMissing, chromiumPath, launchChromium } from './browser.js';

describe('chromiumPath', () => {
  afterEach(() => vi.unstubAllEnvs());

  it('prefers $CHROMIUM_PATH when it exists, and ignores it when it does not', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mandate-chromium-'));
    try {
      const fake = join(dir, 'chrome');
      writeFileSync(fake, '');
      vi.stubEnv('CHROMIUM_PATH', fake);
      expect(chromiumPath()).toBe(fake);
      vi.stubEnv('CHROMIUM_PATH', join(dir, 'absent'));
      expect(chromiumPath()).not.toBe(join(dir, 'absent'));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const missing = chromiumMissing('a page in Chromium');

describe.skipIf(missing)('launchChromium', () => {
  it('opens a page served over HTTP and reads its title', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><html><head><title>Mandate test page</title></head><body>hello</body></html>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`;
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(url);
      expect(await page.title()).toBe('Mandate test page');
    } finally {
      await browser.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
