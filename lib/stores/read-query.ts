import { InvalidCursorError, InvalidInputError } from '../errors.js'

// The checks of a transcript read (`ReadQuery`) that stores paging by position share.

/** A page size: a whole number, 1 or more. */
export function checkLimit (limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new InvalidInputError('a limit must be a whole number, 1 or more')
  return limit
}

/** A `before` cursor that is a position: digits only (Number() would also take ' ', '0x2' and '1e1'). */
export function positionCursor (before: string): number {
  if (!/^\d{1,15}$/.test(before)) throw new InvalidCursorError(before.slice(0, 80))
  return Number(before)
}
