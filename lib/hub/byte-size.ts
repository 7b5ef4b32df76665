/**
 * About how many bytes a value holds in memory, as V8 lays it out (headers, a slot per
 * property or item, a string's characters), without serializing it: a turn's thousandth
 * delta, which carries the whole text so far, costs a walk, not a copy. Strings that
 * several values share are counted once for each, so the estimate errs high.
 */
export function approximateBytes (value: unknown): number {
  if (typeof value === 'string') return 16 + value.length
  if (typeof value !== 'object' || value === null) return 8
  let bytes = 32
  if (Array.isArray(value)) {
    for (const item of value) bytes += 8 + approximateBytes(item)
    return bytes
  }
  for (const item of Object.values(value)) bytes += 8 + approximateBytes(item)
  return bytes
}
