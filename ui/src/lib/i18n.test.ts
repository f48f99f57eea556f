import { describe, expect, it } from 'vitest';
import { get } from 'svelte/store';
import { dictionaries, lang, t, translate } from './i18n';

describe('i18n', () => {
  it('has every key in German and English, none empty', () => {
    const en = Object.keys(dictionaries.en).sort();
    expect(Object.keys(dictionaries.de).sort()).toEqual(en);
    for (const l of ['de', 'en'] as const) {
      for (const k of en) expect(dictionaries[l][k as keyof typeof dictionaries.en].trim()).not.toBe('');
    }
  });

  it('fills placeholders and follows the language store', () => {
    expect(translate('de', 'kb.report', { files: 3, added: 2, updated: 0, unchanged: 1, failed: 0 })).toBe(
      '3 Dateien: 2 neu, 0 geändert, 1 unverändert, 0 fehlgeschlagen',
    );
    lang.set('en');
    expect(get(t)('nav.knowledge')).toBe('Knowledge bases');
    lang.set('de');
    expect(get(t)('nav.knowledge')).toBe('Wissensbasen');
  });

  it('keeps an unknown placeholder visible instead of dropping it', () => {
    expect(translate('en', 'kb.report', { files: 1 })).toContain('{added}');
  });
});
