import { InvalidCursorError } from '../errors.js'
import type { ListPage, ListQuery, SessionRow } from './store.js'

// Listing shared by adapters that hold their rows in memory (the memory store, and the
// file store's index): filter, newest first, and a keyset cursor so that rows updated
// while a client pages never make it skip or repeat a row.

interface Position { updatedAt: number, key: string }

export function listRows (all: Iterable<SessionRow>, query: ListQuery): ListPage {
  const search = query.search?.toLowerCase()
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor)
  const matches: SessionRow[] = []
  for (const row of all) {
    if (query.agentId !== undefined && row.agentId !== query.agentId) continue
    if (query.label !== undefined && row.label !== query.label) continue
    if (search !== undefined && !matchesSearch(row, search)) continue
    if (after !== undefined && compare(row, after) <= 0) continue
    matches.push(row)
  }
  matches.sort(compare)
  const rows = matches.slice(0, query.limit)
  const last = rows[rows.length - 1]
  return matches.length > query.limit && last !== undefined
    ? { rows, cursor: encodeCursor(last) }
    : { rows }
}

/** Whether `search` (lower-cased) is part of the row's key, label or preview, ignoring case. */
export function matchesSearch (row: SessionRow, search: string): boolean {
  return row.key.includes(search) ||
    (row.label?.toLowerCase().includes(search) ?? false) ||
    (row.preview?.toLowerCase().includes(search) ?? false)
}

// Newest first; ties broken by key so the order is total.
function compare (a: Position, b: Position): number {
  return b.updatedAt - a.updatedAt || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)
}

function encodeCursor (row: Position): string {
  return Buffer.from(JSON.stringify([row.updatedAt, row.key])).toString('base64url')
}

function decodeCursor (cursor: string): Position {
  try {
    const [updatedAt, key] = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as unknown[]
    if (typeof updatedAt === 'number' && typeof key === 'string') return { updatedAt, key }
  } catch {}
  throw new InvalidCursorError(cursor.slice(0, 80))
}
