/** What the CLI prints: progress to stderr, results to stdout, colour only on a terminal. */
const useColour = process.stderr.isTTY && !process.env['NO_COLOR'];

const paint = (code: number) => (text: string) => (useColour ? `\u001b[${code}m${text}\u001b[0m` : text);
export const bold = paint(1);
export const dim = paint(2);
export const green = paint(32);
export const red = paint(31);
export const yellow = paint(33);

/** A line on stderr behind a mark that says what kind it is: progress, done, a warning, a failure. */
const marked = (mark: string) => (message: string) => void process.stderr.write(`${mark} ${message}\n`);
export const step = marked(dim('•'));
export const done = marked(green('✓'));
export const warn = marked(yellow('!'));
export const fail = marked(red('✗'));

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

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A result: with `--json` as the service returned it, otherwise as `format` shows it to a person. */
export function printResult<T>(result: T, json: boolean, format: (result: T) => string): void {
  if (json) return printJson(result);
  process.stdout.write(`${format(result)}\n`);
}

/** A change's result: with `--json` as the service returned it, otherwise `message` saying what was done. */
export function printDone(result: unknown, json: boolean, message: string): void {
  if (json) printJson(result);
  else done(message);
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length)));
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd()).join('\n');
}

/** What a block shows for a field that has no value. */
export const none = dim('none');

/** A block field's values, or "none" when there are none. */
export function orNone(values: readonly string[] | undefined): readonly string[] {
  return values && values.length > 0 ? values : [none];
}

/** A table with a header row, on stdout. */
export function printTable(header: string[], rows: string[][]): void {
  process.stdout.write(`${table([header, ...rows])}\n`);
}

/**
 * A readable key/value block: one label per field, padded to one width; a field with several
 * values gets one line per value.
 */
export function block(fields: readonly (readonly [string, readonly string[]])[]): string {
  const width = Math.max(...fields.map(([label]) => label.length)) + 2;
  return fields.flatMap(([label, values]) => values.map((value, i) => `${i === 0 ? bold(label.padEnd(width)) : ' '.repeat(width)}${value}`)).join('\n');
}
