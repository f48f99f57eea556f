// Answer rendering: Markdown (no raw HTML: the model's text is escaped),
// code blocks highlighted by a bundled highlight.js, and the engine's [n]
// citation markers turned into chip buttons the chat screen wires to the
// sources panel.
import MarkdownIt from 'markdown-it';
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';

for (const [name, lang] of Object.entries({ bash, javascript, json, python, rust, sql, typescript, xml })) {
  hljs.registerLanguage(name, lang);
}

const md = new MarkdownIt({
  html: false,
  linkify: false,
  breaks: false,
  highlight(code: string, language: string): string {
    if (language && hljs.getLanguage(language)) {
      return `<pre class="hljs"><code>${hljs.highlight(code, { language, ignoreIllegals: true }).value}</code></pre>`;
    }
    return `<pre class="hljs"><code>${escapeHtml(code)}</code></pre>`;
  },
});

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const CITE = /\[(\d{1,3})\]/g;

// [n] in text → a chip; text outside stays escaped text.
md.core.ruler.push('citation_chips', (state) => {
  for (const block of state.tokens) {
    if (block.type !== 'inline' || !block.children) continue;
    const out = [];
    for (const tok of block.children) {
      if (tok.type !== 'text' || !CITE.test(tok.content)) {
        out.push(tok);
        continue;
      }
      CITE.lastIndex = 0;
      let last = 0;
      for (const m of tok.content.matchAll(CITE)) {
        const idx = m.index ?? 0;
        if (idx > last) {
          const t = new state.Token('text', '', 0);
          t.content = tok.content.slice(last, idx);
          out.push(t);
        }
        const chip = new state.Token('html_inline', '', 0);
        chip.content = `<button type="button" class="chip" data-cite="${m[1]}" aria-label="Source ${m[1]}">${m[1]}</button>`;
        out.push(chip);
        last = idx + m[0].length;
      }
      if (last < tok.content.length) {
        const t = new state.Token('text', '', 0);
        t.content = tok.content.slice(last);
        out.push(t);
      }
    }
    block.children = out;
  }
});

/** Markdown → safe HTML with citation chips. */
export function renderAnswer(text: string): string {
  return md.render(text);
}

/** The citation numbers an answer text uses, in order of first appearance. */
export function citations(text: string): number[] {
  const seen: number[] = [];
  for (const m of text.matchAll(CITE)) {
    const n = Number(m[1]);
    if (!seen.includes(n)) seen.push(n);
  }
  return seen;
}
