/** A 0–100 progress value from done/total bytes (0 while the total is unknown). */
export function progressPercent(done: number, total: number | null | undefined): number {
  if (!total || total <= 0) return 0;
  return Math.max(0, Math.min(100, Math.round((done / total) * 100)));
}
