import { deflateRawSync } from 'node:zlib';
import { jetstream, jetstreamManager, type StoredMsg } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { AUDIT_TRAIL_HEADERS, AUDIT_TRAIL_STREAM, trailDigestsSubject, type TenantId, type TrailDigest, type TrailEntry } from '@mandate/contracts';
import type { DocumentCollection } from '@mandate/store';
import { trailDocumentId } from '../store/document-trail-log.js';
import type { TrailRepository } from '../store/trail-repository.js';

/**
 * Edits the stored trail as someone with full access to its store could: what the tampering tests
 * do to a trail before asking `verify` to find it.
 */
export interface StoredTrailEditor {
  read(tenant: TenantId, sequence: number): Promise<TrailEntry>;
  /** Puts `entry` where the entry at `sequence` was. */
  replace(tenant: TenantId, sequence: number, entry: TrailEntry): Promise<void>;
  /** Removes the entry at `sequence`, cutting its fragment in two around it. */
  remove(tenant: TenantId, sequence: number): Promise<void>;
  /** Flips a bit in the middle of the stored (deflated) fragment that holds `sequence`. */
  corruptFragment(tenant: TenantId, sequence: number): Promise<void>;
  storedDigest(tenant: TenantId, number: number): Promise<TrailDigest>;
  replaceDigest(tenant: TenantId, number: number, digest: TrailDigest): Promise<void>;
  removeDigest(tenant: TenantId, number: number): Promise<void>;
}

/** A fragment held in memory, cut or changed as an edit needs. */
interface FragmentEdit {
  first: number;
  entries: TrailEntry[];
}

function split(fragment: { first: number; entries: TrailEntry[] }, sequence: number): FragmentEdit[] {
  const at = sequence - fragment.first;
  return [
    { first: fragment.first, entries: fragment.entries.slice(0, at) },
    { first: sequence + 1, entries: fragment.entries.slice(at + 1) },
  ].filter((part) => part.entries.length > 0);
}

function flipMiddle(bytes: Uint8Array): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[Math.floor(copy.length / 2)]! ^= 0x20;
  return copy;
}

/** The trail in documents (MongoDB, or JetStream KV before the stream): documents updated and deleted in place. */
export class DocumentTrailEditor implements StoredTrailEditor {
  constructor(
    private readonly repository: TrailRepository,
    private readonly raw: DocumentCollection<unknown>,
  ) {}

  read(tenant: TenantId, sequence: number): Promise<TrailEntry> {
    return entryAt(this.repository, tenant, sequence);
  }

  async replace(tenant: TenantId, sequence: number, entry: TrailEntry): Promise<void> {
    const fragment = await holding(this.repository, tenant, sequence);
    await this.raw.update(tenant, fragment.id, { entries: replaced(fragment, sequence, entry) }, fragment.revision);
  }

  async remove(tenant: TenantId, sequence: number): Promise<void> {
    const fragment = await holding(this.repository, tenant, sequence);
    const parts = split(fragment, sequence);
    const before = parts.find((part) => part.first === fragment.first);
    if (before) await this.raw.update(tenant, fragment.id, { entries: before.entries }, fragment.revision);
    else await this.raw.delete(tenant, fragment.id, { expectedRevision: fragment.revision });
    const after = parts.find((part) => part.first === sequence + 1);
    if (after) await this.raw.create(tenant, trailDocumentId('e', after.first), { entries: after.entries });
  }

  async corruptFragment(tenant: TenantId, sequence: number): Promise<void> {
    const fragment = await holding(this.repository, tenant, sequence);
    const doc = (await this.raw.get(tenant, fragment.id)) as { id: string; revision: number; value: { deflated: string } };
    const bytes = flipMiddle(Buffer.from(doc.value.deflated, 'base64'));
    await this.raw.update(tenant, doc.id, { deflated: Buffer.from(bytes).toString('base64') }, doc.revision);
  }

  async storedDigest(tenant: TenantId, number: number): Promise<TrailDigest> {
    const doc = await this.raw.get(tenant, trailDocumentId('d', number));
    if (!doc) throw new Error(`no stored digest ${number} of ${tenant}`);
    return doc.value as TrailDigest;
  }

  async replaceDigest(tenant: TenantId, number: number, digest: TrailDigest): Promise<void> {
    const doc = (await this.raw.get(tenant, trailDocumentId('d', number)))!;
    await this.raw.update(tenant, doc.id, digest, doc.revision);
  }

  async removeDigest(tenant: TenantId, number: number): Promise<void> {
    await this.raw.delete(tenant, trailDocumentId('d', number));
  }
}

/** One message of the stream as it is written back: the same subject and headers, maybe another body. */
interface Rewritten {
  subject: string;
  data: Uint8Array;
  headers: Record<string, string>;
}

/**
 * The trail on its stream. Nothing can be deleted from it or purged, and that cannot be turned
 * off; what someone with full access to nats-server can still do is delete the whole stream and
 * write it again, changed. That is what each edit does: every message of every tenant read, the
 * stream deleted and declared again, the messages published in their order, one of them changed,
 * cut in two or left out.
 */
