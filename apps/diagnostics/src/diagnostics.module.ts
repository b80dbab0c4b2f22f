import { diagnosticsEnvSchema } from './config.js';
import { Module } from '@nestjs/common';
import { diagnosticsEndpoints, DIAGNOSTICS_SERVICE } from '@mandate/contracts';
import type { ServiceDefinition } from '@mandate/bus';
import { EchoEndpoint } from './endpoints/echo.endpoint.js';

@Module({ controllers: [EchoEndpoint] })
export class DiagnosticsModule {}

export const diagnosticsService: ServiceDefinition = {
  name: DIAGNOSTICS_SERVICE,
  version: '0.1.0',
  description: 'Echo endpoint for checking the bus and the service layer',
  module: DiagnosticsModule,
  envSchema: diagnosticsEnvSchema,
  endpoints: diagnosticsEndpoints,
};

export { diagnosticsEnvSchema } from './config.js';
