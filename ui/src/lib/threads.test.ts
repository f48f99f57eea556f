import { describe, expect, it } from 'vitest';
import { filterThreads, fold } from './threads';
import { humanBytes, progressPercent } from './progress';
import { resolveTheme } from './theme';

const th = (id: number, title: string) => ({ id, title, kb: null, created: 0, updated: 0, messages: 0 });

describe('thread search', () => {
  const list = [th(1, 'Urlaubstage für Teilzeit'), th(2, 'Reisekosten Hotel'), th(3, 'Straßenbahn Ticket')];
  it('matches every word, ignoring case, accents and ß', () => {
    expect(filterThreads(list, 'urlaubstage FUR').map((t) => t.id)).toEqual([1]);
    expect(filterThreads(list, 'strassenbahn').map((t) => t.id)).toEqual([3]);
    expect(filterThreads(list, 'hotel urlaub')).toEqual([]);
    expect(filterThreads(list, '  ')).toHaveLength(3);
  });
  it('folds', () => expect(fold('Äpfel Größe')).toBe('apfel grosse'));
});

describe('progress and theme', () => {
  it('clamps progress and waits for a total', () => {
    expect(progressPercent(50, 200)).toBe(25);
    expect(progressPercent(10, 0)).toBe(0);
    expect(progressPercent(300, 200)).toBe(100);
    expect(progressPercent(5, null)).toBe(0);
    expect(humanBytes(0)).toBe('0 B');
    expect(humanBytes(999)).toBe('999 B');
    expect(humanBytes(1500)).toBe('1.5 KB');
    expect(humanBytes(3_400_000)).toBe('3.4 MB');
    expect(humanBytes(250_000_000)).toBe('250 MB');
  });
  it('resolves the system theme from the OS preference', () => {
    expect(resolveTheme('system', true)).toBe('dark');
    expect(resolveTheme('system', false)).toBe('light');
    expect(resolveTheme('light', true)).toBe('light');
  });
});
