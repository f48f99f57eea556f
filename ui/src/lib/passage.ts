// The sources panel's highlighting: within a cited document's passages,
// which one the answer cited, and the words of the cited snippet to mark.

export interface Segment {
  text: string;
  mark: boolean;
}

/** Splits `text` into segments, marking the longest stretch that equals `snippet` (whitespace-insensitive). */
export function highlightSnippet(text: string, snippet: string): Segment[] {
  const needle = snippet.replace(/…$/, '').trim();
  if (!needle) return [{ text, mark: false }];
  const norm = (s: string) => s.replace(/\s+/g, ' ');
  const idx = norm(text).indexOf(norm(needle));
  if (idx < 0) return [{ text, mark: true }];
  // map the index in the normalised text back to the original
  let i = 0;
  let n = 0;
  const map: number[] = [];
  while (i < text.length) {
    const ws = /\s/.test(text[i]);
    map[n] = i;
    if (ws) {
      while (i < text.length && /\s/.test(text[i])) i++;
    } else {
      i++;
    }
    n++;
  }
  map[n] = text.length;
  const start = map[idx];
  const end = map[Math.min(idx + norm(needle).length, n)];
  const out: Segment[] = [];
  if (start > 0) out.push({ text: text.slice(0, start), mark: false });
  out.push({ text: text.slice(start, end), mark: true });
  if (end < text.length) out.push({ text: text.slice(end), mark: false });
  return out;
}
