/**
 * Go's text/tabwriter (elastic tabstops), which etcdctl's help output goes through: cells are
 * tab-terminated, a column block is a run of consecutive lines that have a cell in that column,
 * and each block is as wide as its widest cell plus padding. With the tab padding character,
 * widths round up to whole tab stops and padding is written as tabs.
 */

/** tabwriter.Writer settings (flags other than none are not needed by etcdctl). */
export interface TabwriterOptions {
  minWidth: number;
  tabWidth: number;
  padding: number;
  padChar: string;
}

/** The settings etcdctl uses: Init(w, 0, 8, 1, '\t', 0). */
export const etcdctlTabwriter: TabwriterOptions = {
  minWidth: 0,
  tabWidth: 8,
  padding: 1,
  padChar: "\t",
};

function runeCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Formats `text` exactly as writing it to a tabwriter.Writer and flushing would. */
export function tabwriterFormat(text: string, opts: TabwriterOptions = etcdctlTabwriter): string {
  // Split into lines of cells; every cell but the last in a line was tab-terminated.
  const rawLines = text.split("\n");
  const lines = rawLines.map((l) => l.split("\t"));
  const widths: number[] = [];
  const out: string[] = [];

  const padding = (textWidth: number, cellWidth: number): string => {
    if (opts.padChar === "\t") {
      if (opts.tabWidth === 0) return "";
      const cw = Math.ceil(cellWidth / opts.tabWidth) * opts.tabWidth;
      const n = cw - textWidth;
      return "\t".repeat(Math.ceil(n / opts.tabWidth));
    }
    return opts.padChar.repeat(Math.max(0, cellWidth - textWidth));
  };

  const writeLines = (line0: number, line1: number) => {
    for (let i = line0; i < line1; i++) {
      const cells = lines[i];
      let s = "";
      for (let j = 0; j < cells.length; j++) {
        const c = cells[j];
        s += c;
        if (j < cells.length - 1 && j < widths.length) s += padding(runeCount(c), widths[j]);
      }
      out.push(s);
    }
  };

  const format = (line0: number, line1: number) => {
    const column = widths.length;
    for (let current = line0; current < line1; current++) {
      if (column >= lines[current].length - 1) continue;
      writeLines(line0, current);
      line0 = current;
      let width = opts.minWidth;
      for (; current < line1; current++) {
        const cells = lines[current];
        if (column >= cells.length - 1) break;
        const w = runeCount(cells[column]) + opts.padding;
        if (w > width) width = w;
      }
      widths.push(width);
      format(line0, current);
      widths.pop();
      line0 = current;
    }
    writeLines(line0, line1);
  };

  format(0, lines.length);
  return out.join("\n");
}
