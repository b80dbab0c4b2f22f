import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { schedulerService } from './scheduler.module.js';
import { loadSchedulerConfig } from './config.js';

await runServiceMain(schedulerService, loadSchedulerConfig);