export class StreamTrailEditor implements StoredTrailEditor {
  constructor(
    private readonly repository: TrailRepository,
    private readonly nc: NatsConnection,
  ) {}

  read(tenant: TenantId, sequence: number): Promise<TrailEntry> {
    return entryAt(this.repository, tenant, sequence);
  }

  async replace(tenant: TenantId, sequence: number, entry: TrailEntry): Promise<void> {
    const fragment = await holding(this.repository, tenant, sequence);
    await this.#rewrite(fragment.revision, (message) => [fragmentMessage(message, { first: fragment.first, entries: replaced(fragment, sequence, entry) })]);
  }

  async remove(tenant: TenantId, sequence: number): Promise<void> {
    const fragment = await holding(this.repository, tenant, sequence);
    await this.#rewrite(fragment.revision, (message) => split(fragment, sequence).map((part) => fragmentMessage(message, part)));
  }

  async corruptFragment(tenant: TenantId, sequence: number): Promise<void> {
    const fragment = await holding(this.repository, tenant, sequence);
    await this.#rewrite(fragment.revision, (message) => [{ ...asWritten(message), data: flipMiddle(message.data) }]);
  }

  async storedDigest(tenant: TenantId, number: number): Promise<TrailDigest> {
    return (await this.#digestMessage(tenant, number)).json<TrailDigest>();
  }

  async replaceDigest(tenant: TenantId, number: number, digest: TrailDigest): Promise<void> {
    const message = await this.#digestMessage(tenant, number);
    await this.#rewrite(message.seq, () => [{ ...asWritten(message), data: new TextEncoder().encode(JSON.stringify(digest)) }]);
  }

  async removeDigest(tenant: TenantId, number: number): Promise<void> {
    const message = await this.#digestMessage(tenant, number);
    await this.#rewrite(message.seq, () => []);
  }

  async #digestMessage(tenant: TenantId, number: number): Promise<StoredMsg> {
    const jsm = await jetstreamManager(this.nc);
    const { state } = await jsm.streams.info(AUDIT_TRAIL_STREAM.name);
    for (let seq = state.first_seq; seq <= state.last_seq; seq += 1) {
      const message = await jsm.streams.getMessage(AUDIT_TRAIL_STREAM.name, { seq });
      if (message?.subject === trailDigestsSubject(tenant) && message.header.get(AUDIT_TRAIL_HEADERS.digest) === String(number)) return message;
    }
    throw new Error(`no stored digest ${number} of ${tenant}`);
  }

  /** The stream written again with the message at `seq` replaced by what `edit` makes of it. */
  async #rewrite(seq: number, edit: (message: StoredMsg) => Rewritten[]): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    const { config, state } = await jsm.streams.info(AUDIT_TRAIL_STREAM.name);
    const messages: Rewritten[] = [];
    for (let at = state.first_seq; at <= state.last_seq; at += 1) {
      const message = await jsm.streams.getMessage(AUDIT_TRAIL_STREAM.name, { seq: at });
      if (!message) continue;
      messages.push(...(at === seq ? edit(message) : [asWritten(message)]));
    }
    await jsm.streams.delete(AUDIT_TRAIL_STREAM.name);
    await jsm.streams.add(config);
    const js = jetstream(this.nc);
    for (const message of messages) {
      const headers = natsHeaders();
      for (const [name, value] of Object.entries(message.headers)) headers.set(name, value);
      await js.publish(message.subject, message.data, { headers });
    }
  }
}

async function holding(repository: TrailRepository, tenant: TenantId, sequence: number) {
  const fragment = await repository.fragmentHolding(tenant, sequence);
  if (!fragment) throw new Error(`no stored fragment holds entry ${sequence} of ${tenant}`);
  return fragment;
}

async function entryAt(repository: TrailRepository, tenant: TenantId, sequence: number): Promise<TrailEntry> {
  const fragment = await holding(repository, tenant, sequence);
  return fragment.entries[sequence - fragment.first]!;
}

function replaced(fragment: FragmentEdit, sequence: number, entry: TrailEntry): TrailEntry[] {
  const entries = [...fragment.entries];
  entries[sequence - fragment.first] = entry;
  return entries;
}

function asWritten(message: StoredMsg): Rewritten {
  const headers: Record<string, string> = {};
  for (const name of Object.values(AUDIT_TRAIL_HEADERS)) {
    const value = message.header?.get(name);
    if (value) headers[name] = value;
  }
  return { subject: message.subject, data: message.data, headers };
}

/** A fragment message with other entries, placed by its headers as the service places them. */
function fragmentMessage(message: StoredMsg, fragment: FragmentEdit): Rewritten {
  return {
    subject: message.subject,
    data: deflateRawSync(JSON.stringify(fragment.entries)),
    headers: { [AUDIT_TRAIL_HEADERS.first]: String(fragment.first), [AUDIT_TRAIL_HEADERS.count]: String(fragment.entries.length) },
  };
}
