import { Option } from 'commander';
import { EXIT } from './bus.js';
import { readOptionFile, readStdin, warnIfOthersCanRead } from './input.js';
import { attributeOf } from './parse.js';
import { CliError, step } from './output.js';

/*
 * Secrets (client secrets, API keys) never come as a plain command-line value: that would put them
 * in shell history and in `ps` for every user of the machine. Each is read from a file, from an
 * environment variable, or from stdin (`-`). Nothing here ever prints a secret, and no message
 * quotes a value that might be one (an environment variable's name could be a pasted secret).
 */

/** One secret's three options, e.g. `--key-file`, `--key-env`, `--key -`. */
export interface SecretFlags {
  /** The option stem: `key` gives `--key-file`, `--key-env`, `--key`. */
  readonly stem: string;
  /** What the secret is, for help and messages: "API key", "client secret". */
  readonly what: string;
}

export interface SecretSources {
  file?: string | undefined;
  env?: string | undefined;
  stdin?: string | undefined;
}

/** Where commander puts the three options of `flags` on the options object. */
export function secretSourcesOf(options: object, flags: SecretFlags): SecretSources {
  const o = options as Record<string, string | undefined>;
  const key = attributeOf(flags.stem);
  return { file: o[`${key}File`], env: o[`${key}Env`], stdin: o[key] };
}

export function secretGiven(sources: SecretSources): boolean {
  return sources.file !== undefined || sources.env !== undefined || sources.stdin !== undefined;
}

/** The three options, at most one of them per command line; `purpose` follows "from a file", e.g. " to rotate it". */
export function secretOptions(flags: SecretFlags, purpose = ''): Option[] {
  const names = [`${flags.stem}-file`, `${flags.stem}-env`, flags.stem];
  const others = (self: string) => names.filter((n) => n !== self).map(attributeOf);
  return [
    new Option(`--${flags.stem}-file <file>`, `read the ${flags.what} from a file${purpose} (a trailing line break is dropped)`).conflicts(others(`${flags.stem}-file`)),
    new Option(`--${flags.stem}-env <var>`, `read the ${flags.what} from this environment variable (give its name, not the value)`).conflicts(others(`${flags.stem}-env`)),
    new Option(`--${flags.stem} <->`, `read the ${flags.what} from stdin; only "-" is accepted, never the ${flags.what} itself`).conflicts(others(flags.stem)),
  ];
}

/**
 * The secret from whichever source was given, or undefined when none was. Refuses a plain value in
 * `--<stem>` without repeating it.
 */
export async function readSecret(flags: SecretFlags, sources: SecretSources): Promise<string | undefined> {
  const stdinFlag = `--${flags.stem}`;
  const hint = `--${flags.stem}-file FILE, --${flags.stem}-env VAR or ${stdinFlag} - (stdin)`;
  let text: string;
  let where: string;
  if (sources.stdin !== undefined) {
    if (sources.stdin !== '-') {
      throw new CliError(
        `${stdinFlag} takes only "-" (read the ${flags.what} from stdin): a ${flags.what} on the command line ends up in shell history and in ps. ` +
          `Use ${hint}. Nothing was sent.`,
        EXIT.invalid,
      );
    }
    where = 'stdin';
    if (process.stdin.isTTY) step(`reading the ${flags.what} from stdin (it is shown as you type); end with Ctrl-D`);
    text = await readStdin();
  } else if (sources.env !== undefined) {
    where = `the variable named by --${flags.stem}-env`;
    const value = process.env[sources.env];
    if (value === undefined) throw new CliError(`--${flags.stem}-env: that environment variable is not set (give the variable's name, not the ${flags.what})`, EXIT.invalid);
    text = value;
  } else if (sources.file !== undefined) {
    where = `--${flags.stem}-file ${sources.file}`;
    text = await readOptionFile(sources.file, `--${flags.stem}-file`);
    await warnIfOthersCanRead(sources.file);
  } else {
    return undefined;
  }
  const secret = text.replace(/[\r\n]+$/, '');
  if (secret.length === 0) throw new CliError(`the ${flags.what} from ${where} is empty. Nothing was sent.`, EXIT.invalid);
  return secret;
}
