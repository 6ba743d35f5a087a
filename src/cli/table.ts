// Plain-text tables for CLI listings: columns padded to the widest cell, no colours (pipes stay clean).
// One pass for the widths and one for the text: `wsh ls` prints 10,000 rows with it.
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h) => h.length);
  for (const row of rows) {
    for (let i = 0; i < widths.length; i++) widths[i] = Math.max(widths[i]!, (row[i] ?? '').length);
  }
  const last = widths.length - 1;
  const line = (cells: string[]) => {
    let text = '';
    for (let i = 0; i < last; i++) text += (cells[i] ?? '').padEnd(widths[i]!) + '  ';
    return (text + (cells[last] ?? '')).trimEnd();
  };
  const lines = [line(headers), line(widths.map((w) => '-'.repeat(w)))];
  for (const row of rows) lines.push(line(row));
  return lines.join('\n') + '\n';
}
