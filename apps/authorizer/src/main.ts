import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { authorizerService } from './authorizer.module.js';

await runServiceMain(authorizerService);
