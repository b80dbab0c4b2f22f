import type { TextMapGetter, TextMapSetter } from '@opentelemetry/api';

/** The subset of NATS `MsgHdrs` we touch, so this lib does not depend on a NATS client. */
export interface HeaderCarrier {
  get(key: string): string;
  set(key: string, value: string): void;
  has(key: string): boolean;
  keys(): string[];
}

export const natsHeaderSetter: TextMapSetter<HeaderCarrier> = {
  set(carrier, key, value) {
    carrier.set(key, value);
  },
};

export const natsHeaderGetter: TextMapGetter<HeaderCarrier | undefined> = {
  get(carrier, key) {
    if (!carrier || !carrier.has(key)) return undefined;
    return carrier.get(key);
  },
  keys(carrier) {
    return carrier ? carrier.keys() : [];
  },
};
