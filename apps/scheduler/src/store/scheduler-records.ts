import type { JobAction, JobTrigger, RetryPolicy } from '@mandate/contracts';
import { encodeKeySegment } from '@mandate/store';

export const SCHEDULER_COLLECTIONS = ['scheduler-jobs', 'scheduler-runs', 'scheduler-index'] as const;

/** A job as stored; the workload's private key only sealed, bound to tenant and job. */
export interface JobDocument {
  /** Random per creation: a job deleted and created again under its name gets new idempotency keys. */
  uid: string;
  name: string;
  description: string;
  workload: string;
  sealedKey: string;
  trigger: JobTrigger;
  action: JobAction;
  missedFire: 'run-once' | 'skip';
  retry: RetryPolicy;
  state: 'active' | 'paused';
  /** Milliseconds since the epoch: fires at or before this are not due again. */
  activeSince: number;
  lastFiredAt?: number;
  /** The id of the latest run (the greatest: ids sort by fire time or stream sequence), for `lastRun` in reads. */
  lastRunId?: string;
  createdAt: number;
  updatedAt: number;
}

export type RunState = 'pending' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'dead-lettered' | 'skipped' | 'cancelled';

/** One fire of a job and every attempt at it. Its id is the claim: `fire.<job>.<c epoch | e sequence>`. */
export interface RunDocument {
  job: string;
  jobUid: string;
  idempotencyKey: string;
  trigger: 'cron' | 'missed' | 'event';
  scheduledFor: number;
  state: RunState;
  attempts: number;
  /** The replica running it, and until when its claim holds (a dead replica's run is taken over after). */
  owner?: string;
  leaseUntil?: number;
  nextAttemptAt?: number;
  lastError?: { code: string; message: string };
  httpStatus?: number;
  event?: { subject: string; sequence: number; data: unknown };
  createdAt: number;
  finishedAt?: number;
}

/**
 * Deployment-wide index (in the system tenant): which jobs exist (`j.<tenant>.<job>`), and which
 * runs are not finished (`r.<tenant>.<run id>`), so every replica's tick finds them without
 * listing every tenant.
 */
export interface IndexDocument {
  tenant: string;
  job: string;
  runId?: string;
  since: number;
}

export const jobKey = (name: string) => `j${encodeKeySegment(name)}`;
const pad = (n: number) => String(n).padStart(15, '0');
export const cronFireKey = (epochMs: number) => `c${pad(epochMs)}`;
export const eventFireKey = (sequence: number) => `e${pad(sequence)}`;
export const runPrefix = (job: string) => `fire.${jobKey(job)}.`;
export const runId = (job: string, fireKey: string) => `${runPrefix(job)}${fireKey}`;
export const jobIndexId = (tenant: string, job: string) => `j.${tenant}.${jobKey(job)}`;
export const openRunIndexId = (tenant: string, run: string) => `r.${tenant}.${run}`;
