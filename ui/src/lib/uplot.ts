// Loads the chart library (uPlot) on first use, in its own bundle chunk.
// uPlot builds a number format from `navigator.language` when its module
// loads; WebKitGTK under the POSIX locale (LANG=C.UTF-8) reports "C", which
// Intl rejects with a RangeError. Imported statically, that error stopped the
// whole UI from starting; here the language is mended first, and a failure
// stays in the dashboard's charts.
import type uPlot from 'uplot';

/** A language tag Intl accepts: `tag` itself, else `fallback`. */
export function validLocale(tag: string | undefined, fallback = 'en-GB'): string {
  if (!tag) return fallback;
  try {
    new Intl.NumberFormat(tag);
    return tag;
  } catch {
    return fallback;
  }
}

let loading: Promise<typeof uPlot> | null = null;

export function loadUPlot(nav: Navigator = navigator): Promise<typeof uPlot> {
  if (!loading) {
    const ok = validLocale(nav.language);
    if (ok !== nav.language) Object.defineProperty(nav, 'language', { value: ok, configurable: true });
    loading = import('uplot').then((m) => m.default);
  }
  return loading;
}
