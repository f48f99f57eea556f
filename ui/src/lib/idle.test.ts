import { describe, expect, it } from 'vitest';
import { IdleTimer, MARGIN_MS, type Clock, type EndOutcome } from './idle';

/** A manual clock: timers run when the test advances time. */
function fakeClock() {
  let now = 0;
  let next = 1;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const clock: Clock = {
    set: (fn, ms) => {
      const id = next++;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clear: (h) => void timers.delete(h as number),
  };
  const advance = async (ms: number) => {
    now += ms;
    for (const [id, t] of [...timers]) {
      if (t.at <= now) {
        timers.delete(id);
        t.fn();
      }
    }
    // let the awaited end() settle
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { clock, advance, pending: () => timers.size };
}

const outcome = (o: Partial<EndOutcome>): EndOutcome => ({ conversation_id: 7, ended: true, ask_csat: true, question: 'How satisfied?', ...o });

describe('idle timer', () => {
  it('ends the conversation as idle after the engine timeout and asks for CSAT once, without a click', async () => {
    const { clock, advance } = fakeClock();
    const ends: number[] = [];
    const asked: EndOutcome[] = [];
    const idle = new IdleTimer({ timeoutSecs: 2, clock, end: async (t) => (ends.push(t), outcome({})), onAskCsat: (o) => asked.push(o) });
    idle.arm(7);
    await advance(2000 + MARGIN_MS - 1);
    expect(ends).toEqual([]);
    await advance(1);
    expect(ends).toEqual([7]);
    expect(asked).toHaveLength(1);
    // once: a later answer in the same conversation does not start another idle end
    idle.arm(7);
    await advance(10_000);
    expect(ends).toEqual([7]);
  });

  it('activity restarts the countdown; asking disarms it', async () => {
    const { clock, advance, pending } = fakeClock();
    const ends: number[] = [];
    const idle = new IdleTimer({ timeoutSecs: 2, clock, end: async (t) => (ends.push(t), outcome({})), onAskCsat: () => {} });
    idle.arm(1);
    await advance(2500);
    idle.activity();
    await advance(2500);
    expect(ends).toEqual([]);
    idle.disarm();
    expect(pending()).toBe(0);
    await advance(60_000);
    expect(ends).toEqual([]);
    // typing with no countdown running starts none
    idle.activity();
    expect(idle.running).toBe(false);
  });

  it('counts again when the engine says it is not idle yet, and stays off at 0', async () => {
    const { clock, advance } = fakeClock();
    const replies = [outcome({ ended: false, ask_csat: false }), outcome({ ended: true, ask_csat: false })];
    const ends: number[] = [];
    const asked: EndOutcome[] = [];
    const idle = new IdleTimer({ timeoutSecs: 1, clock, end: async (t) => (ends.push(t), replies.shift()!), onAskCsat: (o) => asked.push(o) });
    idle.arm(3);
    await advance(2000);
    expect(ends).toEqual([3]);
    expect(idle.running).toBe(true);
    await advance(2000);
    expect(ends).toEqual([3, 3]);
    expect(asked).toEqual([]); // ended, but already rated: no question
    expect(idle.running).toBe(false);

    const off = new IdleTimer({ timeoutSecs: 0, clock, end: async () => outcome({}), onAskCsat: () => {} });
    off.arm(4);
    expect(off.running).toBe(false);
  });

  it('a new conversation gets its own countdown; a finished one none', async () => {
    const { clock, advance } = fakeClock();
    const ends: number[] = [];
    const idle = new IdleTimer({ timeoutSecs: 1, clock, end: async (t) => (ends.push(t), outcome({ conversation_id: t })), onAskCsat: () => {} });
    idle.arm(1);
    idle.finish(); // the user ended or rated it
    idle.arm(1);
    await advance(5000);
    expect(ends).toEqual([]);
    idle.arm(2);
    await advance(2000);
    expect(ends).toEqual([2]);
  });
});
