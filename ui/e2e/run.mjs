// End-to-end: drives the real Tresor window (tauri-driver + WebKitWebDriver
// under Xvfb, started by scripts/e2e) through every screen and writes a
// screenshot of each to --out. Usage:
//   node e2e/run.mjs --app BINARY --out DIR --folder DIR [--driver http://127.0.0.1:4444]
// The app runs on the data dir and models dir in TRESOR_HOME / TRESOR_MODELS
// (scripts/e2e ingests assets/sample-kb into its knowledge base `default`).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session, sleep } from './webdriver.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const driver = args.driver ?? 'http://127.0.0.1:4444';
const out = args.out ?? 'target/e2e-screenshots';
if (!args.app || !args.folder) {
  console.error('usage: node e2e/run.mjs --app BINARY --out DIR --folder DIR');
  process.exit(2);
}
mkdirSync(out, { recursive: true });

const started = Date.now();
const steps = [];
function step(name) {
  steps.push(name);
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${name}`);
}
function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`);
}

const s = await Session.start(driver, { browserName: 'wry', 'tauri:options': { application: args.app } });
async function shot(name) {
  const png = await s.screenshot();
  check(png.length > 1000, `screenshot ${name} is not empty`);
  writeFileSync(join(out, `${name}.png`), png);
}

let failed = null;
try {
  step('window opens on the chat screen');
  await s.waitFor('[data-testid="screen-chat"]');
  await s.waitFor('[data-testid="question"]');
  // English UI to start with (scripts/e2e runs the app under an English locale)
  await s.waitFor('[data-testid="nav-knowledge"]', { pred: (t) => t.includes('Knowledge'), what: 'English navigation' });
  await s.waitFor('[data-testid="kb-select"] option[value="default"]');
  await shot('01-chat');

  step('ask a question: the answer streams and cites the sample knowledge base');
  await s.type('[data-testid="question"]', 'How many vacation days do full-time employees get?');
  await s.click('[data-testid="send"]');
  const done = await s.waitFor('[data-testid="msg-assistant"][data-done="true"]', { timeout: 600000, what: 'the answer' });
  const answer = await s.text(done);
  const chunks = Number(await s.exec('return document.querySelector(\'[data-testid="msg-assistant"]\').dataset.chunks'));
  console.log(`  answer (${chunks} streamed pieces): ${answer.replace(/\s+/g, ' ').slice(0, 200)}`);
  check(chunks >= 1, 'the answer arrived as streamed token events');
  check(/30/.test(answer), 'the answer says 30 days');
  await s.waitFor('[data-testid="source-chip"]', { pred: (t) => /vacation|urlaub/i.test(t), what: 'a citation chip for the vacation policy' });
  check((await s.findAll('[data-testid="answer"] button.chip')).length >= 1, 'inline citation chips in the answer');
  await s.waitFor('[data-testid="thread"]', { pred: (t) => t.includes('vacation'), what: 'the new thread in the sidebar' });
  await shot('02-chat-answer');

  step('open the source: the cited passage is highlighted');
  await s.click('[data-testid="source-chip"]');
  const cited = await s.waitFor('[data-testid="cited-passage"]', { what: 'the cited passage' });
  check(/30/.test(await s.text(cited)), 'the cited passage holds the fact');
  check((await s.findAll('[data-testid="cited-passage"] mark')).length === 1, 'the snippet is marked');
  await s.waitFor('[data-testid="open-file"]');
  await shot('03-sources');
  await s.click('[aria-label="Close sources"]');

  step('feedback: thumbs up and CSAT');
  await s.click('[data-testid="thumbs-up"]');
  await s.waitFor('[data-testid="thumbs-up"][aria-pressed="true"]');
  await s.click('[data-testid="csat"] button:nth-of-type(5)');
  await s.waitFor('[data-testid="csat"] button[aria-pressed="true"]');

  step('a question the documents do not answer: "not in your documents"');
  await s.click('[data-testid="new-thread"]');
  await s.type('[data-testid="question"]', 'What is the parking fee in the company garage for electric scooters?');
  await s.click('[data-testid="send"]');
  await s.waitFor('[data-testid="not-found"]', { timeout: 600000, what: 'the not-found state' });
  await shot('04-not-in-documents');

  step('knowledge bases: add a folder, see the per-file report');
  await s.click('[data-testid="nav-knowledge"]');
  await s.waitFor('[data-testid="kb-card"]', { pred: (t) => t.includes('default'), what: 'the default knowledge base' });
  await s.type('[data-testid="kb-name"]', 'e2e');
  await s.type('[data-testid="kb-path"]', args.folder);
  await s.click('[data-testid="kb-add"]');
  const report = await s.waitFor('[data-testid="kb-report"]', { timeout: 600000, what: 'the ingest report' });
  const reportText = await s.text(report);
  console.log(`  report: ${reportText.replace(/\s+/g, ' ')}`);
  check(/1 added/.test(reportText), 'one file added');
  check(/1 failed/.test(reportText), 'one file failed');
  await s.waitFor('[data-testid="kb-failures"]', { pred: (t) => t.includes('broken.pdf'), what: 'the failed file named' });
  await s.waitFor('[data-testid="kb-card"]:nth-of-type(2), [data-testid="kb-card"] + [data-testid="kb-card"]');
  await shot('05-knowledge-bases');

  step('models: installed models with size, role and checksum');
  await s.click('[data-testid="nav-models"]');
  const table = await s.waitFor('[data-testid="models-table"] tbody tr', { what: 'model rows' });
  check(table, 'models listed');
  await s.waitFor('[data-testid="models-table"]', { pred: (t) => /smollm2/i.test(t) && /small/.test(t) && /MiB/.test(t), what: 'the shipped chat model' });
  await shot('06-models');

  step('settings: switch the language to German');
  await s.click('[data-testid="nav-settings"]');
  await s.waitFor('[data-testid="policy"] li.locked', { what: 'a locked policy item' });
  check((await s.findAll('[data-testid="policy-error"]')).length === 0, 'tresor-guard accepts the policy');
  await s.click('[data-testid="lang-select"] option[value="de"]');
  await s.waitFor('[data-testid="nav-knowledge"]', { pred: (t) => t.includes('Wissensbasen'), what: 'German navigation' });
  await s.waitFor('h1', { pred: (t) => t === 'Einstellungen', what: 'German settings title' });
  await shot('07-settings-de');

  step('dark theme, chat in German');
  await s.click('[data-testid="theme-dark"]');
  await s.waitFor('html[data-theme="dark"]');
  await s.click('[data-testid="nav-chat"]');
  let vacation = null;
  for (const el of await s.findAll('[data-testid="thread"]')) if ((await s.text(el)).includes('vacation')) vacation = el;
  check(vacation, 'the vacation thread is in the sidebar');
  await s.cmd('POST', `/element/${vacation}/click`, {});
  await s.waitFor('[data-testid="msg-assistant"]', { pred: (t) => /30/.test(t), what: 'the stored thread' });
  await s.waitFor('[data-testid="question"]');
  await shot('08-chat-dark-de');
} catch (e) {
  failed = e;
  try {
    await shot('failure');
  } catch {}
} finally {
  await s.quit().catch(() => {});
}
const secs = ((Date.now() - started) / 1000).toFixed(1);
if (failed) {
  console.error(`e2e FAILED at "${steps[steps.length - 1]}" after ${secs} s: ${failed.message}`);
  process.exit(1);
}
console.log(`e2e passed: ${steps.length} steps in ${secs} s; screenshots in ${out}`);
