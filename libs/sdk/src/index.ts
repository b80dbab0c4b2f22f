/**
 * `@mandate/sdk`: what agent code imports. A {@link MandateClient} over NATS gets workload
 * access tokens and credentials; {@link withAccessToken} and {@link withApiKey} hand a
 * credential to a function (and only to it); {@link waitForConsent} waits for a person's consent,
 * {@link waitForApproval} for a person's decision on a held tool call;
 * {@link verifyToolCallReceipt} is for targets: it checks the receipt a gateway attached to a call.
 *
 * @packageDocumentation
 */
export * from './client.js';
export * from './consent-wait.js';
export * from './approval-wait.js';
export * from './with-credentials.js';
export * from './tasks.js';
export * from './tool-call-receipts.js';
