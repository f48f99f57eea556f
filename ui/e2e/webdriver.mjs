// A minimal W3C WebDriver client (fetch only, no dependencies) for
// tauri-driver → WebKitWebDriver → the Tresor window.
const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf';

export class Session {
  constructor(base, id) {
    this.base = base;
    this.id = id;
  }

  static async start(base, capabilities) {
    const r = await call(base, 'POST', '/session', { capabilities: { alwaysMatch: capabilities } });
    return new Session(base, r.sessionId);
  }

  cmd(method, path, body) {
    return call(this.base, method, `/session/${this.id}${path}`, body);
  }

  async find(css) {
    const r = await this.cmd('POST', '/element', { using: 'css selector', value: css });
    return r[ELEMENT];
  }

  async findAll(css) {
    const r = await this.cmd('POST', '/elements', { using: 'css selector', value: css });
    return r.map((e) => e[ELEMENT]);
  }

  /** Waits until `css` matches (and `pred(text)` holds for its text, when given). */
  async waitFor(css, { timeout = 60000, pred = null, what = css } = {}) {
    const end = Date.now() + timeout;
    let last = '';
    for (;;) {
      try {
        const el = await this.find(css);
        if (!pred) return el;
        last = await this.text(el);
        if (pred(last)) return el;
      } catch {
        // not there yet
      }
      if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last text: ${JSON.stringify(last).slice(0, 300)})`);
      await sleep(200);
    }
  }

  async click(css) {
    const el = await this.waitFor(css);
    await this.cmd('POST', `/element/${el}/click`, {});
  }

  async type(css, text) {
    const el = await this.waitFor(css);
    await this.cmd('POST', `/element/${el}/clear`, {});
    await this.cmd('POST', `/element/${el}/value`, { text });
  }

  /** The element's text content (WebDriver's rendered text drops text cut by CSS ellipsis). */
  async text(el) {
    const t = await this.exec('return arguments[0].textContent;', [{ [ELEMENT]: el }]);
    return String(t ?? '').replace(/\s+/g, ' ').trim();
  }

  exec(script, args = []) {
    return this.cmd('POST', '/execute/sync', { script, args });
  }

  /** A full-window PNG after the next two animation frames. */
  async screenshot() {
    await this.cmd('POST', '/execute/async', {
      // two frames (painted), or 500 ms when the page does not schedule frames
      script:
        'const done = arguments[arguments.length - 1]; setTimeout(() => done(false), 500); requestAnimationFrame(() => requestAnimationFrame(() => done(true)));',
      args: [],
    });
    return Buffer.from(await this.cmd('GET', '/screenshot'), 'base64');
  }

  async quit() {
    await this.cmd('DELETE', '');
  }
}

async function call(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    // a hung driver call fails the test instead of hanging it
    signal: AbortSignal.timeout(120000),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok || (json.value && json.value.error)) {
    const v = json.value || {};
    throw new Error(`${method} ${path}: ${v.error || res.status} ${v.message || ''}`.trim());
  }
  return json.value !== undefined ? json.value : json;
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
