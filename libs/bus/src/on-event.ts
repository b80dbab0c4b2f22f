import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { DomainEvent, EventContract, EventDataOf } from '@mandate/contracts';

/** Where an ignored event is reported (a service's logger). */
export interface EventLog {
  warn(fields: object, message: string): void;
}

/**
 * Subscribes to one kind of event, for one tenant or every tenant. What reaches `handler` is
 * valid: an event that does not parse against its contract, or whose envelope names another
 * tenant than its subject, is reported and ignored; so is a handler's failure. One rule for
 * every subscriber, instead of each deciding what a bad message means.
 */
export function onEvent<E extends EventContract>(
  nc: NatsConnection,
  event: E,
  scope: { tenant: string } | 'all-tenants',
  handler: (received: DomainEvent<EventDataOf<E>>) => void | Promise<void>,
  log: EventLog,
): Subscription {
  const subject = scope === 'all-tenants' ? event.allTenants : event.subject(scope.tenant);
  const kind = `${event.service}.${event.name}`;
  return nc.subscribe(subject, {
    callback: (error, msg) => {
      if (error) return log.warn({ err: error, event: kind }, 'event subscription failed');
      let parsed: ReturnType<E['envelope']['safeParse']>;
      try {
        parsed = event.envelope.safeParse(msg.json()) as ReturnType<E['envelope']['safeParse']>;
      } catch {
        return log.warn({ event: kind }, 'ignored an event that is not JSON');
      }
      if (!parsed.success) return log.warn({ event: kind, issues: parsed.error.issues.length }, 'ignored an event outside its contract');
      const received = parsed.data as DomainEvent<EventDataOf<E>>;
      if (msg.subject.slice(msg.subject.lastIndexOf('.') + 1) !== received.tenant) {
        return log.warn({ event: kind }, 'ignored an event whose tenant is not its subject’s');
      }
      void Promise.resolve()
        .then(() => handler(received))
        .catch((err: unknown) => log.warn({ err, event: kind }, 'an event handler failed'));
    },
  });
}
