import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { auditService } from './audit.module.js';
import { loadAuditConfig } from './config.js';

await runServiceMain(auditService, loadAuditConfig);
