/** A named check that fails by throwing; `reasons` are what it can fail with (most have one). */
export interface Check<Context, Reason extends string> {
  readonly name: string;
  readonly reasons: readonly Reason[];
  run(ctx: Context): void | Promise<void>;
}

/**
 * Runs the table in order and stops at the first failure, so a later (costlier) check never sees
 * what an earlier one refused. An error `reasonOf` finds no reason in is a fault: rethrown, never a denial.
 */
export async function runChecks<Context, Reason extends string>(table: readonly Check<Context, Reason>[], ctx: Context, reasonOf: (error: unknown) => Reason | undefined) {
  for (const check of table) {
    try {
      await check.run(ctx);
    } catch (error) {
      const reason = reasonOf(error);
      if (reason === undefined) throw error;
      return { check: check.name, reason, error };
    }
  }
}
