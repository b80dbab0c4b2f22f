import { describe, expect, it } from 'vitest';
import { idpName } from './idp-names.js';

describe('idpName', () => {
  it.each([
    ['https://accounts.google.com/.well-known/openid-configuration', 'Google'],
    ['https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0', 'Microsoft'],
    ['https://initech.okta.com/oauth2/default', 'Okta (initech)'],
    ['https://acme.eu.auth0.com/', 'Auth0 (acme)'],
    ['https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC', 'Amazon Cognito'],
    ['https://sso.acme.example/realms/staff/.well-known/openid-configuration', 'staff (Keycloak)'],
    ['http://localhost:8080/auth/realms/acme', 'acme (Keycloak)'],
  ])('%s is %s', (url, name) => {
    expect(idpName(url)).toBe(name);
  });

  it('falls back to the host (with its port) for an IdP it does not know', () => {
    expect(idpName('https://login.acme.example/.well-known/openid-configuration')).toBe('login.acme.example');
    expect(idpName('http://127.0.0.1:4100')).toBe('127.0.0.1:4100');
  });
});
