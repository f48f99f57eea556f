// The desktop app's speed targets (issue #8 §5), measured — a benchmark, not a
// test: nothing here asserts a time. Started by scripts/bench-desktop (Xvfb,
// tauri-driver, a data-dir template with the sample knowledge base):
//   node e2e/bench.mjs --app BINARY --tresor CLI --template DATA_DIR --work DIR
//                      [--baseline BINARY] [--driver URL] [--rounds N] [--idle SECONDS] [--json FILE]
// --ttft-rounds N: first-token rounds (default: --rounds; 0 skips part 3).
// --baseline: another build of the app (e.g. the previous commit's), measured
// in the same rounds, alternating with --app, and reported beside it.
// 1. start-up: the app is exec'd on a fresh copy of the template; "window
//    ready" is its `ui_ready` log line (the UI painted its first screen with
//    its data, two animation frames after mount), timed from the exec.
// 2. idle memory, --idle seconds after the window is ready, no question asked
//    (no model loaded): the whole process tree (the app and WebKit's web and
//    network processes), as the sum of PSS (shared pages split between the
//    processes that map them: what the tree costs the machine) and of RSS
//    (shared pages counted in every process: an upper bound).
// 3. first token: `tresor ask Q` (exec to the first byte of the answer on
//    stdout) and the app (click on "send" to the first token painted, read
//    from the page) on fresh copies of the template, same question, runs
//    alternating CLI / app; every run starts cold (new process, no model
//    loaded). The app is driven over WebDriver (tauri-driver), 2 s after its
//    window is ready (a user takes longer to type).
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session, sleep } from './webdriver.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
for (const k of ['app', 'tresor', 'template', 'work']) {
  if (!args[k]) {
    console.error('usage: node e2e/bench.mjs --app BINARY --tresor CLI --template DATA_DIR --work DIR [--driver URL] [--rounds N] [--idle S] [--json FILE]');
    process.exit(2);
  }
}
const rounds = Number(args.rounds ?? 5);
const ttftRounds = Number(args['ttft-rounds'] ?? rounds);
const idle = Number(args.idle ?? 5);
const driver = args.driver ?? 'http://127.0.0.1:4444';
const question = args.question ?? 'How many vacation days do full-time employees get?';
mkdirSync(args.work, { recursive: true });

let copies = 0;
function freshDataDir() {
  const dir = join(args.work, `data-${++copies}`);
  rmSync(dir, { recursive: true, force: true });
  cpSync(args.template, dir, { recursive: true });
  return dir;
}

// ---- process tree memory --------------------------------------------------------

function procs() {
  const out = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(d), { ppid: Number(rest[1]), comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) });
    } catch {
      // gone
    }
  }
  return out;
}

function tree(root) {
  const all = procs();
  const pids = [root];
  for (let i = 0; i < pids.length; i++) for (const [pid, p] of all) if (p.ppid === pids[i]) pids.push(pid);
  return pids.map((pid) => ({ pid, comm: all.get(pid)?.comm ?? '?' }));
}

function kb(text, field) {
  const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) : 0;
}

function memory(root) {
  const rows = [];
  for (const { pid, comm } of tree(root)) {
    try {
      const rss = kb(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
      const pss = kb(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'), 'Pss');
      rows.push({ pid, comm, rss_mb: rss / 1024, pss_mb: pss / 1024 });
    } catch {
      // exited meanwhile
    }
  }
  return { procs: rows, rss_mb: sum(rows.map((r) => r.rss_mb)), pss_mb: sum(rows.map((r) => r.pss_mb)) };
}

function killTree(root) {
  const pids = tree(root).map((p) => p.pid).reverse();
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone
    }
  }
}

// ---- 1 + 2: start-up and idle memory -------------------------------------------------

