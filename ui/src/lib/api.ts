// The UI's only door to the engine: typed wrappers around the Tauri commands
// of src-tauri/src/commands.rs and its events. No engine logic here.
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';

// The types below are generated from the Rust types by ts-rs
// (ui/src/lib/bindings, never edited by hand): src-tauri/tests/ts_bindings.rs
// fails when they drift; regenerate them with
//   TRESOR_UPDATE_BINDINGS=1 cargo test -p tresor-desktop --test ts_bindings
import type { Answer as AnswerJson } from './bindings/Answer';
import type { StoredMessage as StoredMessageRow } from './bindings/StoredMessage';
import type { Source } from './bindings/Source';
import type { ThreadInfo } from './bindings/ThreadInfo';
import type { DocInfo } from './bindings/DocInfo';
import type { KbView } from './bindings/KbView';
import type { Failure } from './bindings/Failure';
import type { IngestReport } from './bindings/IngestReport';
import type { IngestEvent } from './bindings/IngestEvent';
import type { ModelView } from './bindings/ModelView';
import type { PullEvent } from './bindings/PullEvent';
import type { Settings } from './bindings/Settings';
import type { PolicyView } from './bindings/PolicyView';
import type { SourceView } from './bindings/SourceView';
import type { AppInfo } from './bindings/AppInfo';
import type { ActionReportView } from './bindings/ActionReportView';
import type { ToolView } from './bindings/ToolView';
import type { ToolRecords } from './bindings/ToolRecords';
import type { HandoffReceipt } from './bindings/HandoffReceipt';

/** The engine's answers to a rating and to the end of a conversation (docs/handoff.md). */
export type FeedbackOutcome = { id: number; offer_handoff: boolean; offer: string | null };
export type EndOutcome = { conversation_id: number; ended: boolean; ask_csat: boolean; question: string | null };
import type { ToolImportView } from './bindings/ToolImportView';
import type { DashboardData } from './bindings/DashboardData';
import type { Simulation } from './bindings/Simulation';
import type { ScenarioInput } from './bindings/ScenarioInput';

export type { Source, ThreadInfo, DocInfo, KbView, Failure, IngestReport, IngestEvent, ModelView, PullEvent, Settings, PolicyView, SourceView, AppInfo, ActionReportView, ToolView, ToolRecords, ToolImportView };
export type { DashboardData, Simulation, ScenarioInput };

/** tresor-assistant's answer plus `stopped`, which the `ask` command adds to its JSON
 * (the stop button cut it short: `trace.finish` is "cancelled"). */
export interface Answer extends AnswerJson {
  stopped: boolean;
}

/** A stored turn. Rust keeps `meta` as free JSON (serde_json::Value): for an answer it holds
 * some of the answer's fields (tresor-assistant writes them when it records the turn); these
 * are the ones the chat screen reads. */
export interface StoredMessage extends Omit<StoredMessageRow, 'meta'> {
  meta: Partial<Pick<AnswerJson, 'sources' | 'refused' | 'route' | 'actions'>> | null;
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
    invoke<FeedbackOutcome>('feedback', { feedback: { message_id: messageId, thumbs } }),
  csat: (threadId: number, csat: number) => invoke<FeedbackOutcome>('feedback', { feedback: { thread_id: threadId, csat } }),
  handoff: (thread: number, note: string) => invoke<HandoffReceipt>('handoff', { thread, note }),
  endConversation: (thread: number, reason = 'closed') => invoke<EndOutcome>('conversation_end', { thread, reason }),
  /** The engine's idle timeout in seconds (`[handoff] idle_timeout_secs`; 0: off): lib/idle.ts counts it. */
  idleTimeout: () => invoke<number>('idle_timeout'),
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
  /** The user's yes / no to an action the answer proposed (runs at most once). */
  confirmAction: (id: string) => invoke<ActionReportView>('confirm_action', { id }),
  declineAction: (id: string) => invoke<ActionReportView>('decline_action', { id }),
  /** An action as it stands now (`Answer['actions'][number]`). */
  action: (id: string) => invoke<AnswerJson['actions'][number]>('get_action', { id }),
  tools: () => invoke<ToolView[]>('list_tools'),
  /** kind: prices | orders | calendar; path absolute. */
  importToolData: (kind: 'prices' | 'orders' | 'calendar', path: string) => invoke<ToolImportView>('import_tool_data', { kind, path }),
  toolRecords: () => invoke<ToolRecords>('tool_records'),
  /** The engine's dashboard data over the last `since` (`7d`, `30d`, `90d`). */
  dashboard: (since: string) => invoke<DashboardData>('dashboard', { since }),
  /** The engine's cost simulator, measured over the last `since`. */
  simulate: (since: string, scenario: ScenarioInput) => invoke<Simulation>('simulate', { since, scenario }),
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
