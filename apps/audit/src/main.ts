import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { auditService } from './audit.module.js';

await runServiceMain(auditService);
