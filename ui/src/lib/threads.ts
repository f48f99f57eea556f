// Thread search for the sidebar: every word of the query must appear in the
// title, case- and accent-insensitive.
import type { ThreadInfo } from './api';

export function fold(s: string): string {
  return s.normalize('NFD').replace(/\p{M}/gu, '').replace(/ß/g, 'ss').toLowerCase();
}

export function filterThreads(threads: ThreadInfo[], query: string): ThreadInfo[] {
  const words = fold(query).split(/\s+/).filter(Boolean);
  if (!words.length) return threads;
  return threads.filter((t) => {
    const title = fold(t.title);
    return words.every((w) => title.includes(w));
  });
}
