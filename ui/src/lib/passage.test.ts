import { describe, expect, it } from 'vitest';
import { highlightSnippet } from './passage';

describe('highlightSnippet', () => {
  it('marks the snippet inside the passage, whitespace-insensitive', () => {
    const text = 'Intro.\nFull-time employees get  30 days\nof paid vacation. Outro.';
    const segs = highlightSnippet(text, 'Full-time employees get 30 days of paid vacation.');
    expect(segs.map((s) => s.mark)).toEqual([false, true, false]);
    expect(segs[1].text).toBe('Full-time employees get  30 days\nof paid vacation.');
    expect(segs.map((s) => s.text).join('')).toBe(text);
  });

  it('marks the whole passage when the snippet was shortened differently', () => {
    expect(highlightSnippet('abc', 'xyz')).toEqual([{ text: 'abc', mark: true }]);
  });

  it('accepts a snippet cut with an ellipsis', () => {
    const segs = highlightSnippet('Der Urlaub wird im Portal beantragt.', 'Der Urlaub wird…');
    expect(segs[0]).toEqual({ text: 'Der Urlaub wird', mark: true });
  });
});
