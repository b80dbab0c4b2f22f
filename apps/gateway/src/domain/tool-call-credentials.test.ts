import { describe, expect, it } from 'vitest';
import { MandateError } from '@mandate/contracts';
import { credentialAfterWait, type EarlyCredential } from './tool-call.js';

const AT = Date.parse('2026-12-03T09:00:00Z');
const early = (expiresInMs?: number): EarlyCredential => ({ headers: { authorization: 'Bearer early' }, at: AT, ...(expiresInMs === undefined ? {} : { expiresAt: AT + expiresInMs }) });
const fresh = async () => ({ authorization: 'Bearer fresh' });
const refused = async (): Promise<Record<string, string>> => {
  throw new MandateError('unauthenticated', "the user's token has expired");
};

describe('the credential of a call that waited for its approval (which is used by then)', () => {
  it('right after the credential was fetched, it is used as it is', async () => {
    expect(await credentialAfterWait(early(60_000), refused, AT + 1_000)).toEqual({ authorization: 'Bearer early' });
  });

  it('after a long wait, a user token still well within its life is used without asking again (the inbound token may have lapsed meanwhile)', async () => {
    expect(await credentialAfterWait(early(3_600_000), refused, AT + 300_000)).toEqual({ authorization: 'Bearer early' });
  });

  it('after a long wait, one about to expire is fetched again', async () => {
    expect(await credentialAfterWait(early(320_000), fresh, AT + 300_000)).toEqual({ authorization: 'Bearer fresh' });
  });

  it('fetching again fails: the early one still goes while it has not expired; an expired one is no use', async () => {
    expect(await credentialAfterWait(early(310_000), refused, AT + 300_000)).toEqual({ authorization: 'Bearer early' });
    await expect(credentialAfterWait(early(290_000), refused, AT + 300_000)).rejects.toMatchObject({ code: 'unauthenticated' });
  });

  it('one without an expiry (an API key, an M2M token as cached) is fetched again after a wait, and the early one goes if that fails', async () => {
    expect(await credentialAfterWait(early(), fresh, AT + 60_000)).toEqual({ authorization: 'Bearer fresh' });
    expect(await credentialAfterWait(early(), refused, AT + 60_000)).toEqual({ authorization: 'Bearer early' });
  });
});
