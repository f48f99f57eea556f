import { describe, expect, it } from 'vitest';
import { citations, renderAnswer } from './markdown';

describe('renderAnswer', () => {
  it('turns [n] markers into citation chips', () => {
    const html = renderAnswer('Full-time staff get 30 days [1]. Part-time pro rata [2][1].');
    const doc = new DOMParser().parseFromString(html, 'text/html');
    const chips = [...doc.querySelectorAll('button.chip')].map((b) => b.getAttribute('data-cite'));
    expect(chips).toEqual(['1', '2', '1']);
    expect(doc.body.textContent).toContain('Full-time staff get 30 days');
  });

  it('escapes HTML from the model instead of rendering it', () => {
    const html = renderAnswer('<img src=x onerror=alert(1)> <script>alert(2)</script> [1]');
    const doc = new DOMParser().parseFromString(html, 'text/html');
    expect(doc.querySelector('img')).toBeNull();
    expect(doc.querySelector('script')).toBeNull();
    expect(doc.body.textContent).toContain('<img src=x');
  });

  it('renders Markdown and highlights code with the bundled highlighter', () => {
    const html = renderAnswer('**Wichtig:**\n\n- eins\n- zwei\n\n```rust\nfn main() { let x = 1; }\n```\n');
    expect(html).toContain('<strong>Wichtig:</strong>');
    expect(html).toContain('<li>eins</li>');
    expect(html).toMatch(/<span class="hljs-keyword">fn<\/span>/);
  });

  it('does not turn [n] inside code into chips', () => {
    expect(renderAnswer('`a[1]`')).not.toContain('data-cite');
  });

  it('keeps javascript: links out', () => {
    expect(renderAnswer('[x](javascript:alert(1))')).not.toContain('href="javascript');
  });
});

describe('citations', () => {
  it('lists citation numbers in first-appearance order', () => {
    expect(citations('a [2]. b [1]. c [2].')).toEqual([2, 1]);
    expect(citations('no sources')).toEqual([]);
  });
});
