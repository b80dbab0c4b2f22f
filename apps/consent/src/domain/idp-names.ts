import { OIDC_DISCOVERY_SUFFIX } from '@mandate/contracts';

/*
 * What a person calls the identity provider they sign in at. OIDC discovery has no display name,
 * and the directory keeps none, so the name comes from the issuer URL: the well-known hosted IdPs
 * by their host, with the organisation's part of it where the host carries one (`acme.okta.com`),
 * Keycloak by its realm; anything else by its host, which is at least what the address bar shows.
 */

/** Hosted IdPs whose name is the whole host. */
const HOSTS: Record<string, string> = {
  'accounts.google.com': 'Google',
  'login.microsoftonline.com': 'Microsoft',
  'login.microsoft.com': 'Microsoft',
  'sts.windows.net': 'Microsoft',
  'gitlab.com': 'GitLab',
  'appleid.apple.com': 'Apple',
};

/** Hosted IdPs that give each organisation a subdomain: `<organisation><suffix>`. */
const ORGANISATION_SUFFIXES: [suffix: string, vendor: string][] = [
  ['.okta.com', 'Okta'],
  ['.oktapreview.com', 'Okta'],
  ['.okta-emea.com', 'Okta'],
  ['.auth0.com', 'Auth0'],
  ['.onelogin.com', 'OneLogin'],
  ['.ciamlogin.com', 'Microsoft Entra'],
  ['.b2clogin.com', 'Microsoft Entra'],
];

/** The IdP's name, from its issuer or its discovery URL. */
export function idpName(issuerOrDiscoveryUrl: string): string {
  const issuer = issuerOrDiscoveryUrl.endsWith(OIDC_DISCOVERY_SUFFIX) ? issuerOrDiscoveryUrl.slice(0, -OIDC_DISCOVERY_SUFFIX.length) : issuerOrDiscoveryUrl;
  if (!URL.canParse(issuer)) return issuer;
  const url = new URL(issuer);
  const host = url.hostname.toLowerCase();
  const known = HOSTS[host];
  if (known) return known;
  if (/^cognito-idp\.[a-z0-9-]+\.amazonaws\.com$/.test(host)) return 'Amazon Cognito';
  for (const [suffix, vendor] of ORGANISATION_SUFFIXES) {
    if (host.endsWith(suffix)) return `${vendor} (${host.slice(0, -suffix.length).split('.')[0]})`;
  }
  const realm = /^(?:\/auth)?\/realms\/([^/]+)\/?$/.exec(url.pathname)?.[1];
  if (realm) return `${realm} (Keycloak)`;
  return url.host;
}
