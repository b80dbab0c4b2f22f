/** What the CLI prints: progress to stderr, results to stdout, colour only on a terminal. */
const useColour = process.stderr.isTTY && !process.env['NO_COLOR'];

const paint = (code: number) => (text: string) => (useColour ? `\u001b[${code}m${text}\u001b[0m` : text);
export const bold = paint(1);
export const dim = paint(2);
export const green = paint(32);
export const red = paint(31);
export const yellow = paint(33);

export function step(message: string): void {
  process.stderr.write(`${dim('•')} ${message}\n`);
}

export function done(message: string): void {
  process.stderr.write(`${green('✓')} ${message}\n`);
}

export function warn(message: string): void {
  process.stderr.write(`${yellow('!')} ${message}\n`);
}

export function fail(message: string): void {
  process.stderr.write(`${red('✗')} ${message}\n`);
}

/** A failure the user can act on: printed without a stack, exit code 1. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)));
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()).join('\n');
}

/**
 * A readable key/value block: one label per field, padded to one width; a field with several
 * values gets one line per value.
 */
export function block(fields: readonly (readonly [string, readonly string[]])[]): string {
  const width = Math.max(...fields.map(([label]) => label.length)) + 2;
  return fields.flatMap(([label, values]) => values.map((value, i) => `${i === 0 ? bold(label.padEnd(width)) : ' '.repeat(width)}${value}`)).join('\n');
}
