import type { TranscriptEntry } from '../../transcript.js'
import { historyMessage } from './shapes.js'

// `maxBytes` on a history answer, as OpenClaw honours it: the newest messages whose JSON
// fits, the oldest dropped first, at least one kept (a message bigger than the budget
// alone is still sent, not lost). What was dropped stays reachable: the page's `before`
// must point just before the oldest message kept, and only the store can say where that
// is, so a shorter page is read again.

/** Reads of a shorter page before giving up on the budget (each one follows a turn that committed meanwhile). */
const MAX_READS = 4

interface Page { entries: TranscriptEntry[], before?: string }

/**
 * `page`, or the newest part of it that fits in `maxBytes`, read again with `read(limit)`
 * so that its `before` pages back to exactly what was left out.
 */
export async function withinBytes<P extends Page> (page: P, maxBytes: number, read: (limit: number) => Promise<P>): Promise<P> {
  let current = page
  for (let reads = 0; reads < MAX_READS; reads++) {
    const keep = fitting(current.entries, maxBytes)
    if (keep === current.entries.length) return current
    current = await read(keep)
  }
  return current
}

/** How many of the newest entries fit: their messages' JSON as an array, in UTF-8 bytes. */
function fitting (entries: readonly TranscriptEntry[], maxBytes: number): number {
  let bytes = 2 // []
  let messages = 0
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i] as TranscriptEntry
    if (entry.message === undefined) continue
    const cost = Buffer.byteLength(JSON.stringify(historyMessage(entry as TranscriptEntry & { message: NonNullable<TranscriptEntry['message']> }))) + (messages > 0 ? 1 : 0)
    if (messages > 0 && bytes + cost > maxBytes) return entries.length - 1 - i
    bytes += cost
    messages++
  }
  return entries.length
}
