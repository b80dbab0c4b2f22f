import type { Command } from 'commander';

/*
 * Commander suggests an option only for a near spelling (`--nats-prot`). Here every command also
 * suggests the options a word is part of (`--port`, `--metrics`), and reports a mistyped required
 * option as the typo it is, with the suggestion, rather than as the required option missing.
 */

const UNKNOWN = /^error: unknown option '([^']+)'\n$/;
const MISSING = /^error: required option '[^']+' not specified\n$/;

/** Installs the suggestions on `program` and every command under it; call it once all are added. */
export function suggestClosestOptions(program: Command): void {
  for (const command of withSubcommands(program)) {
    const output = command.configureOutput();
    const print = output.outputError ?? ((text: string, write: (text: string) => void) => write(text));
    command.configureOutput({ ...output, outputError: (text, write) => print(explained(command, text), write) });
  }
}

function explained(command: Command, text: string): string {
  const unknown = UNKNOWN.exec(text)?.[1];
  if (unknown) return `error: unknown option '${unknown}'${suggestion(unknown.split('=')[0]!, optionNames(command), false)}\n`;
  if (MISSING.test(text)) {
    const typo = firstUnknownOption(command);
    if (typo) return `error: unknown option '${typo}'${suggestion(typo, optionNames(command), true)}\n`;
  }
  return text;
}

/** The command line's first option this command does not know, if any (the same parse commander made). */
function firstUnknownOption(command: Command): string | undefined {
  const first = command.parseOptions(process.argv.slice(2)).unknown[0];
  return first?.startsWith('--') ? first.split('=')[0] : undefined;
}

/** The long options of the command and of the commands above it, which it accepts too. */
function optionNames(command: Command): string[] {
  const names: string[] = [];
  for (let current: Command | null = command; current; current = current.parent) {
    for (const option of current.options) if (option.long && !option.hidden) names.push(option.long);
  }
  return names;
}

/**
 * `(Did you mean …?)` with the closest names: a near spelling (when commander did not already
 * offer one, `near`), else the names the typed word is part of.
 */
function suggestion(typed: string, names: readonly string[], near: boolean): string {
  const word = typed.replace(/^--/, '');
  let closest: string[] = [];
  if (near) {
    const distances = names.map((name) => editDistance(word, name.replace(/^--/, '')));
    const best = Math.min(...distances);
    if (best <= Math.max(1, Math.floor(word.length * 0.4))) closest = names.filter((_, i) => distances[i] === best);
  }
  if (closest.length === 0 && word.length >= 3) closest = names.filter((name) => name.includes(word));
  if (closest.length === 0) return '';
  return closest.length === 1 ? `\n(Did you mean ${closest[0]}?)` : `\n(Did you mean one of ${closest.join(', ')}?)`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}

function withSubcommands(command: Command): Command[] {
  return [command, ...command.commands.flatMap(withSubcommands)];
}
