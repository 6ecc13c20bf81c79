/**
 * The ASCII tables of `-w table`, laid out like olekukonko/tablewriter 0.0.5 as etcdctl
 * configures it: borders on, centered upper-cased headers, right-aligned cells, and cells wider
 * than 30 columns wrapped at word boundaries with tablewriter's minimum-raggedness algorithm.
 */

const MAX_ROW_WIDTH = 30;

/** Terminal columns taken by a code point (go-runewidth, non-East-Asian locale). */
export function runeWidth(cp: number): number {
  if (cp === 0) return 0;
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return 0;
  const ch = String.fromCodePoint(cp);
  if (/^[\p{Mn}\p{Me}\u200b-\u200f\u2028-\u202e\u2060-\u2063\ufeff]$/u.test(ch)) return 0;
  if (
    (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0x303e) ||
    (cp >= 0x3041 && cp <= 0x33ff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0xa000 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) ||
    (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd)
  ) {
    return 2;
  }
  return 1;
}

// deno-lint-ignore no-control-regex
const ansi = /\x1b\[(?:[0-9]{1,3}(?:;[0-9]{1,3})*)?[m|K]/g;

/** tablewriter.DisplayWidth: columns taken by a string, ANSI colour codes excluded. */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s.replace(ansi, "")) w += runeWidth(ch.codePointAt(0)!);
  return w;
}

/** tablewriter.WrapWords: splits words into lines minimising the squared slack. */
export function wrapWords(words: string[], spc: number, lim: number, pen: number): string[][] {
  const n = words.length;
  const length: number[][] = [];
  for (let i = 0; i < n; i++) {
    length.push(new Array(n).fill(0));
    length[i][i] = displayWidth(words[i]);
    for (let j = i + 1; j < n; j++) length[i][j] = length[i][j - 1] + spc + displayWidth(words[j]);
  }
  const nbrk = new Array<number>(n).fill(0);
  const cost = new Array<number>(n).fill(2147483647);
  for (let i = n - 1; i >= 0; i--) {
    if (length[i][n - 1] <= lim) {
      cost[i] = 0;
      nbrk[i] = n;
    } else {
      for (let j = i + 1; j < n; j++) {
        const d = lim - length[i][j - 1];
        let c = d * d + cost[j];
        if (length[i][j - 1] > lim) c += pen;
        if (c < cost[i]) {
          cost[i] = c;
          nbrk[i] = j;
        }
      }
    }
  }
  const lines: string[][] = [];
  for (let i = 0; i < n; i = nbrk[i]) lines.push(words.slice(i, nbrk[i]));
  return lines;
}

/** tablewriter.WrapString: wraps at spaces to `lim` columns (raised to the longest word). */
export function wrapString(s: string, lim: number): string[] {
  const words = s.replaceAll("\n", " ").split(" ");
  for (const w of words) lim = Math.max(lim, displayWidth(w));
  return wrapWords(words, 1, lim, 1e5).map((l) => l.join(" "));
}

/** tablewriter.Title: header text as printed ("raft_term" becomes "RAFT TERM"). */
export function title(name: string): string {
  const origLen = name.length;
  const rs = [...name];
  const isNumOrSpace = (r: string) => (r >= "0" && r <= "9") || r === " ";
  for (let i = 0; i < rs.length; i++) {
    if (rs[i] === "_") {
      rs[i] = " ";
    } else if (rs[i] === ".") {
      if (
        (i !== 0 && !isNumOrSpace(rs[i - 1])) || (i !== rs.length - 1 && !isNumOrSpace(rs[i + 1]))
      ) {
        rs[i] = " ";
      }
    }
  }
  let out = rs.join("").trim();
  if (out.length === 0 && origLen > 0) out = " ";
  return out.toUpperCase();
}

function padCenter(s: string, width: number): string {
  const gap = width - displayWidth(s);
  if (gap <= 0) return s;
  const left = Math.floor(gap / 2);
  return " ".repeat(left) + s + " ".repeat(gap - left);
}

function padLeft(s: string, width: number): string {
  const gap = width - displayWidth(s);
  return gap > 0 ? " ".repeat(gap) + s : s;
}

/** Renders a table as etcdctl's table printer does (ALIGN_RIGHT, headers centered). */
export function renderTable(header: string[], rows: string[][]): string {
  const cs = new Map<number, number>();
  const rs = new Map<number, number>();
  const parse = (str: string, col: number, row: number): string[] => {
    let raw = str.split("\n");
    let maxWidth = 0;
    for (const line of raw) maxWidth = Math.max(maxWidth, displayWidth(line));
    if (maxWidth > MAX_ROW_WIDTH) maxWidth = MAX_ROW_WIDTH;
    let newMax = maxWidth;
    const newRaw: string[] = [];
    raw = [raw.join(" ")];
    raw.forEach((para, i) => {
      const lines = wrapString(para, maxWidth);
      for (const l of lines) newMax = Math.max(newMax, displayWidth(l));
      if (i > 0) newRaw.push(" ");
      newRaw.push(...lines);
    });
    const v = cs.get(col);
    if (v === undefined || v < newMax || v === 0) cs.set(col, newMax);
    const h = rs.get(row);
    if (h === undefined || h < newRaw.length || h === 0) rs.set(row, newRaw.length);
    return newRaw;
  };
  const headers = header.map((h, i) => parse(h, i, -1));
  const lines = rows.map((row, n) => row.map((cell, i) => parse(cell, i, n)));

  const out: string[] = [];
  const rule = () => {
    let s = "+";
    for (let i = 0; i < cs.size; i++) s += "-" + "-".repeat(cs.get(i)!) + "-+";
    out.push(s + "\n");
  };
  rule();
  if (headers.length > 0) {
    const end = cs.size - 1;
    for (let x = 0; x < (rs.get(-1) ?? 0); x++) {
      let s = "|";
      for (let y = 0; y <= end; y++) {
        const h = y < headers.length && x < headers[y].length ? headers[y][x] : "";
        s += " " + padCenter(title(h), cs.get(y)!) + " |";
      }
      out.push(s + "\n");
    }
    rule();
  }
  lines.forEach((columns, rowIdx) => {
    const max = rs.get(rowIdx) ?? 0;
    const cols = columns.map((c) => {
      const padded = [...c];
      while (padded.length < max) padded.push("  ");
      return padded;
    });
    for (let x = 0; x < max; x++) {
      let s = "";
      for (let y = 0; y < cols.length; y++) s += "| " + padLeft(cols[y][x], cs.get(y)!) + " ";
      out.push(s + "|\n");
    }
  });
  rule();
  return out.join("");
}
