import { Controller, Inject } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { echoEndpoint, type ParsedRequestOf, type ResponseOf } from '@mandate/contracts';
import { type MandateRpcContext, SERVICE_INSTANCE } from '@mandate/bus';
import { echo } from '../domain/echo.js';

@Controller()
export class EchoEndpoint {
  constructor(@Inject(SERVICE_INSTANCE) private readonly instance: string) {}

  @MessagePattern(echoEndpoint.subject)
  async echo(
    @Payload() request: ParsedRequestOf<typeof echoEndpoint>,
    @Ctx() ctx: MandateRpcContext,
  ): Promise<ResponseOf<typeof echoEndpoint>> {
    return { message: await echo(request.message, request.delayMs), instance: this.instance, traceId: ctx.traceId };
  }
}
