import { Controller, Inject, type Provider, type Type } from '@nestjs/common';
import { MessagePattern } from '@nestjs/microservices';
import type { EndpointContract, ParsedRequestOf, ResponseOf } from '@mandate/contracts';

/** One endpoint answered by one call into a use case. */
export interface EndpointHandler<D> {
  readonly contract: EndpointContract;
  call(useCase: D, request: unknown): unknown;
}

export type Serve<D> = <E extends EndpointContract>(contract: E, call: (useCase: D, request: ParsedRequestOf<E>) => ResponseOf<E> | Promise<ResponseOf<E>>) => EndpointHandler<D>;

/**
 * A Nest controller that answers each endpoint with its one call into the use case Nest injects
 * for `useCase`: the whole of an endpoint file is the table of those calls. The transport has
 * already validated the request against the contract, and validates the reply.
 *
 *   export const ProvidersEndpoint = endpointController(ProviderAdministration, (serve) => [
 *     serve(providerGetEndpoint, (providers, request) => providers.get(request.tenant, request.name)),
 *   ]);
 */
export function endpointController<D>(useCase: { prototype: D; name: string }, table: (serve: Serve<D>) => readonly EndpointHandler<D>[]): Type {
  const handlers = table((contract, call) => ({ contract, call: call as EndpointHandler<D>['call'] }));
  class Endpoints {
    constructor(readonly useCase: D) {}
  }
  Inject(useCase as Type<D>)(Endpoints, undefined, 0);
  for (const handler of handlers) {
    const method = handler.contract.operation;
    Object.defineProperty(Endpoints.prototype, method, {
      value(this: Endpoints, request: unknown) {
        return handler.call(this.useCase, request);
      },
      writable: true,
      configurable: true,
    });
    MessagePattern(handler.contract.subject)(Endpoints.prototype, method, Object.getOwnPropertyDescriptor(Endpoints.prototype, method)!);
  }
  Controller()(Endpoints);
  Object.defineProperty(Endpoints, 'name', { value: `${useCase.name}Endpoints` });
  return Endpoints;
}

/** What a service's assembly made: its use cases, one instance of each class. */
export interface UseCaseAssembly {
  readonly useCases: readonly object[];
}

/** Nest providers that resolve each use-case class to the assembly's instance of it, for the endpoint controllers to inject. */
export function useCaseProviders(assembly: { prototype: UseCaseAssembly }, types: readonly Type[]): Provider[] {
  return types.map((type) => ({
    provide: type,
    inject: [assembly as Type<UseCaseAssembly>],
    useFactory: (made: UseCaseAssembly) => {
      const found = made.useCases.find((useCase) => useCase instanceof type);
      if (!found) throw new TypeError(`the assembly made no ${type.name}`);
      return found;
    },
  }));
}
