import 'reflect-metadata';
import { runServiceMain } from '@mandate/bus';
import { consentService } from './consent.module.js';
import { loadConsentConfig } from './config.js';

await runServiceMain(consentService, loadConsentConfig);
