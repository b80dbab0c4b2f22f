import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { consentService } from './consent.module.js';

await runServiceMain(consentService);
