import { describe, expect, it } from 'vitest';
import type { Tile } from './bindings/Tile';
import type { SeriesPoint } from './bindings/SeriesPoint';
import { barWidth, bucketSeconds, dayLabel, dayRange, daySplits, chartSummary, columns, formatDelta, formatValue, money, since, sliderRange, tileSummary } from './dashboard';

const tile = (over: Partial<Tile>): Tile => ({ key: 'containment_rate', unit: 'rate', value: 0.8, previous: 0.6, delta: 0.2, trend: 'up', good: true, ...over });

const point = (bucket: string, over: Partial<SeriesPoint> = {}): SeriesPoint => ({
  bucket, conversations: 2, messages: 3, containment_rate: 0.5, refusal_rate: 0.25, csat_mean: null, csat_count: 0,
  ttft_p50_ms: 100, ttft_p95_ms: 200, total_p50_ms: 300, total_p95_ms: 400, cost: 0.01, ...over,
});

describe('dashboard helpers', () => {
  it('formats each unit in German and English', () => {
    expect(formatValue('rate', 0.8, 'en', 'EUR')).toBe('80.0 %');
    expect(formatValue('rate', 0.8, 'de', 'EUR')).toBe('80,0 %');
    expect(formatValue('ms', 1234.4, 'en', 'EUR')).toBe('1,234 ms');
    expect(formatValue('ms', 1234.4, 'de', 'EUR')).toBe('1.234 ms');
    expect(formatValue('score', 4.5, 'de', 'EUR')).toBe('4,50');
    expect(formatValue('count', 12, 'en', 'EUR')).toBe('12');
    expect(formatValue('score', null, 'en', 'EUR')).toBe('–');
    expect(formatValue('money', 0.000123456, 'en', 'EUR')).toBe('0.000123 EUR');
    expect(money(12.5, 'EUR', 'de')).toBe('12,50 EUR');
  });

  it('signs deltas; rates move in percentage points', () => {
    expect(formatDelta('rate', 0.2, 'en', 'EUR')).toBe('+20.0 pts');
    expect(formatDelta('rate', -0.05, 'de', 'EUR')).toBe('−5,0 Pp.');
    expect(formatDelta('ms', -300, 'en', 'EUR')).toBe('−300 ms');
  });

  it('tells a screen reader the value, the move and whether it is better', () => {
    expect(tileSummary(tile({}), 'en', 'EUR', 7)).toBe('Containment: 80.0 %. Up +20.0 pts from 60.0 % in the previous 7 days. An improvement.');
    const worse = tile({ key: 'ttft_ms.p95', unit: 'ms', value: 900, previous: 600, delta: 300, trend: 'up', good: false });
    expect(tileSummary(worse, 'de', 'EUR', 30)).toBe('Erstes Token p95: 900 ms. +300 ms gegenüber 600 ms in den 30 Tagen davor. Eine Verschlechterung.');
    const none = tile({ key: 'csat.mean', unit: 'score', value: null, previous: null, delta: null, trend: 'none', good: null });
    expect(tileSummary(none, 'en', 'EUR', 7)).toBe('CSAT (1–5): –. Nothing to compare with in the previous 7 days.');
    const volume = tile({ key: 'conversations', unit: 'count', value: 3, previous: 3, delta: 0, trend: 'flat', good: null });
    expect(tileSummary(volume, 'en', 'EUR', 90)).toBe('Conversations: 3. Unchanged from the previous 90 days.');
  });

  it('turns the daily series into chart columns and a text summary', () => {
    const s = [point('2026-12-05', { csat_mean: 4 }), point('2026-12-06', { containment_rate: 1 })];
    expect(bucketSeconds('2026-12-06')).toBe(Date.UTC(2026, 11, 6) / 1000);
    expect(dayLabel(bucketSeconds('2026-12-06'), 'en')).toBe('6 Dec');
    expect(dayLabel(bucketSeconds('2026-12-06'), 'de')).toBe('6. Dez.');
    expect(columns(s, ['containment_rate', 'csat_mean'], 100)).toEqual([
      [bucketSeconds('2026-12-05'), bucketSeconds('2026-12-06')],
      [50, 100],
      [400, null],
    ]);
    const text = chartSummary('Containment', s, [{ label: 'containment', field: 'containment_rate' }], (v) => `${v * 100} %`, 'en');
    expect(text).toBe('Containment (2 days with data, 2026-12-05 to 2026-12-06): containment from 50 % to 100 %, latest 100 %.');
    expect(chartSummary('CSAT', [point('2026-12-06')], [{ label: 'mean CSAT', field: 'csat_mean' }], String, 'de')).toContain('mean CSAT: keine Daten');
    expect(chartSummary('Volume', [], [], String, 'en')).toBe('Volume: no data');
  });

  it('spans day charts over whole days and labels at most eight days', () => {
    expect(dayRange([86400])).toEqual([43200, 129600]);
    expect(dayRange([86400, 3 * 86400])).toEqual([43200, 3 * 86400 + 43200]);
    expect(daySplits([1, 2, 3])).toEqual([1, 2, 3]);
    const ninety = Array.from({ length: 90 }, (_, i) => i);
    const ticks = daySplits(ninety);
    expect(ticks.length).toBeLessThanOrEqual(8);
    expect(ticks[ticks.length - 1]).toBe(89);
  });

  it('sizes the volume slider around the measured volume', () => {
    expect(sliderRange(3.3)).toEqual({ max: 13.2, step: 0.02, digits: 2, value: 3.3 });
    expect(sliderRange(0.333)).toEqual({ max: 10, step: 0.01, digits: 2, value: 0.33 });
    expect(sliderRange(250)).toEqual({ max: 1000, step: 1, digits: 0, value: 250 });
    expect(sliderRange(1234)).toEqual({ max: 4940, step: 5, digits: 0, value: 1235 });
    expect(barWidth(50, 200)).toBe(25);
    expect(barWidth(5, 0)).toBe(0);
    expect(since(30)).toBe('30d');
  });
});
