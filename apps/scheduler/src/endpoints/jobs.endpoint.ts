import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import {
  jobCreateEndpoint,
  jobDeleteEndpoint,
  jobGetEndpoint,
  jobListEndpoint,
  jobPauseEndpoint,
  jobResumeEndpoint,
  jobRunsEndpoint,
  type ParsedRequestOf,
  type ResponseOf,
} from '@mandate/contracts';
import { SchedulerApp } from '../scheduler.assembly.js';

/** Job definitions and their runs over NATS. */
@Controller()
export class JobsEndpoint {
  constructor(@Inject(SchedulerApp) private readonly app: SchedulerApp) {}

  @MessagePattern(jobCreateEndpoint.subject)
  create(@Payload() request: ParsedRequestOf<typeof jobCreateEndpoint>): Promise<ResponseOf<typeof jobCreateEndpoint>> {
    return this.app.createJob(request);
  }

  @MessagePattern(jobGetEndpoint.subject)
  get(@Payload() request: ParsedRequestOf<typeof jobGetEndpoint>): Promise<ResponseOf<typeof jobGetEndpoint>> {
    return this.app.jobs.view(request.tenant, request.name);
  }

  @MessagePattern(jobListEndpoint.subject)
  list(@Payload() request: ParsedRequestOf<typeof jobListEndpoint>): Promise<ResponseOf<typeof jobListEndpoint>> {
    return this.app.jobs.list(request.tenant, request.limit, request.cursor);
  }

  @MessagePattern(jobPauseEndpoint.subject)
  pause(@Payload() request: ParsedRequestOf<typeof jobPauseEndpoint>): Promise<ResponseOf<typeof jobPauseEndpoint>> {
    return this.app.setState(request.tenant, request.name, 'paused', request.actor);
  }

  @MessagePattern(jobResumeEndpoint.subject)
  resume(@Payload() request: ParsedRequestOf<typeof jobResumeEndpoint>): Promise<ResponseOf<typeof jobResumeEndpoint>> {
    return this.app.setState(request.tenant, request.name, 'active', request.actor);
  }

  @MessagePattern(jobDeleteEndpoint.subject)
  async delete(@Payload() request: ParsedRequestOf<typeof jobDeleteEndpoint>): Promise<ResponseOf<typeof jobDeleteEndpoint>> {
    await this.app.deleteJob(request.tenant, request.name, request.actor);
    return { deleted: true };
  }

  @MessagePattern(jobRunsEndpoint.subject)
  runs(@Payload() request: ParsedRequestOf<typeof jobRunsEndpoint>): Promise<ResponseOf<typeof jobRunsEndpoint>> {
    return this.app.jobs.runs(request.tenant, request.name, request.limit, request.cursor);
  }
}
