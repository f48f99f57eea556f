import { describe, expect, it } from 'vitest';
import { actionForSource, argumentRows, cardMode, fieldLabel, resultRows, statusLabel, toolDescription, toolLabel, toolOfSource, valueText, type Action } from './actions';

const booking: Action = {
  id: 'act_1',
  tool: 'book_appointment',
  arguments: { topic: 'contract', time: '10:30', date: '2026-12-08', duration_minutes: 30 },
  status: 'needs_confirmation',
  result: null,
  error: null,
  missing: [],
};

describe('the confirmation card', () => {
  it('names tools and fields in both languages, unknown ones as they are', () => {
    expect(toolLabel('book_appointment', 'en')).toBe('Book an appointment');
    expect(toolLabel('book_appointment', 'de')).toBe('Termin buchen');
    expect(toolLabel('time.get_current_time', 'de')).toBe('time.get_current_time');
    expect(fieldLabel('order_id', 'de')).toBe('Bestellnummer');
    expect(fieldLabel('some_field', 'en')).toBe('some field');
  });

  it('lists the arguments in reading order with readable values', () => {
    const en = argumentRows(booking.arguments, 'en');
    expect(en.map((r) => r.field)).toEqual(['date', 'time', 'duration_minutes', 'topic']);
    expect(en.map((r) => r.value)).toEqual(['2026-12-08', '10:30', '30 min', 'contract']);
    const de = argumentRows(booking.arguments, 'de');
    expect(de.map((r) => `${r.label}: ${r.value}`)).toEqual(['Datum: 2026-12-08', 'Uhrzeit: 10:30 Uhr', 'Dauer: 30 Min.', 'Thema: contract']);
    expect(valueText('priority', 'high', 'de')).toBe('hoch');
    expect(valueText('x', { a: 1 }, 'en')).toBe('{"a":1}');
    expect(valueText('x', null, 'en')).toBe('—');
  });

  it('offers approve/decline only while the action waits for confirmation', () => {
    expect(cardMode('needs_confirmation')).toBe('confirm');
    expect(cardMode('needs_input')).toBe('missing');
    expect(cardMode('succeeded')).toBe('result');
    expect(cardMode('failed')).toBe('error');
    expect(cardMode('timed_out')).toBe('error');
    expect(cardMode('declined')).toBe('ended');
    expect(statusLabel('declined', 'de')).toBe('Abgelehnt');
    expect(statusLabel('succeeded', 'en')).toBe('Done');
  });

  it('shows a result compactly', () => {
    expect(resultRows(null, 'en')).toEqual([]);
    expect(resultRows({ order_id: 'NL-1', status: 'shipped' }, 'en').map((r) => `${r.label}=${r.value}`)).toEqual(['Order number=NL-1', 'Status=shipped']);
    expect(resultRows('plain text', 'de')).toEqual([{ field: 'result', label: 'Ergebnis', value: 'plain text' }]);
  });
});

describe('tool sources', () => {
  it('maps tool:NAME to the succeeded action of that tool, documents to none', () => {
    const ran: Action = { ...booking, id: 'act_2', tool: 'order_status', arguments: { order_id: 'NL-1' }, status: 'succeeded', result: { status: 'shipped' } };
    expect(toolOfSource('tool:order_status')).toBe('order_status');
    expect(toolOfSource('/docs/a.md')).toBeNull();
    expect(actionForSource('tool:order_status', [booking, ran])?.id).toBe('act_2');
    expect(actionForSource('tool:book_appointment', [booking, ran])).toBeNull();
    expect(actionForSource('/docs/a.md', [ran])).toBeNull();
  });

  it('describes a tool in the UI language', () => {
    const t = { description: 'Look up a price.', description_de: 'Einen Preis nachschlagen.' };
    expect(toolDescription(t, 'de')).toBe('Einen Preis nachschlagen.');
    expect(toolDescription(t, 'en')).toBe('Look up a price.');
    expect(toolDescription({ ...t, description_de: '' }, 'de')).toBe('Look up a price.');
  });
});
