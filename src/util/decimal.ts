/**
 * Numbers as a person types them: decimal, optionally signed, with an optional exponent ("0.5",
 * ".25", "-1e-3"). JavaScript's Number() also takes hexadecimal, binary and octal ("0x1" is 1)
 * and "Infinity", which in an option are typing slips, not values.
 */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** The finite number `text` spells in decimal notation (surrounding spaces allowed), else null. */
export function parseDecimal(text: string): number | null {
  const trimmed = text.trim();
  if (!DECIMAL.test(trimmed)) return null;
  const value = Number(trimmed);
  return Number.isFinite(value) ? value : null;
}
