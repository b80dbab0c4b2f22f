import { existsSync } from 'node:fs';
import { chromium, type Browser, type LaunchOptions } from 'playwright-core';
import { skipReason } from './skip.js';

/** Where system Chromium (or Chrome) usually is; playwright-core downloads no browser of its own here. */
const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** The browser executable: `$CHROMIUM_PATH` when it exists, else the first of the usual system paths; `undefined` when none is. */
export function chromiumPath(): string | undefined {
  const fromEnv = process.env['CHROMIUM_PATH'];
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  return CANDIDATES.find((candidate) => existsSync(candidate));
}

/**
 * Launches headless Chromium from {@link chromiumPath} through playwright-core; close it with `browser.close()`.
 * As root, Chromium refuses to start with its sandbox, so it is turned off then (and only then). `options.args` are
 * added to that.
 */
export async function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error('chromium is not installed (apt-get install -y chromium, or set CHROMIUM_PATH)');
  const sandbox = process.getuid?.() === 0 ? ['--no-sandbox'] : [];
  return chromium.launch({ ...options, executablePath, args: [...sandbox, ...(options.args ?? [])] });
}

/** `undefined` when Chromium is here; otherwise the printed reason to skip. */
export function chromiumMissing(what: string): string | undefined {
  return chromiumPath() ? undefined : skipReason(what, 'chromium is not installed (apt-get install -y chromium, or set CHROMIUM_PATH)');
}
