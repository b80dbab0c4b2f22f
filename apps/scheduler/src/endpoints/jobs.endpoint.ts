import { endpointController } from '@mandate/bus';
import { jobCreateEndpoint, jobDeleteEndpoint, jobGetEndpoint, jobListEndpoint, jobPauseEndpoint, jobResumeEndpoint, jobRunsEndpoint } from '@mandate/contracts';
import { JobAdministration } from '../domain/job-administration.js';

/** Job definitions and their runs over NATS. */
export const JobsEndpoint = endpointController(JobAdministration, (serve) => [
  serve(jobCreateEndpoint, (jobs, request) => jobs.create(request)),
  serve(jobGetEndpoint, (jobs, request) => jobs.get(request.tenant, request.name)),
  serve(jobListEndpoint, (jobs, request) => jobs.list(request.tenant, request.limit, request.cursor)),
  serve(jobPauseEndpoint, (jobs, request) => jobs.setState(request.tenant, request.name, 'paused', request.actor)),
  serve(jobResumeEndpoint, (jobs, request) => jobs.setState(request.tenant, request.name, 'active', request.actor)),
  serve(jobDeleteEndpoint, (jobs, request) => jobs.delete(request.tenant, request.name, request.actor)),
  serve(jobRunsEndpoint, (jobs, request) => jobs.runs(request.tenant, request.name, request.limit, request.cursor)),
]);
