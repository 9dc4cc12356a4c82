/** The two date formats the guard meets: KMS's ISO 8601 strings in, RFC 3339 UTC out. */

/** KMS dates are ISO 8601 (`2026-11-28T09:00:00Z`); anything unparsable counts as absent. */
export function parseKmsDate(text: string | undefined): Date | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const parsed = new Date(text.trim());
  return Number.isNaN(parsed.getTime()) ? undefined : parsed;
}

/** RFC 3339 UTC without milliseconds, as the rotation-time annotation uses. */
export function formatRfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
