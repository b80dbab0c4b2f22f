/**
 * Vendor presets for OAuth2 credential providers: endpoints and quirks as data, so adding a
 * vendor is adding an entry, not code. `{param}` placeholders are filled from the provider's
 * `vendorParams` (e.g. Microsoft's tenant id, an Okta domain).
 */
export interface ProviderPreset {
  readonly displayName: string;
  /** Placeholders the endpoints use; each is required in `vendorParams`. */
  readonly params: readonly string[];
  readonly authorizationEndpoint: string;
  readonly tokenEndpoint: string;
  readonly revocationEndpoint?: string;
  /** The issuer of the ID tokens some vendors return with tokens (checked by the OAuth client). */
  readonly issuer?: string;
  /** How scopes are joined in requests (most use a space; some a comma). */
  readonly scopeSeparator: ' ' | ',';
  /** Added to every authorization request, e.g. what makes Google issue a refresh token. */
  readonly extraAuthorizeParams: Readonly<Record<string, string>>;
  /** Whether the vendor rotates the refresh token on refresh (then the new one must be saved first). */
  readonly rotatesRefreshTokens: boolean;
  /** Whether refresh tokens exist at all for this vendor's default apps. */
  readonly refreshTokens: boolean;
}

const DOMAIN_PARAM = /^[A-Za-z0-9.-]{1,253}$/;

export const PRESET_PARAM_PATTERNS: Readonly<Record<string, RegExp>> = {
  tenantId: /^[A-Za-z0-9.-]{1,128}$/,
  domain: DOMAIN_PARAM,
  instance: /^(login|test)$/,
};

export const PROVIDER_PRESETS = {
  google: {
    displayName: 'Google',
    params: [],
    authorizationEndpoint: 'https://accounts.google.com/o/oauth2/v2/auth',
    tokenEndpoint: 'https://oauth2.googleapis.com/token',
    revocationEndpoint: 'https://oauth2.googleapis.com/revoke',
    issuer: 'https://accounts.google.com',
    scopeSeparator: ' ',
    extraAuthorizeParams: { access_type: 'offline', prompt: 'consent' },
    rotatesRefreshTokens: false,
    refreshTokens: true,
  },
  github: {
    displayName: 'GitHub',
    params: [],
    authorizationEndpoint: 'https://github.com/login/oauth/authorize',
    tokenEndpoint: 'https://github.com/login/oauth/access_token',
    scopeSeparator: ' ',
    extraAuthorizeParams: {},
    rotatesRefreshTokens: true,
    refreshTokens: true,
  },
  slack: {
    displayName: 'Slack',
    params: [],
    authorizationEndpoint: 'https://slack.com/oauth/v2/authorize',
    tokenEndpoint: 'https://slack.com/api/oauth.v2.access',
    revocationEndpoint: 'https://slack.com/api/auth.revoke',
    scopeSeparator: ',',
    extraAuthorizeParams: {},
    rotatesRefreshTokens: true,
    refreshTokens: true,
  },
  salesforce: {
    displayName: 'Salesforce',
    params: ['instance'],
    authorizationEndpoint: 'https://{instance}.salesforce.com/services/oauth2/authorize',
    tokenEndpoint: 'https://{instance}.salesforce.com/services/oauth2/token',
    revocationEndpoint: 'https://{instance}.salesforce.com/services/oauth2/revoke',
    issuer: 'https://{instance}.salesforce.com',
    scopeSeparator: ' ',
    extraAuthorizeParams: {},
    rotatesRefreshTokens: false,
    refreshTokens: true,
  },
  microsoft: {
    displayName: 'Microsoft Entra ID',
    params: ['tenantId'],
    authorizationEndpoint: 'https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/authorize',
    tokenEndpoint: 'https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/token',
    issuer: 'https://login.microsoftonline.com/{tenantId}/v2.0',
    scopeSeparator: ' ',
    extraAuthorizeParams: {},
    rotatesRefreshTokens: true,
    refreshTokens: true,
  },
  atlassian: {
    displayName: 'Atlassian',
    params: [],
    authorizationEndpoint: 'https://auth.atlassian.com/authorize',
    tokenEndpoint: 'https://auth.atlassian.com/oauth/token',
    scopeSeparator: ' ',
    extraAuthorizeParams: { audience: 'api.atlassian.com', prompt: 'consent' },
    rotatesRefreshTokens: true,
    refreshTokens: true,
  },
  okta: {
    displayName: 'Okta',
    params: ['domain'],
    authorizationEndpoint: 'https://{domain}/oauth2/v1/authorize',
    tokenEndpoint: 'https://{domain}/oauth2/v1/token',
    revocationEndpoint: 'https://{domain}/oauth2/v1/revoke',
    issuer: 'https://{domain}',
    scopeSeparator: ' ',
    extraAuthorizeParams: {},
    rotatesRefreshTokens: true,
    refreshTokens: true,
  },
  auth0: {
    displayName: 'Auth0',
    params: ['domain'],
    authorizationEndpoint: 'https://{domain}/authorize',
    tokenEndpoint: 'https://{domain}/oauth/token',
    revocationEndpoint: 'https://{domain}/oauth/revoke',
    issuer: 'https://{domain}/',
    scopeSeparator: ' ',
    extraAuthorizeParams: {},
    rotatesRefreshTokens: true,
    refreshTokens: true,
  },
} as const satisfies Record<string, ProviderPreset>;

export type PresetName = keyof typeof PROVIDER_PRESETS;
export const PRESET_NAMES = Object.keys(PROVIDER_PRESETS) as [PresetName, ...PresetName[]];

/** A preset's endpoint with its placeholders filled; a missing or malformed param is a TypeError (validated earlier). */
export function fillPresetUrl(template: string, params: Readonly<Record<string, string>>): string {
  return template.replace(/\{(\w+)\}/g, (_match, name: string) => {
    const value = params[name];
    if (value === undefined || !PRESET_PARAM_PATTERNS[name]?.test(value)) throw new TypeError(`preset parameter ${name} is missing or invalid`);
    return value;
  });
}
