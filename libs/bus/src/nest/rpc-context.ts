import { BaseRpcContext } from '@nestjs/microservices';
import type { HeaderCarrier } from '@mandate/telemetry';

export interface RequestInfo {
  subject: string;
  /** Read-only view of the request's NATS headers. */
  headers: HeaderCarrier | undefined;
  traceId: string;
  spanId: string;
}

/**
 * What a `@MessagePattern` handler gets with `@Ctx()`: the subject and the trace ids of this
 * request, so audit records can carry them even where no tracing SDK runs.
 */
export class MandateRpcContext extends BaseRpcContext<[RequestInfo]> {
  get info(): RequestInfo {
    return this.getArgByIndex(0);
  }
  get subject(): string {
    return this.info.subject;
  }
  get traceId(): string {
    return this.info.traceId;
  }
  get spanId(): string {
    return this.info.spanId;
  }
}
