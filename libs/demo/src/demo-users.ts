import { RESOURCE_SCOPES } from './resource-servers.js';

/** A person who can sign in at the demo identity provider. */
export interface DemoUser {
  /** The login name, also the `sub` of their tokens. */
  login: string;
  name: string;
  email: string;
  department: string;
  groups: readonly string[];
  /** The sample APIs' scopes they hold: what `mandate demo sign-in` asks for unless told otherwise. */
  scopes: readonly string[];
}

/**
 * Everyone's password at the demo identity provider. Printed on its sign-in page and by
 * `mandate demo`: these are demo accounts, nothing about them is secret.
 */
export const DEMO_PASSWORD = 'demo';

/** The seed scenario's people: Sarah in sales (the sales-brief agent works for her), and Bob in finance. */
export const DEMO_USERS: readonly DemoUser[] = [
  {
    login: 'sarah',
    name: 'Sarah Example',
    email: 'sarah@demo.example',
    department: 'sales',
    groups: ['sales', 'agent-users'],
    scopes: [RESOURCE_SCOPES.crmNotesRead, RESOURCE_SCOPES.financeSpendRead, RESOURCE_SCOPES.docsRead, RESOURCE_SCOPES.docsWrite],
  },
  {
    login: 'bob',
    name: 'Bob Example',
    email: 'bob@demo.example',
    department: 'finance',
    groups: ['finance'],
    scopes: [RESOURCE_SCOPES.financeSpendRead],
  },
];

export function demoUser(login: string): DemoUser | undefined {
  return DEMO_USERS.find((user) => user.login === login);
}

/** The claims of a demo user's ID and access tokens, besides the registered ones. */
export function demoUserClaims(user: DemoUser): Record<string, unknown> {
  return { name: user.name, email: user.email, department: user.department, groups: [...user.groups] };
}
