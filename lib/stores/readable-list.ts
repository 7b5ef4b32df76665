import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { InvalidCursorError } from '../errors.js'
import { matchesSearch } from './list-rows.js'
import type { ListPage, ListQuery, SessionRow } from './store.js'

// A listing for one principal, over a store that holds everyone's rows. Two things must
// not cross from other principals' rows into the answer:
// - the paging cursor: the store's cursor names the last row it scanned, which may be a
//   row this principal may not read; so the cursor handed out is sealed (encrypted and
//   authenticated, bound to the principal), and names nothing;
// - the filters: `label` and `search` are tested on the rows the principal may read only,
//   never by the store over everyone's rows, so that which rows were scanned, how many
//   store pages were read and whether a cursor comes back depend on the principal's own
//   rows and on the order of all rows, never on what other principals' rows say.

/** Store pages one listing may read, so a principal who may read almost nothing cannot make one call walk a whole database. */
const MAX_SCAN_PAGES = 20

/** Made once per process: a sealed cursor is good until the gateway restarts (then the list starts over). */
const KEY = randomBytes(32)
const IV_BYTES = 12
const TAG_BYTES = 16

export async function listReadable (
  list: (query: ListQuery) => Promise<ListPage>,
  query: ListQuery,
  principalId: string,
  readable: (row: SessionRow) => Promise<boolean>
): Promise<ListPage> {
  const { label, search, cursor: sealed, ...scan } = query
  const needle = search?.toLowerCase()
  const rows: SessionRow[] = []
  let cursor = sealed === undefined ? undefined : unseal(sealed, principalId)
  for (let pages = 0; pages < MAX_SCAN_PAGES; pages++) {
    // Never more rows than are still wanted: when the page fills the answer, the store's cursor
    // is just after the last row returned, so the next page neither skips nor repeats a row.
    const page = await list({ ...scan, limit: query.limit - rows.length, ...(cursor === undefined ? {} : { cursor }) })
    for (const row of page.rows) {
      if (!await readable(row)) continue
      if (label !== undefined && row.label !== label) continue
      if (needle !== undefined && !matchesSearch(row, needle)) continue
      rows.push(row)
    }
    cursor = page.cursor
    if (cursor === undefined || rows.length >= query.limit) break
  }
  return cursor === undefined ? { rows } : { rows, cursor: seal(cursor, principalId) }
}

function seal (cursor: string, principalId: string): string {
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv('aes-256-gcm', KEY, iv)
  cipher.setAAD(Buffer.from(principalId))
  const body = Buffer.concat([cipher.update(cursor, 'utf8'), cipher.final()])
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')
}

function unseal (sealed: string, principalId: string): string {
  const bytes = Buffer.from(sealed, 'base64url')
  try {
    // A full-length tag only: a short one would be easier to forge.
    const decipher = createDecipheriv('aes-256-gcm', KEY, bytes.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES })
    decipher.setAAD(Buffer.from(principalId))
    decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES))
    return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8')
  } catch {
    // Not ours, tampered with, from before a restart, or another principal's.
    throw new InvalidCursorError(sealed.slice(0, 80))
  }
}
