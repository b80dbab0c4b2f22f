import { existsSync } from 'node:fs';
import { chromium, type Browser, type LaunchOptions, type Page } from 'playwright-core';
import { DEMO_PASSWORD } from '@mandate/demo';
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

/** What the focused element is, as a keyboard user would tell. */
export type FocusedElement = { tag: string; text: string; name: string };

/** Presses Tab until the focused element is the one wanted (a keyboard user's way there), failing after 30. */
export async function tabTo(page: Page, wanted: (focused: FocusedElement) => boolean): Promise<void> {
  for (let presses = 0; presses < 30; presses++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate<FocusedElement>(`({ tag: document.activeElement?.tagName ?? '', text: (document.activeElement?.textContent ?? '').trim(), name: document.activeElement?.getAttribute('name') ?? '' })`);
    if (wanted(focused)) return;
  }
  throw new Error('Tab never reached the element');
}

/** The demo IdP's pages, by keyboard: login, Tab, password, Enter; then Allow on its consent page if it asks, until back at `origin`. */
export async function signInAtDemoIdp(page: Page, login: string, origin: string): Promise<void> {
  await page.locator('input[name="login"]').waitFor();
  if ((await page.evaluate(`document.activeElement?.getAttribute('name')`)) !== 'login') await tabTo(page, (el) => el.name === 'login');
  await page.keyboard.type(login);
  await page.keyboard.press('Tab');
  await page.keyboard.type(DEMO_PASSWORD);
  await page.keyboard.press('Enter');
  const allow = page.getByRole('button', { name: 'Allow' });
  const back = page.waitForURL((url) => url.origin === origin).then(() => 'back' as const);
  // Whichever comes first; the other wait is dropped quietly (no consent asked: `allow` never appears).
  const asked = allow.waitFor({ timeout: 10_000 }).then(() => 'allow' as const, () => 'none' as const);
  if ((await Promise.race([back, asked])) === 'allow') {
    await tabTo(page, (el) => el.tag === 'BUTTON' && el.text === 'Allow');
    await page.keyboard.press('Enter');
  }
  await back;
}