async function startOnce(bin) {
  const data = freshDataDir();
  const t0 = performance.now();
  const child = spawn(bin, ['--data-dir', data], {
    env: { ...process.env, RUST_LOG: 'tresor_desktop=info' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "window ready" within 60 s:\n${log}`)), 60000);
    child.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/window ready (\d+) ms after start/);
      if (m) {
        clearTimeout(timer);
        resolve({ wall_ms: performance.now() - t0, app_ms: Number(m[1]) });
      }
    });
    child.on('exit', (code) => reject(new Error(`the app exited (${code}) before its window was ready:\n${log}`)));
  });
  await sleep(idle * 1000);
  const mem = memory(child.pid);
  const exited = new Promise((r) => child.on('exit', r));
  killTree(child.pid);
  await Promise.race([exited, sleep(5000)]);
  return { ...ready, ...mem };
}

// ---- 3: first token ----------------------------------------------------------------

function cliOnce() {
  const data = freshDataDir();
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(args.tresor, ['--data-dir', data, 'ask', question, '--kb', 'default'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let first = null;
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      if (first === null && String(d).trim()) first = performance.now() - t0;
      out += d;
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      if (code !== 0 || first === null) return reject(new Error(`tresor ask failed (${code}): ${err}`));
      // the engine's ttft is the first token the user sees (as the app's); the model's own first
      // token is printed apart when validation dropped text before it (issue 18)
      const m = err.match(/ttft (\d+) ms/);
      const mm = err.match(/model's first token (\d+) ms/);
      resolve({ ttft_ms: first, engine_ttft_ms: m ? Number(m[1]) : null, engine_model_first_token_ms: mm ? Number(mm[1]) : (m ? Number(m[1]) : null), answer: out.split('\n')[0] });
    });
  });
}

async function appOnce(bin) {
  const data = freshDataDir();
  const s = await Session.start(driver, { browserName: 'wry', 'tauri:options': { application: bin, args: ['--data-dir', data] } });
  try {
    await s.waitFor('[data-testid="kb-select"] option[value="default"]');
    await sleep(2000);
    await s.type('[data-testid="question"]', question);
    await s.click('[data-testid="send"]');
    const el = await s.waitFor('[data-testid="msg-assistant"][data-ttft-ms]', { timeout: 600000, what: 'the first token' });
    const ttft = Number(await s.exec('return arguments[0].dataset.ttftMs;', [{ 'element-6066-11e4-a52e-4f735466cecf': el }]));
    await s.waitFor('[data-testid="msg-assistant"][data-done="true"]', { timeout: 600000, what: 'the answer' });
    const answer = await s.text(await s.find('[data-testid="msg-assistant"]'));
    return { ttft_ms: ttft, answer: answer.slice(0, 120) };
  } finally {
    await s.quit().catch(() => {});
  }
}

// ---- report -----------------------------------------------------------------------

function sum(v) {
  return v.reduce((a, b) => a + b, 0);
}
function median(v) {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
function stats(v) {
  if (!v.length) return null;
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), runs: v.length };
}
const f0 = (x) => (x == null ? '–' : x.toFixed(0));

const builds = [['app', args.app], ...(args.baseline ? [['baseline', args.baseline]] : [])];
const starts = Object.fromEntries(builds.map(([k]) => [k, []]));
for (let i = 0; i < rounds; i++) {
  for (const [k, bin] of builds) {
    const r = await startOnce(bin);
    console.error(
      `start ${i + 1} ${k}: window ready ${f0(r.wall_ms)} ms (app's own clock ${f0(r.app_ms)} ms); idle PSS ${f0(r.pss_mb)} MB, RSS ${f0(r.rss_mb)} MB: ` +
        r.procs.map((p) => `${p.comm} ${f0(p.pss_mb)}/${f0(p.rss_mb)}`).join(', '),
    );
    starts[k].push(r);
  }
}
const cli = [];
const ttft = Object.fromEntries(builds.map(([k]) => [k, []]));
for (let i = 0; i < ttftRounds; i++) {
  const c = await cliOnce();
  console.error(`ttft ${i + 1} cli: ${f0(c.ttft_ms)} ms (engine's visible ttft ${f0(c.engine_ttft_ms)} ms, model's first token ${f0(c.engine_model_first_token_ms)} ms) "${c.answer.slice(0, 60)}"`);
  cli.push(c);
  for (const [k, bin] of builds) {
    const a = await appOnce(bin);
    console.error(`ttft ${i + 1} ${k}: ${f0(a.ttft_ms)} ms "${a.answer.slice(0, 60)}"`);
    ttft[k].push(a);
  }
}

function summary(k) {
  const st = starts[k];
  const names = [...new Set(st.flatMap((r) => r.procs.map((p) => p.comm)))];
  return {
    window_ready_ms: stats(st.map((r) => r.wall_ms)),
    idle_pss_mb: stats(st.map((r) => r.pss_mb)),
    idle_rss_mb: stats(st.map((r) => r.rss_mb)),
    idle_per_process: names.map((n) => ({
      comm: n,
      pss_mb: median(st.map((r) => sum(r.procs.filter((p) => p.comm === n).map((p) => p.pss_mb)))),
      rss_mb: median(st.map((r) => sum(r.procs.filter((p) => p.comm === n).map((p) => p.rss_mb)))),
    })),
    app_ttft_ms: stats(ttft[k].map((r) => r.ttft_ms)),
    app_minus_cli_ms: stats(ttft[k].map((r, i) => r.ttft_ms - cli[i].ttft_ms)),
  };
}
const result = { rounds, idle_s: idle, cli_ttft_ms: stats(cli.map((r) => r.ttft_ms)), ...Object.fromEntries(builds.map(([k]) => [k, summary(k)])) };
const cell = (s, unit) => (s ? `${f0(s.median)} ${unit} (${f0(s.min)}–${f0(s.max)})` : '');
const cols = builds.map(([k]) => k);
console.log(`| metric | target | ${cols.map((k) => `${k}: median (range)`).join(' | ')} |`);
console.log(`|---|---|${cols.map(() => '---').join('|')}|`);
const line = (name, target, get, unit) => console.log(`| ${name} | ${target} | ${cols.map((k) => cell(get(result[k]), unit)).join(' | ')} |`);
line('cold start to an interactive window (exec → ui_ready)', '< 1500 ms', (r) => r.window_ready_ms, 'ms');
line(`idle memory, whole process tree, PSS (${idle} s after ready, no question)`, '< 300 MB', (r) => r.idle_pss_mb, 'MB');
line('idle memory, whole process tree, RSS sum (shared pages counted per process)', '–', (r) => r.idle_rss_mb, 'MB');
const procNames = [...new Set(cols.flatMap((k) => result[k].idle_per_process.map((p) => p.comm)))];
for (const n of procNames) {
  console.log(`| … ${n} PSS / RSS | | ${cols.map((k) => {
    const p = result[k].idle_per_process.find((x) => x.comm === n);
    return p ? `${f0(p.pss_mb)} / ${f0(p.rss_mb)} MB` : '–';
  }).join(' | ')} |`);
}
if (ttftRounds > 0) {
  console.log(`| first token, \`tresor ask\` (exec → first byte; same rounds) | – | ${cols.map(() => cell(result.cli_ttft_ms, 'ms')).join(' | ')} |`);
  line('first token, app (send → first token painted)', '≤ CLI + 50 ms', (r) => r.app_ttft_ms, 'ms');
  line('app − CLI, per alternating pair', '≤ 50 ms', (r) => r.app_minus_cli_ms, 'ms');
}
if (args.json) writeFileSync(args.json, JSON.stringify(result, null, 2));
