import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { authorizerService } from './authorizer.module.js';
import { loadAuthorizerConfig } from './config.js';

await runServiceMain(authorizerService, loadAuthorizerConfig);
