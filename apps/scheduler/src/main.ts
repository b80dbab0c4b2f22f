import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { schedulerService } from './scheduler.module.js';

await runServiceMain(schedulerService);
