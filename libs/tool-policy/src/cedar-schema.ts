import type { SchemaJson } from '@cedar-policy/cedar-wasm/nodejs';

/** Every entity type and action of the tool model lives here: `Mandate::User`, `Mandate::Action::"<tool>"`. */
export const CEDAR_NAMESPACE = 'Mandate';

/** A tool as the model needs it: its gateway name (the action) and its JSON input schema (`context.input`). */
export interface ModelTool {
  name: string;
  inputSchema: Record<string, unknown>;
}

type CedarType = Record<string, unknown>;

/**
 * The Cedar schema of a gateway's tools:
 *
 * - principal `User` (`iss`, `sub`, `groups`: the token's `groups` claim when it is a list of
 *   strings; the token's other string claims as tags, `principal.getTag("department")`);
 * - resource `Gateway`; one action per tool, named as clients call it;
 * - context: `input` typed from the tool's input schema, `scopes` (the principal's), `time`
 *   (seconds since the epoch), and when the token names its client, the agent calling: `agent`,
 *   a `Workload` entity (`context.agent == Mandate::Workload::"expense-agent"`), and `client`,
 *   its id as a string.
 *
 * JSON Schema types map as integer → Long, number → decimal (four fractional digits), string →
 * String (formats are not checked by Cedar), boolean → Boolean, array → Set, object → Record.
 * A property whose type Cedar cannot say (no `type`, a list of types, `anyOf`/`oneOf`, `null`) is
 * left out of `context.input`, so no policy can refer to it and validation says so.
 */
export function cedarSchemaFor(tools: readonly ModelTool[]): SchemaJson<string> {
  const actions: Record<string, unknown> = {};
  for (const tool of tools) {
    actions[tool.name] = {
      appliesTo: {
        principalTypes: ['User'],
        resourceTypes: ['Gateway'],
        context: {
          type: 'Record',
          attributes: {
            input: recordType(tool.inputSchema),
            scopes: { type: 'Set', element: { type: 'String' } },
            time: { type: 'Long' },
            client: { type: 'String', required: false },
            agent: { type: 'Entity', name: 'Workload', required: false },
          },
        },
      },
    };
  }
  return {
    [CEDAR_NAMESPACE]: {
      entityTypes: {
        User: {
          shape: { type: 'Record', attributes: { iss: { type: 'String' }, sub: { type: 'String' }, groups: { type: 'Set', element: { type: 'String' } } } },
          tags: { type: 'String' },
        },
        Gateway: {},
        Workload: {},
      },
      actions,
    },
  } as unknown as SchemaJson<string>;
}

function recordType(schema: Record<string, unknown>): CedarType {
  const properties = (schema['properties'] ?? {}) as Record<string, Record<string, unknown>>;
  const required = new Set(Array.isArray(schema['required']) ? (schema['required'] as string[]) : []);
  const attributes: Record<string, CedarType> = {};
  for (const [name, property] of Object.entries(properties)) {
    const type = cedarTypeOf(property);
    if (type) attributes[name] = { ...type, required: required.has(name) };
  }
  return { type: 'Record', attributes };
}

function cedarTypeOf(schema: Record<string, unknown>): CedarType | undefined {
  switch (schema['type']) {
    case 'integer':
      return { type: 'Long' };
    case 'number':
      return { type: 'Extension', name: 'decimal' };
    case 'string':
      return { type: 'String' };
    case 'boolean':
      return { type: 'Boolean' };
    case 'array': {
      const element = schema['items'] && typeof schema['items'] === 'object' ? cedarTypeOf(schema['items'] as Record<string, unknown>) : undefined;
      return element ? { type: 'Set', element } : undefined;
    }
    case 'object':
      return recordType(schema);
    default:
      return undefined;
  }
}

/**
 * A call's arguments as Cedar values of `context.input`: numbers where the schema says `number`
 * become decimals, members the schema cannot type are dropped (as the schema leaves them out).
 * The arguments were already checked against the tool's input schema.
 */
export function cedarInputFor(schema: Record<string, unknown>, args: Record<string, unknown>): Record<string, unknown> {
  const properties = (schema['properties'] ?? {}) as Record<string, Record<string, unknown>>;
  const input: Record<string, unknown> = {};
  for (const [name, property] of Object.entries(properties)) {
    if (!(name in args) || !cedarTypeOf(property)) continue;
    input[name] = cedarValueOf(property, args[name]);
  }
  return input;
}

function cedarValueOf(schema: Record<string, unknown>, value: unknown): unknown {
  switch (schema['type']) {
    case 'number':
      return { __extn: { fn: 'decimal', arg: decimalText(value as number) } };
    case 'array':
      return (value as unknown[]).map((item) => cedarValueOf(schema['items'] as Record<string, unknown>, item));
    case 'object':
      return cedarInputFor(schema, value as Record<string, unknown>);
    default:
      return value;
  }
}

/** Cedar decimals have at most four fractional digits: a number with more is refused, not rounded past a limit a policy draws. */
function decimalText(value: number): string {
  if (Math.round(value * 10_000) / 10_000 !== value) throw new RangeError(`${value} has more than four fractional digits, which Cedar's decimal cannot hold`);
  const text = value.toFixed(4);
  return text.replace(/0{1,3}$/, '');
}
