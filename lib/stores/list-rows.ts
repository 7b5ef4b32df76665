import { InvalidCursorError } from '../errors.js'
import type { ListPage, ListQuery, SessionRow } from './store.js'

// Listing shared by adapters that hold their rows in memory (the memory store, and the
// file store's index) and by those that read them in order from an index (Redis): filter,
// newest first, and a keyset cursor so that rows updated while a client pages never make
// it skip or repeat a row.

export interface ListPosition { updatedAt: number, key: string }

export function listRows (all: Iterable<SessionRow>, query: ListQuery): ListPage {
  const listed = rowFilter(query)
  const matches: SessionRow[] = []
  for (const row of all) if (listed(row)) matches.push(row)
  matches.sort(compare)
  const rows = matches.slice(0, query.limit)
  const last = rows[rows.length - 1]
  return matches.length > query.limit && last !== undefined
    ? { rows, cursor: encodeListCursor(last) }
    : { rows }
}

/** Whether a row belongs on the pages of `query` after its cursor. */
export function rowFilter (query: ListQuery): (row: SessionRow) => boolean {
  const search = query.search?.toLowerCase()
  const after = query.cursor === undefined ? undefined : decodeListCursor(query.cursor)
  return row =>
    (query.agentId === undefined || row.agentId === query.agentId) &&
    (query.label === undefined || row.label === query.label) &&
    (search === undefined || matchesSearch(row, search)) &&
    (after === undefined || compare(row, after) > 0)
}

/** Whether `search` (lower-cased) is part of the row's key, label or preview, ignoring case. */
export function matchesSearch (row: SessionRow, search: string): boolean {
  return row.key.includes(search) ||
    (row.label?.toLowerCase().includes(search) ?? false) ||
    (row.preview?.toLowerCase().includes(search) ?? false)
}

// Newest first; ties broken by key so the order is total.
function compare (a: ListPosition, b: ListPosition): number {
  return b.updatedAt - a.updatedAt || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
}

export function encodeListCursor (row: ListPosition): string {
  return Buffer.from(JSON.stringify([row.updatedAt, row.key])).toString('base64url')
}

export function decodeListCursor (cursor: string): ListPosition {
  try {
    const [updatedAt, key] = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as unknown[]
    if (typeof updatedAt === 'number' && typeof key === 'string') return { updatedAt, key }
  } catch {}
  throw new InvalidCursorError(cursor.slice(0, 80))
}
