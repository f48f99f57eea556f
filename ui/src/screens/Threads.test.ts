import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen } from '@testing-library/svelte';
import { tick } from 'svelte';

const invoke = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({ invoke: (...a: unknown[]) => invoke(...a) }));

import Threads from './Threads.svelte';
import { lang } from '../lib/i18n';

const threads = [
  { id: 1, title: 'Urlaubstage Teilzeit', kb: 'default', created: 0, updated: 0, messages: 2 },
  { id: 2, title: 'Hotel allowance', kb: 'default', created: 0, updated: 0, messages: 2 },
];

afterEach(() => {
  cleanup();
  invoke.mockReset();
});

describe('Threads sidebar', () => {
  it('filters by search and selects a thread', async () => {
    lang.set('en');
    const onselect = vi.fn();
    render(Threads, { threads, current: null, onselect, onchange: vi.fn() });
    expect(screen.getAllByTestId('thread')).toHaveLength(2);
    await fireEvent.input(screen.getByLabelText('Search conversations'), { target: { value: 'hotel' } });
    await tick();
    const shown = screen.getAllByTestId('thread');
    expect(shown.map((b) => b.textContent)).toEqual(['Hotel allowance']);
    await fireEvent.click(shown[0]);
    expect(onselect).toHaveBeenCalledWith(2);
  });

  it('renames and deletes through the engine commands, with a confirmation', async () => {
    lang.set('de');
    invoke.mockResolvedValue(undefined);
    const onchange = vi.fn();
    const onselect = vi.fn();
    render(Threads, { threads, current: 1, onselect, onchange });
    await fireEvent.click(screen.getByLabelText('Umbenennen: Urlaubstage Teilzeit'));
    const input = screen.getByTestId('rename-input');
    await fireEvent.input(input, { target: { value: 'Urlaub' } });
    await fireEvent.submit(input.closest('form')!);
    await tick();
    expect(invoke).toHaveBeenCalledWith('thread_rename', { id: 1, title: 'Urlaub' });
    expect(onchange).toHaveBeenCalled();

    await fireEvent.click(screen.getByLabelText('Löschen: Urlaubstage Teilzeit'));
    expect(invoke).not.toHaveBeenCalledWith('thread_delete', expect.anything());
    await fireEvent.click(screen.getByTestId('confirm-delete'));
    await tick();
    expect(invoke).toHaveBeenCalledWith('thread_delete', { id: 1 });
    expect(onselect).toHaveBeenCalledWith(null);
  });
});
