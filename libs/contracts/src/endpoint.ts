import type { z } from 'zod';
import { serviceSubject } from './subjects.js';

/**
 * One request/reply operation of one service: its subject and the schemas of both directions.
 * Servers validate requests with `request`, clients validate replies with `response`.
 */
export interface EndpointContract<Req extends z.ZodType = z.ZodType, Res extends z.ZodType = z.ZodType> {
  readonly service: string;
  readonly operation: string;
  readonly subject: string;
  readonly description: string;
  readonly request: Req;
  readonly response: Res;
}

export type RequestOf<E extends EndpointContract> = z.input<E['request']>;
export type ParsedRequestOf<E extends EndpointContract> = z.output<E['request']>;
export type ResponseOf<E extends EndpointContract> = z.output<E['response']>;

export function defineEndpoint<Req extends z.ZodType, Res extends z.ZodType>(definition: {
  service: string;
  operation: string;
  description: string;
  request: Req;
  response: Res;
}): EndpointContract<Req, Res> {
  return Object.freeze({ ...definition, subject: serviceSubject(definition.service, definition.operation) });
}

/** `defineEndpoint` for one service's endpoints: `endpoint(operation, description, request, response)`. */
export function endpointsOf(service: string) {
  return <Req extends z.ZodType, Res extends z.ZodType>(operation: string, description: string, request: Req, response: Res) =>
    defineEndpoint({ service, operation, description, request, response });
}

/** Indexes a service's endpoints by subject; a duplicate subject is a programming error. */
export function endpointsBySubject(endpoints: readonly EndpointContract[]): ReadonlyMap<string, EndpointContract> {
  const map = new Map<string, EndpointContract>();
  for (const endpoint of endpoints) {
    if (map.has(endpoint.subject)) throw new TypeError(`duplicate endpoint subject ${endpoint.subject}`);
    map.set(endpoint.subject, endpoint);
  }
  return map;
}
