import { describe, expect, it } from 'vitest';
import { loadUPlot, validLocale } from './uplot';

describe('uplot loader', () => {
  it('keeps a valid language tag and replaces one Intl rejects', () => {
    expect(validLocale('de-DE')).toBe('de-DE');
    expect(validLocale('C')).toBe('en-GB');
    expect(validLocale(undefined)).toBe('en-GB');
  });

  it('loads uPlot where navigator.language is the POSIX "C" locale', async () => {
    // jsdom has no matchMedia (uPlot watches the pixel ratio with it)
    const mql = { matches: false, addListener() {}, removeListener() {}, addEventListener() {}, removeEventListener() {} };
    window.matchMedia = (() => mql) as unknown as typeof window.matchMedia;
    Object.defineProperty(navigator, 'language', { value: 'C', configurable: true });
    expect(() => new Intl.NumberFormat(navigator.language)).toThrow(RangeError);
    const uPlot = await loadUPlot();
    expect(typeof uPlot).toBe('function');
    expect(navigator.language).toBe('en-GB');
  });
});
