import type { Command } from 'commander';
import type { BusClient } from '@mandate/bus/client';
import { withBus, type BusOptions } from './bus.js';
import { dim, printJson, printTable, step } from './output.js';
import { positiveInteger } from './parse.js';

/*
 * Lists come from the services a page at a time: `--limit` items from `--cursor` on, or with
 * `--all` every page to the end. What the list commands share: those options, fetching, printing.
 */

export interface PageOptions {
  limit?: number;
  cursor?: string;
  all: boolean;
}

export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

/** `--limit`, `--cursor` and `--all`; `what` names the items in the help of `--limit`. */
export function withPageOptions(command: Command, what: string): Command {
  return command
    .option('--limit <n>', `${what} per page (1-1000, default 100)`, positiveInteger)
    .option('--cursor <cursor>', 'continue from where a previous page ended')
    .option('--all', 'follow every page to the end', false);
}

/** One page of a list (from `--cursor`), or with `--all` every page to the end, saying on stderr how far it got. */
export function listPages<T>(natsUrl: string, options: PageOptions, what: string, page: (bus: BusClient, paging: { limit?: number; cursor?: string }) => Promise<Page<T>>) {
  return withBus(natsUrl, async (bus): Promise<Page<T>> => {
    const items: T[] = [];
    let cursor = options.cursor;
    do {
      if (items.length > 0) step(`${items.length} ${what} so far, fetching the next page…`);
      const next = await page(bus, { ...(options.limit !== undefined ? { limit: options.limit } : {}), ...(cursor !== undefined ? { cursor } : {}) });
      items.push(...next.items);
      cursor = next.nextCursor;
    } while (options.all && cursor);
    return { items, ...(cursor ? { nextCursor: cursor } : {}) };
  });
}

/**
 * A page of `mandate <noun> list` as a table (or JSON); an empty one says so, and one with more
 * after it says on stderr how to fetch the rest.
 */
export function printPage<T>(page: Page<T>, options: BusOptions & PageOptions, noun: string, header: string[], row: (item: T) => string[]): void {
  if (options.json) return printJson(page);
  if (page.items.length === 0) process.stdout.write(`no ${noun}s in tenant ${options.tenant}${options.cursor ? ' after this cursor' : ''}\n`);
  else printTable(header, page.items.map(row));
  if (page.nextCursor) process.stderr.write(dim(`more: mandate ${noun} list --cursor ${page.nextCursor}  (or --all)\n`));
}
