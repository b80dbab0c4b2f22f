/** Waits `delayMs`, then returns the message: the whole of the diagnostics domain. */
export async function echo(message: string, delayMs = 0): Promise<string> {
  if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
  return message;
}
