// The chat screen's idle timer: after the engine's idle timeout without
// activity (`[handoff] idle_timeout_secs`, from the `idle_timeout` command)
// the conversation ends as "idle" (the engine's end_conversation) and, when
// the engine says so, the one-time CSAT question shows — without a click.
// Owns: when to call end; never decides whether to ask for CSAT (the engine does).

export type EndOutcome = { conversation_id: number; ended: boolean; ask_csat: boolean; question: string | null };

/** setTimeout / clearTimeout, injectable for tests. */
export interface Clock {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const realClock: Clock = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface IdleOptions {
  /** The engine's timeout in seconds (0: off). */
  timeoutSecs: number;
  /** The engine's end_conversation(thread, "idle"). */
  end: (thread: number) => Promise<EndOutcome>;
  /** Called when the engine asks for CSAT after an idle end. */
  onAskCsat: (out: EndOutcome) => void;
  clock?: Clock;
}

/** The engine counts whole seconds since the last message: fire a second after its timeout. */
export const MARGIN_MS = 1000;

export class IdleTimer {
  private handle: unknown = null;
  private thread: number | null = null;
  private done = false;
  private readonly clock: Clock;

  constructor(private opts: IdleOptions) {
    this.clock = opts.clock ?? realClock;
  }

  /** A new timeout from the engine (e.g. loaded after start-up); restarts a running timer. */
  setTimeoutSecs(secs: number) {
    this.opts.timeoutSecs = secs;
    if (this.handle !== null && this.thread !== null) this.arm(this.thread);
  }

  /** An answer finished in `thread` (or the user was active in it): start the countdown again. */
  arm(thread: number) {
    this.disarm();
    if (thread !== this.thread) this.done = false;
    this.thread = thread;
    if (this.done || !(this.opts.timeoutSecs > 0)) return;
    this.handle = this.clock.set(() => this.fire(), this.opts.timeoutSecs * 1000 + MARGIN_MS);
  }

  /** Activity (typing) restarts a running countdown; nothing when none runs. */
  activity() {
    if (this.handle !== null && this.thread !== null) this.arm(this.thread);
  }

  /** Stop counting (a question is being answered, the thread changed, the CSAT shows). */
  disarm() {
    if (this.handle !== null) this.clock.clear(this.handle);
    this.handle = null;
  }

  /** The conversation was ended or rated another way: no idle end for it. */
  finish() {
    this.disarm();
    this.done = true;
  }

  get running() {
    return this.handle !== null;
  }

  private async fire() {
    this.handle = null;
    const thread = this.thread;
    if (thread === null || this.done) return;
    let out: EndOutcome;
    try {
      out = await this.opts.end(thread);
    } catch {
      return; // the engine could not end it now; the next answer arms again
    }
    if (thread !== this.thread) return; // the user moved on meanwhile
    if (out.ended || out.ask_csat) {
      this.done = true;
      if (out.ask_csat) this.opts.onAskCsat(out);
    } else {
      // not idle yet by the engine's clock (a message came in meanwhile): count again
      this.arm(thread);
    }
  }
}
