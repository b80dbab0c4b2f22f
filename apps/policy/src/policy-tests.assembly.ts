import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { BusClient } from '@mandate/bus';
import type { DocumentStore } from '@mandate/store';
import { PolicyTests } from './domain/policy-tests.js';
import { gatewayToolsOver } from './gateway-tools.js';
import { PolicyRecords } from './store/repositories.js';

/** `mandate policy test`: the policy records, the gateway's tools over the bus, and the arguments checked as the gateway checks them. */
export async function assemblePolicyTests(store: DocumentStore, bus: BusClient): Promise<PolicyTests> {
  return new PolicyTests({
    records: await PolicyRecords.open(store),
    gatewayTools: gatewayToolsOver(bus),
    argumentsCheck: argumentsCheckOf,
  });
}

/** One Ajv per schema, as the gateway does: a `$id` seen once would otherwise stand for that schema for good. */
function argumentsCheckOf(schema: Record<string, unknown>) {
  const { $id: _id, ...withoutId } = schema;
  try {
    return new AjvJsonSchemaValidator().getValidator(withoutId as Parameters<AjvJsonSchemaValidator['getValidator']>[0]);
  } catch {
    return () => ({ valid: false, errorMessage: "the tool's input schema cannot be used to check them" });
  }
}
