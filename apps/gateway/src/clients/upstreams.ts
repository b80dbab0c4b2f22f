import type { TargetSource } from '@mandate/contracts';
import type { CallableTarget, CallEvidence, Discovery, ToolResult, UpstreamTools } from '../domain/upstream.js';
import type { OpenApiTargets } from './openapi-targets.js';
import type { UpstreamMcp } from './upstream-mcp.js';

/** Every kind of target behind one port: each call goes to the client of its target's kind. */
export class Upstreams implements UpstreamTools {
  constructor(
    private readonly mcp: UpstreamMcp,
    private readonly openapi: OpenApiTargets,
  ) {}

  async discover(source: TargetSource, headers: Record<string, string>, timeoutMs: number, ref?: CallableTarget['ref']): Promise<Discovery> {
    if (source.kind === 'mcp') return { tools: await this.mcp.tools(source.url, headers, timeoutMs, ref) };
    return this.openapi.discover(source, timeoutMs);
  }

  call(target: CallableTarget, headers: Record<string, string>, tool: string, args: Record<string, unknown>, evidence: CallEvidence): Promise<ToolResult> {
    if (target.source.kind === 'mcp') return this.mcp.callTool(target.source.url, headers, tool, args, evidence, target.timeoutMs, target.ref);
    return this.openapi.call(target, headers, tool, args, evidence);
  }
}
