// The UI's only door to the engine: typed wrappers around the Tauri commands
// of src-tauri/src/commands.rs and its events. No engine logic here.
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';

export interface Source {
  n: number;
  source: string;
  title: string;
  heading: string;
  page: number | null;
  snippet: string;
  chunk_id: number;
}

export interface Answer {
  answer: string;
  sources: Source[];
  grounded: boolean;
  refused: boolean;
  stopped: boolean;
  model: string;
  route: string;
  lang: string;
  thread_id: number | null;
  message_id: number | null;
  timings: { ttft_ms: number; total_ms: number };
  trace: { kb: string | null; extractive: boolean };
}

export interface ThreadInfo {
  id: number;
  title: string;
  kb: string | null;
  created: number;
  updated: number;
  messages: number;
}

export interface StoredMessage {
  id: number;
  thread_id: number;
  role: 'user' | 'assistant';
  content: string;
  meta: { sources?: Source[]; refused?: boolean; route?: string } | null;
}

export interface DocInfo {
  source: string;
  title: string;
  format: string;
  chunks: number;
  size: number;
}

export interface KbView {
  name: string;
  documents: number;
  chunks: number;
  files: DocInfo[];
}

export interface Failure {
  source: string;
  reason: string;
}

export interface IngestReport {
  files: number;
  added: number;
  updated: number;
  unchanged: number;
  failed: Failure[];
  skipped: Failure[];
  pruned: string[];
  chunks: number;
  seconds: number;
}

export interface IngestEvent {
  kb: string;
  phase: 'start' | 'file' | 'advance' | 'finish';
  file: string | null;
  files: number;
  bytes_total: number;
  bytes_done: number;
  chunks: number;
}

export interface ModelView {
  id: string;
  name: string | null;
  role: string;
  status: string;
  usable: boolean;
  size: number | null;
  size_text: string;
  checksum: 'verified' | 'unknown' | 'mismatch' | 'missing';
  pullable: boolean;
  hint: string;
}

export interface PullEvent {
  id: string;
  bytes: number;
  total: number | null;
}

export interface Settings {
  lang: 'de' | 'en';
  theme: 'light' | 'dark' | 'system';
}

/** The policy in force as tresor-guard loads it (src-tauri/src/policy.rs). */
export interface PolicyView {
  files: { path: string; role: 'admin' | 'user'; signed_by: string | null; text: string }[];
  items: { key: string; value: string; locked: boolean; origin: string }[];
  error: string | null;
}

export interface SourceView {
  source: string;
  exists: boolean;
  chunks: { id: number; heading: string; page: number | null; text: string }[];
}

export interface AppInfo {
  version: string;
  data_dir: string;
  models_dir: string;
  kbs: string[];
}

export const api = {
  appInfo: () => invoke<AppInfo>('app_info'),
  /** The window is interactive (start-up benchmark, scripts/bench-desktop). */
  uiReady: () => invoke<number>('ui_ready'),
  /** Resolves once the data key is unlocked; rejects with why it cannot be (wrong passphrase). */
  unlock: () => invoke<void>('unlock'),
  /** Load the engine in the background (the user started typing a question). */
  warmUp: () => invoke<void>('warm_up'),
  /** kb "": no knowledge base (ungrounded); null: `default` when it exists. */
  ask: (request: number, question: string, kb: string | null, thread: number | null) =>
    invoke<Answer>('ask', { request, question, kb, thread }),
  stop: () => invoke<boolean>('stop_answer'),
  threads: () => invoke<ThreadInfo[]>('threads_list'),
  messages: (id: number) => invoke<StoredMessage[]>('thread_messages', { id }),
  renameThread: (id: number, title: string) => invoke<void>('thread_rename', { id, title }),
  deleteThread: (id: number) => invoke<void>('thread_delete', { id }),
  thumbs: (messageId: number, thumbs: 1 | -1) =>
    invoke<number>('feedback', { feedback: { message_id: messageId, thumbs } }),
  csat: (threadId: number, csat: number) => invoke<number>('feedback', { feedback: { thread_id: threadId, csat } }),
  handoff: (thread: number, note: string) => invoke<string>('handoff', { thread, note }),
  kbs: () => invoke<KbView[]>('kb_list'),
  kbAdd: (kb: string, paths: string[]) => invoke<IngestReport>('kb_add', { kb, paths }),
  kbRemove: (kb: string) => invoke<void>('kb_remove', { kb }),
  kbReindex: (kb: string) => invoke<IngestReport>('kb_reindex', { kb }),
  kbSource: (kb: string, source: string) => invoke<SourceView>('kb_source', { kb, source }),
  openSource: (kb: string, source: string) => invoke<void>('open_source', { kb, source }),
  models: () => invoke<ModelView[]>('models_list'),
  pull: (id: string) => invoke<string>('model_pull', { id }),
  settings: () => invoke<Settings>('settings_get'),
  saveSettings: (settings: Settings) => invoke<Settings>('settings_set', { settings }),
  policy: () => invoke<PolicyView>('policy_view'),
};

export function onToken(f: (e: { request: number; text: string }) => void): Promise<UnlistenFn> {
  return listen<{ request: number; text: string }>('tresor://token', (e) => f(e.payload));
}
export function onIngest(f: (e: IngestEvent) => void): Promise<UnlistenFn> {
  return listen<IngestEvent>('tresor://ingest', (e) => f(e.payload));
}
export function onPull(f: (e: PullEvent) => void): Promise<UnlistenFn> {
  return listen<PullEvent>('tresor://pull', (e) => f(e.payload));
}

/** "offline: ..." errors from a model pull (see commands.rs `is_offline`). */
export function isOffline(err: unknown): boolean {
  return String(err).startsWith('offline:');
}
