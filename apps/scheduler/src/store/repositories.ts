import { MandateError, SYSTEM_TENANT, type TenantId } from '@mandate/contracts';
import { createUnlessTaken, updateWithRetry, type DocumentCollection, type DocumentStore, type Page, type StoredDocument } from '@mandate/store';
import { jobIndexId, jobKey, openRunIndexId, runPrefix, type IndexDocument, type JobDocument, type RunDocument } from './scheduler-records.js';

/** The only code of the scheduler that touches persistence: jobs, their runs, and the deployment-wide index. */

export class JobRepository {
  constructor(private readonly jobs: DocumentCollection<JobDocument>) {}

  get(tenant: TenantId, name: string): Promise<StoredDocument<JobDocument> | undefined> {
    return this.jobs.get(tenant, jobKey(name));
  }

  create(tenant: TenantId, document: JobDocument): Promise<StoredDocument<JobDocument>> {
    return this.jobs.create(tenant, jobKey(document.name), document);
  }

  /** Read, change, write if unchanged since; again on a lost race. `change` returning undefined leaves it; a missing job is `not_found`. */
  async change(tenant: TenantId, name: string, change: (job: JobDocument) => JobDocument | undefined): Promise<StoredDocument<JobDocument>> {
    const stored = await updateWithRetry(this.jobs, tenant, jobKey(name), (current) => {
      if (!current) throw new MandateError('not_found', `no job ${name}`);
      const next = change(current.value);
      return next && { value: next };
    }, 11);
    return stored!;
  }

  delete(tenant: TenantId, name: string): Promise<boolean> {
    return this.jobs.delete(tenant, jobKey(name));
  }

  list(tenant: TenantId, limit: number, cursor: string | undefined): Promise<Page<JobDocument>> {
    return this.jobs.list(tenant, { limit, ...(cursor ? { cursor } : {}) });
  }
}

export class RunRepository {
  constructor(
    private readonly runs: DocumentCollection<RunDocument>,
    private readonly retentionMs: number,
  ) {}

  get(tenant: TenantId, id: string): Promise<StoredDocument<RunDocument> | undefined> {
    return this.runs.get(tenant, id);
  }

  /** The claim of a fire: true for the one replica whose create of the id wins. */
  async create(tenant: TenantId, id: string, document: RunDocument): Promise<boolean> {
    return (await createUnlessTaken(this.runs, tenant, { id, value: document, options: { ttlMs: this.retentionMs } })) === 'created';
  }

  /** Compare-and-swap; undefined when another replica moved (or removed) the run first. */
  async update(tenant: TenantId, id: string, next: RunDocument, revision: number): Promise<StoredDocument<RunDocument> | undefined> {
    try {
      return await this.runs.update(tenant, id, next, revision, { ttlMs: this.retentionMs });
    } catch (error) {
      if (error instanceof MandateError && (error.code === 'conflict' || error.code === 'not_found')) return undefined;
      throw error;
    }
  }

  ofJob(tenant: TenantId, job: string, limit: number, cursor: string | undefined): Promise<Page<RunDocument>> {
    return this.runs.list(tenant, { prefix: runPrefix(job), limit, ...(cursor ? { cursor } : {}) });
  }
}

/** The deployment-wide index of jobs and unfinished runs (`IndexDocument`). */
export class SchedulerIndex {
  constructor(private readonly index: DocumentCollection<IndexDocument>) {}

  async addJob(tenant: TenantId, job: string, since: number): Promise<void> {
    await createUnlessTaken(this.index, SYSTEM_TENANT, { id: jobIndexId(tenant, job), value: { tenant, job, since } });
  }

  async removeJob(tenant: TenantId, job: string): Promise<void> {
    await this.index.delete(SYSTEM_TENANT, jobIndexId(tenant, job));
  }

  async openRun(tenant: TenantId, runId: string, job: string, since: number): Promise<void> {
    await createUnlessTaken(this.index, SYSTEM_TENANT, { id: openRunIndexId(tenant, runId), value: { tenant, job, runId, since } });
  }

  async closeRun(tenant: TenantId, runId: string): Promise<void> {
    await this.index.delete(SYSTEM_TENANT, openRunIndexId(tenant, runId));
  }

  jobs(): AsyncGenerator<IndexDocument> {
    return this.#each('j.');
  }

  openRuns(): AsyncGenerator<IndexDocument> {
    return this.#each('r.');
  }

  async *#each(prefix: string): AsyncGenerator<IndexDocument> {
    let cursor: string | undefined;
    do {
      const page = await this.index.list(SYSTEM_TENANT, { prefix, limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const item of page.items) yield item.value;
      cursor = page.nextCursor;
    } while (cursor);
  }
}

export interface SchedulerRepositories {
  jobs: JobRepository;
  runs: RunRepository;
  index: SchedulerIndex;
}

export async function openSchedulerRepositories(store: DocumentStore, options: { retentionMs: number }): Promise<SchedulerRepositories> {
  return {
    jobs: new JobRepository(await store.collection('scheduler-jobs')),
    runs: new RunRepository(await store.collection('scheduler-runs'), options.retentionMs),
    index: new SchedulerIndex(await store.collection('scheduler-index')),
  };
}
