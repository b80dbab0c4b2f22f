import { MandateError, type TenantId, type TrailDigest } from '@mandate/contracts';
import type { Clock } from '@mandate/store';
import type { Logger } from '@mandate/telemetry';
import { digestHash, nextDigest, signDigest } from './digests.js';
import type { DigestKeyRing } from './signing-keys.js';
import type { TrailRepository } from '../store/trail-repository.js';

/**
 * Writes the signed digests: for every tenant with a chain, at every interval (records or not)
 * and on shutdown. Like entries, a digest is created first and its head moved after, and a digest
 * found beyond the head (a crash in between, or another replica) is adopted, not rewritten.
 */
export class Digester {
  constructor(
    private readonly repository: TrailRepository,
    private readonly keys: DigestKeyRing,
    private readonly clock: Clock = Date.now,
    private readonly logger?: Logger,
  ) {}

  /** One digest per tenant (or for `only`); tenants that fail are logged and skipped. */
  async digestAll(only?: TenantId): Promise<TrailDigest[]> {
    const tenants = only ? [only] : await this.repository.tenants();
    const written: TrailDigest[] = [];
    for (const tenant of tenants) {
      try {
        const digest = await this.digest(tenant);
        if (digest) written.push(digest);
      } catch (err) {
        if (only) throw err;
        this.logger?.error({ err, tenant }, 'could not write a trail digest; will try at the next interval');
      }
    }
    return written;
  }

  async digest(tenant: TenantId): Promise<TrailDigest | undefined> {
    const chain = await this.repository.chainHead(tenant);
    if (!chain) throw new MandateError('not_found', 'this tenant has no audit trail');
    const head = await this.repository.digestHead(tenant);
    let previous = head?.value;
    // Adopt digests beyond the head (written by a replica, or before a crash).
    for (;;) {
      const beyond = await this.repository.digest(tenant, (previous?.number ?? 0) + 1);
      if (!beyond) break;
      previous = { number: beyond.number, toSequence: beyond.toSequence, hash: digestHash(beyond) };
    }
    if (previous && chain.value.sequence < previous.toSequence) {
      // The head went backwards past what we signed: records were removed. Signing now would
      // certify the shortened chain, so refuse and let `verify` name the loss.
      this.logger?.error({ tenant, head: chain.value.sequence, signed: previous.toSequence }, 'the chain is shorter than its last digest; not signing');
      return undefined;
    }
    const digest = signDigest(this.keys, nextDigest(tenant, previous, { sequence: chain.value.sequence, hash: chain.value.hash }, new Date(this.clock()).toISOString()));
    if (!(await this.repository.createDigest(tenant, digest))) return undefined; // a replica signed this number first
    try {
      const value = { number: digest.number, toSequence: digest.toSequence, hash: digestHash(digest) };
      await this.repository.moveDigestHead(tenant, value, head?.revision);
    } catch (error) {
      // The digest stands; the head is only a hint and the next digest adopts it.
      if (!(error instanceof MandateError && error.code === 'conflict')) throw error;
    }
    return digest;
  }
}
