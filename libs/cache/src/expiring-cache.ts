import { createHash } from 'node:crypto';

/**
 * A bounded map whose entries carry their own expiry, for results derived from a token: keyed
 * by a SHA-256 of the token and what it was checked against, so the token itself is never kept.
 * When full, the oldest entry goes (a Map keeps insertion order).
 */
export class ExpiringCache<V> {
  readonly #entries = new Map<string, { value: V; expiresAt: number }>();

  constructor(private readonly maxEntries: number) {}

  static keyOf(...parts: (string | number)[]): string {
    // One update of the whole text: each update is a call into the native hash, which costs more than the joining.
    let text = '';
    for (const part of parts) text += `${part}\n`;
    return createHash('sha256').update(text).digest('base64url');
  }

  get enabled(): boolean {
    return this.maxEntries > 0;
  }

  /** The value if it is still valid at `now` (same unit as `expiresAt`). */
  get(key: string, now: number): V | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt > now) return entry.value;
    this.#entries.delete(key);
    return undefined;
  }

  set(key: string, value: V, expiresAt: number): void {
    if (!this.enabled) return;
    if (this.#entries.size >= this.maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, { value, expiresAt });
  }
}
