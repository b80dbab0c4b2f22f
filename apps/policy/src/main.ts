import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { policyService } from './policy.module.js';

await runServiceMain(policyService);
