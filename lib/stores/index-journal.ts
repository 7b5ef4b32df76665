import { readFile } from 'node:fs/promises'
import { entryOf, type IndexEntry } from './index-file.js'

// Sessions created since `sessions.json` was last written. Rewriting the whole index for
// each new session costs what the index weighs (27 s for 1,000 sessions once it held
// 5,000), so a creation appends one line here instead, flushed before it is acknowledged,
// and `sessions.json` takes it in with the next batched index write, which then empties
// this file. OpenClaw reads `sessions.json` alone: it sees a new session a moment later.
// After a crash, the lines still here are taken in when the store opens again.

export const JOURNAL_FILE = 'sessions.json.journal'

export interface Creation {
  key: string
  entry: IndexEntry
}

/** The creations in a journal, oldest first; a line that is not one (torn by a crash) is skipped. */
export async function readJournal (path: string): Promise<Creation[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const creations: Creation[] = []
  for (const line of text.split('\n')) {
    let value: Partial<Creation> | null
    try {
      value = JSON.parse(line) as Partial<Creation> | null
    } catch {
      continue
    }
    if (typeof value?.key !== 'string') continue
    const entry = entryOf({ [value.key]: value.entry as IndexEntry }, value.key)
    if (entry !== undefined) creations.push({ key: value.key, entry })
  }
  return creations
}
