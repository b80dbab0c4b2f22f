import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { gatewayService } from './gateway.module.js';

await runServiceMain(gatewayService);
