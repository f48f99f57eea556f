// The confirmation card's logic: readable labels for a tool and its
// arguments (EN/DE), what the card shows for each status, and how a tool
// source (`tool:NAME`) maps to the action that produced it. No engine logic:
// the engine decides the status; this only words it.
import type { Answer } from './bindings/Answer';
import type { Lang } from './i18n';

export type Action = Answer['actions'][number];
export type ActionStatus = Action['status'];

const TOOL_LABELS: Record<string, Record<Lang, string>> = {
  price_lookup: { en: 'Price lookup', de: 'Preisabfrage' },
  order_status: { en: 'Order status', de: 'Bestellstatus' },
  book_appointment: { en: 'Book an appointment', de: 'Termin buchen' },
  create_ticket: { en: 'Open a ticket', de: 'Ticket anlegen' },
};

const FIELD_LABELS: Record<string, Record<Lang, string>> = {
  product: { en: 'Product', de: 'Produkt' },
  order_id: { en: 'Order number', de: 'Bestellnummer' },
  date: { en: 'Date', de: 'Datum' },
  time: { en: 'Time', de: 'Uhrzeit' },
  duration_minutes: { en: 'Duration', de: 'Dauer' },
  topic: { en: 'Topic', de: 'Thema' },
  subject: { en: 'Subject', de: 'Betreff' },
  description: { en: 'Description', de: 'Beschreibung' },
  priority: { en: 'Priority', de: 'Priorität' },
  // result fields
  status: { en: 'Status', de: 'Status' },
  updated_at: { en: 'Last updated', de: 'Zuletzt aktualisiert' },
  sku: { en: 'SKU', de: 'Artikelnummer' },
  price: { en: 'Price', de: 'Preis' },
  currency: { en: 'Currency', de: 'Währung' },
  appointment_id: { en: 'Appointment number', de: 'Terminnummer' },
  ticket_id: { en: 'Ticket number', de: 'Ticketnummer' },
  customer: { en: 'Customer', de: 'Kunde' },
};

const PRIORITY: Record<string, Record<Lang, string>> = {
  low: { en: 'low', de: 'niedrig' },
  normal: { en: 'normal', de: 'normal' },
  high: { en: 'high', de: 'hoch' },
};

const STATUS_LABELS: Record<ActionStatus, Record<Lang, string>> = {
  needs_input: { en: 'Needs more information', de: 'Angaben fehlen' },
  needs_confirmation: { en: 'Waiting for your confirmation', de: 'Wartet auf Ihre Bestätigung' },
  succeeded: { en: 'Done', de: 'Erledigt' },
  failed: { en: 'Failed', de: 'Fehlgeschlagen' },
  declined: { en: 'Declined', de: 'Abgelehnt' },
  timed_out: { en: 'Timed out', de: 'Zeitüberschreitung' },
};

/** A tool's readable name; an MCP tool (`server.tool`) or an unknown one keeps its name. */
export function toolLabel(tool: string, lang: Lang): string {
  return TOOL_LABELS[tool]?.[lang] ?? tool;
}

/** An argument's readable name (unknown fields: the name with spaces for underscores). */
export function fieldLabel(field: string, lang: Lang): string {
  return FIELD_LABELS[field]?.[lang] ?? field.replace(/_/g, ' ');
}

export function statusLabel(status: ActionStatus, lang: Lang): string {
  return STATUS_LABELS[status]?.[lang] ?? status;
}

/** An argument's value as the card shows it. */
export function valueText(field: string, value: unknown, lang: Lang): string {
  if (value === null || value === undefined) return '—';
  if (field === 'duration_minutes' && typeof value === 'number') return lang === 'de' ? `${value} Min.` : `${value} min`;
  if (field === 'time' && typeof value === 'string' && lang === 'de') return `${value} Uhr`;
  if (field === 'priority' && typeof value === 'string') return PRIORITY[value]?.[lang] ?? value;
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

export interface Row {
  field: string;
  label: string;
  value: string;
}

/** The arguments as label/value rows, in the order the user reads them. */
export function argumentRows(args: Record<string, unknown>, lang: Lang): Row[] {
  const order = Object.keys(FIELD_LABELS);
  const keys = Object.keys(args ?? {}).sort((a, b) => {
    const ia = order.indexOf(a);
    const ib = order.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
  });
  return keys.map((k) => ({ field: k, label: fieldLabel(k, lang), value: valueText(k, args[k], lang) }));
}

/** What the card offers: buttons only while the action waits for a yes or no. */
export function cardMode(status: ActionStatus): 'confirm' | 'missing' | 'result' | 'error' | 'ended' {
  switch (status) {
    case 'needs_confirmation':
      return 'confirm';
    case 'needs_input':
      return 'missing';
    case 'succeeded':
      return 'result';
    case 'failed':
    case 'timed_out':
      return 'error';
    default:
      return 'ended';
  }
}

/** A tool result, compactly: an object's scalar fields as rows (nested values as JSON). */
export function resultRows(result: unknown, lang: Lang): Row[] {
  if (result === null || result === undefined) return [];
  if (typeof result !== 'object' || Array.isArray(result)) {
    return [{ field: 'result', label: lang === 'de' ? 'Ergebnis' : 'Result', value: typeof result === 'string' ? result : JSON.stringify(result) }];
  }
  return Object.entries(result as Record<string, unknown>).map(([k, v]) => ({ field: k, label: fieldLabel(k, lang), value: valueText(k, v, lang) }));
}

/** The tool name behind a cited source (`tool:NAME`), or null for a document. */
export function toolOfSource(source: string): string | null {
  return source.startsWith('tool:') ? source.slice(5) : null;
}

/** The action whose result a tool source cites (the last one of that tool). */
export function actionForSource(source: string, actions: Action[]): Action | null {
  const tool = toolOfSource(source);
  if (!tool) return null;
  return [...actions].reverse().find((a) => a.tool === tool && a.status === 'succeeded') ?? null;
}

/** A tool's description in the UI language (German falls back to English when absent). */
export function toolDescription(tool: { description: string; description_de: string }, lang: Lang): string {
  return lang === 'de' && tool.description_de ? tool.description_de : tool.description;
}
