import type { DiscoveredTool, TargetSource } from '@mandate/contracts';

/** A tool result as MCP defines it (`CallToolResult`), passed through as the target sent it. */
export interface ToolResult {
  content: unknown[];
  structuredContent?: Record<string, unknown>;
  isError?: boolean;
  [key: string]: unknown;
}

export type UpstreamFailureKind = 'unreachable' | 'timeout' | 'malformed' | 'too_large' | 'refused';

/** A target gave no usable answer; `message` is safe to show (it names no credential). */
export class UpstreamFailure extends Error {
  /** Nothing answered at all (the connection refused, the host unknown), as against an HTTP error status: the target is down. */
  readonly noAnswer: boolean;

  constructor(
    readonly kind: UpstreamFailureKind,
    message: string,
    options?: { cause?: unknown; noAnswer?: boolean },
  ) {
    super(message, options);
    this.noAnswer = options?.noAnswer ?? false;
  }
}

/** How one OpenAPI operation is called: where each argument goes. */
export interface OpenApiOperation {
  method: string;
  path: string;
  parameters: { name: string; in: 'path' | 'query' | 'header' }[];
  /** The JSON request body is the `body` argument. */
  body: boolean;
}

/** What calling an OpenAPI target's tools needs, kept with the target at each sync. */
export interface OpenApiBinding {
  baseUrl: string;
  operations: Record<string, OpenApiOperation>;
}

export interface Discovery {
  tools: DiscoveredTool[];
  openapi?: OpenApiBinding;
}

/** A target as a call needs it. */
export interface CallableTarget {
  /** Its gateway and name, so an upstream can say its tools changed. */
  ref?: { tenant: string; gateway: string; target: string };
  source: TargetSource;
  openapi?: OpenApiBinding | undefined;
  timeoutMs: number;
}

/** What a permitted call carries to its target beside its arguments and credential. */
export interface CallEvidence {
  /** The call's signed receipt (a compact JWS): in `_meta` for an MCP target, a header for an HTTP one. */
  receipt: string;
}

/** The targets' tools, whatever their kind: discovered at each sync, called on each `tools/call`. */
export interface UpstreamTools {
  discover(source: TargetSource, headers: Record<string, string>, timeoutMs: number, ref?: CallableTarget['ref']): Promise<Discovery>;
  call(target: CallableTarget, headers: Record<string, string>, tool: string, args: Record<string, unknown>, evidence: CallEvidence): Promise<ToolResult>;
}
