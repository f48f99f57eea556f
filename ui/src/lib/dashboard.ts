// The dashboard screen's presentation helpers: how a tile's value, its trend
// and a series read in German and English (for the eye and for a screen
// reader), and the engine's daily series as chart columns. Every number comes
// from the engine's dashboard data (tresor-telemetry's `dashboard`, `simulate`);
// nothing here computes a KPI.
import type { Tile } from './bindings/Tile';
import type { SeriesPoint } from './bindings/SeriesPoint';
import { translate, type Key, type Lang } from './i18n';

export const WINDOWS = [7, 30, 90] as const;
export type WindowDays = (typeof WINDOWS)[number];

/** The `since` the dashboard command takes for a window of `days` (the forms of `tresor kpi --since`). */
export function since(days: WindowDays): string {
  return `${days}d`;
}

function locale(lang: Lang): string {
  return lang === 'de' ? 'de-DE' : 'en-GB';
}

/** `n` with `digits` fraction digits in the language's notation. */
export function num(n: number, lang: Lang, digits = 0): string {
  return new Intl.NumberFormat(locale(lang), { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(n);
}

/** Money: small amounts (local inference costs fractions of a cent) keep three significant digits. */
export function money(n: number, currency: string, lang: Lang): string {
  const abs = Math.abs(n);
  const opts: Intl.NumberFormatOptions =
    abs !== 0 && abs < 1 ? { maximumSignificantDigits: 3 } : { minimumFractionDigits: 2, maximumFractionDigits: 2 };
  return `${new Intl.NumberFormat(locale(lang), opts).format(n)} ${currency}`;
}

/** A value in a tile's unit; "–" when there is none (no CSAT score, nothing resolved). */
export function formatValue(unit: Tile['unit'], v: number | null, lang: Lang, currency: string): string {
  if (v === null || !Number.isFinite(v)) return '–';
  switch (unit) {
    case 'rate':
      return `${num(v * 100, lang, 1)} %`;
    case 'ms':
      return `${num(v, lang)} ms`;
    case 'score':
      return num(v, lang, 2);
    case 'tokens':
      return num(v, lang, 0);
    case 'money':
      return money(v, currency, lang);
    default:
      return num(v, lang);
  }
}

/** A change in a tile's unit, signed: rates in percentage points. */
export function formatDelta(unit: Tile['unit'], d: number, lang: Lang, currency: string): string {
  const sign = d > 0 ? '+' : d < 0 ? '−' : '±';
  const abs = Math.abs(d);
  if (unit === 'rate') return `${sign}${num(abs * 100, lang, 1)} ${translate(lang, 'dash.points')}`;
  return `${sign}${formatValue(unit, abs, lang, currency)}`;
}

export function arrow(trend: Tile['trend']): string {
  return { up: '↑', down: '↓', flat: '→', none: '' }[trend];
}

/** The tile's title key (`dash.kpi.csat.mean`). */
export function tileKey(tile: Tile): Key {
  return `dash.kpi.${tile.key}` as Key;
}

/** What a screen reader hears for a tile: name, value, and the move against the previous window. */
export function tileSummary(tile: Tile, lang: Lang, currency: string, days: number): string {
  const name = translate(lang, tileKey(tile));
  const value = formatValue(tile.unit, tile.value, lang, currency);
  if (tile.trend === 'none' || tile.delta === null || tile.previous === null) {
    return `${name}: ${value}. ${translate(lang, 'dash.trend.none', { days })}`;
  }
  const vars = {
    delta: formatDelta(tile.unit, tile.delta, lang, currency),
    previous: formatValue(tile.unit, tile.previous, lang, currency),
    days,
  };
  const move = translate(lang, `dash.trend.${tile.trend}` as Key, vars);
  const verdict = tile.good === null ? '' : ` ${translate(lang, tile.good ? 'dash.better' : 'dash.worse')}`;
  return `${name}: ${value}. ${move}.${verdict}`;
}

/** A chart's day label (`6 Dec` / `6. Dez.`) for bucket seconds. */
export function dayLabel(seconds: number, lang: Lang): string {
  return new Intl.DateTimeFormat(locale(lang), { day: 'numeric', month: 'short', timeZone: 'UTC' }).format(new Date(seconds * 1000));
}

/** UTC midnight of a `2026-12-06` bucket, in seconds (uPlot's time axis). */
export function bucketSeconds(bucket: string): number {
  return Date.parse(`${bucket}T00:00:00Z`) / 1000;
}

/** A chart's columns: x (bucket seconds) then one column per field (null where a day has no value). */
export function columns(series: SeriesPoint[], fields: (keyof SeriesPoint)[], scale = 1): (number | null)[][] {
  const x = series.map((p) => bucketSeconds(p.bucket));
  const ys = fields.map((f) =>
    series.map((p) => {
      const v = p[f];
      return typeof v === 'number' && Number.isFinite(v) ? v * scale : null;
    }),
  );
  return [x, ...ys];
}

/** A chart's text alternative: per line, the days it covers, its range and its latest value. */
export function chartSummary(
  title: string,
  series: SeriesPoint[],
  lines: { label: string; field: keyof SeriesPoint }[],
  fmt: (v: number) => string,
  lang: Lang,
): string {
  if (series.length === 0) return `${title}: ${translate(lang, 'dash.noData')}`;
  const parts = lines.map(({ label, field }) => {
    const vals = series.map((p) => p[field]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    if (vals.length === 0) return `${label}: ${translate(lang, 'dash.noData')}`;
    return translate(lang, 'dash.chartLine', {
      label,
      min: fmt(Math.min(...vals)),
      max: fmt(Math.max(...vals)),
      last: fmt(vals[vals.length - 1]),
    });
  });
  const days = translate(lang, 'dash.chartDays', { n: series.length, from: series[0].bucket, to: series[series.length - 1].bucket });
  return `${title} (${days}): ${parts.join('; ')}.`;
}

/** The share of the widest bar a stage's bar takes, 0–100 (CSS width). */
export function barWidth(v: number, max: number): number {
  return max > 0 ? Math.max(0, Math.min(100, (v / max) * 100)) : 0;
}

/** The volume slider for a measured volume per day: its top (at least 10, about four times the
 * measured), a step of about a thousandth of that, and the measured value on that step. */
export function sliderRange(measured: number): { max: number; step: number; digits: number; value: number } {
  const top = Math.max(10, measured * 4);
  const raw = top / 1000;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const max = Math.ceil(top / step) * step;
  const digits = Math.max(0, -Math.floor(Math.log10(step)));
  const value = Number((Math.round(measured / step) * step).toFixed(digits));
  return { max: Number(max.toFixed(digits)), step, digits, value };
}

/** A day chart's x range: half a day around the first and last bucket (one day of data still spans a day). */
export function dayRange(xs: number[]): [number, number] {
  if (xs.length === 0) return [0, 86400];
  return [Math.min(...xs) - 43200, Math.max(...xs) + 43200];
}

/** The buckets that get a tick label: every one up to `max`, else every k-th from the last back. */
export function daySplits(xs: number[], max = 8): number[] {
  const k = Math.max(1, Math.ceil(xs.length / max));
  return xs.filter((_, i) => (xs.length - 1 - i) % k === 0);
}
