/** Prints one of the bench's tables: names left-aligned in the first column, figures right-aligned. */
export function printTable(header: string[], lines: string[][]): void {
  const widths = header.map((_, c) => Math.max(header[c]!.length, ...lines.map((l) => l[c]!.length)));
  const fmt = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  process.stdout.write(`\n${fmt(header)}\n${lines.map(fmt).join('\n')}\n\n`);
}

/** A ratio as the tables show it, e.g. `47.6%`. */
export const percent = (ratio: number): string => `${(ratio * 100).toFixed(1)}%`;
