import type { JWK } from 'jose';
import { MandateError, SCHEDULER_HEADERS, taskSubject, type TaskMessage, type TenantId } from '@mandate/contracts';
import type { JobDocument } from '../store/scheduler-records.js';

/** What an action needs from the rest of the system; the assembly wires these to the bus. */
export interface ActionPorts {
  /** A WAT for the workload alone, after a client assertion signed with its key. */
  workloadToken(tenant: TenantId, workload: string, privateJwk: JWK): Promise<string>;
  /** An M2M access token from the vault for the workload's WAT. */
  machineToken(tenant: TenantId, workloadToken: string, provider: string, scopes: string[]): Promise<string>;
  /** Publishes a task message; a publish repeated with the same key is stored once. */
  publishTask(subject: string, idempotencyKey: string, message: TaskMessage): Promise<void>;
  fetch?: typeof fetch;
  httpTimeoutMs: number;
}

export interface ActionOutcome {
  httpStatus?: number;
}

/** An attempt that failed; `httpStatus` when the resource answered. */
export class ActionError extends MandateError {
  constructor(
    code: ConstructorParameters<typeof MandateError>[0],
    message: string,
    readonly httpStatus?: number,
    cause?: unknown,
  ) {
    super(code, message, cause === undefined ? {} : { cause });
  }
}

/**
 * Runs one attempt of a job's action. HTTP: authenticate as the workload, get an M2M token, call
 * the URL with it and the fire's `Idempotency-Key`. Task: publish to `mandate.task.<tenant>.<job>`.
 * The token never leaves this function: not in a log, a run record or an error.
 */
export class ActionRunner {
  constructor(private readonly ports: ActionPorts) {}

  async run(tenant: TenantId, job: JobDocument, message: TaskMessage, privateJwk: () => JWK): Promise<ActionOutcome> {
    if (job.action.kind === 'task') {
      await this.ports.publishTask(taskSubject(tenant, job.name), message.idempotencyKey, { ...message, payload: job.action.payload });
      return {};
    }
    const action = job.action;
    const wat = await this.ports.workloadToken(tenant, job.workload, privateJwk());
    const accessToken = await this.ports.machineToken(tenant, wat, action.provider, action.scopes);
    let response: Response;
    try {
      response = await (this.ports.fetch ?? fetch)(action.url, {
        method: action.method,
        headers: {
          authorization: `Bearer ${accessToken}`,
          [SCHEDULER_HEADERS.idempotencyKey]: message.idempotencyKey,
          ...(action.method === 'POST' ? { 'content-type': 'application/json' } : {}),
        },
        ...(action.method === 'POST' ? { body: JSON.stringify(message) } : {}),
        redirect: 'manual',
        signal: AbortSignal.timeout(this.ports.httpTimeoutMs),
      });
      await response.arrayBuffer().catch(() => undefined);
    } catch (cause) {
      throw new ActionError('unavailable', 'the resource could not be reached', undefined, cause);
    }
    const status = response.status;
    if (status >= 200 && status < 300) return { httpStatus: status };
    if (status === 401 || status === 403) throw new ActionError('access_denied', `the resource refused the token (HTTP ${status})`, status);
    if (status === 408 || status === 429 || status >= 500) throw new ActionError('provider_error', `the resource failed (HTTP ${status})`, status);
    throw new ActionError('invalid_request', `the resource refused the request (HTTP ${status})`, status);
  }
}
