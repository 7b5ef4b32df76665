import { readFile } from 'node:fs/promises'
import { relative } from 'node:path'
import { StoreCorruptError } from '../errors.js'

// `sessions.json`, OpenClaw's index of one agent's sessions: key → entry. Read whole; a
// damaged one is an error that names the file and what to do, never a reason to start
// over (rewriting it would lose every session in it).

/**
 * One entry, as OpenClaw writes it: its own fields (`sessionId`, `updatedAt`, `label`, and
 * many more we leave alone) plus a few of ours, prefixed so they cannot collide. A
 * rewrite keeps every field it does not know.
 */
export interface IndexEntry {
  sessionId: string
  updatedAt: number
  label?: string
  createdAt?: number
  lastMessagePreview?: string
  gatewayEpoch?: string
  /** Earlier generations of this key, still readable by their id. */
  gatewayGenerations?: string[]
  [field: string]: unknown
}

export type Index = Record<string, IndexEntry>

// What may become a file name: OpenClaw's ids are UUIDs; nothing with a dot or a slash.
export const SESSION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/

/** The index at `path` (empty when there is none); `FSG_STORE_CORRUPT` when it is not a JSON object. */
export async function readIndex (root: string, agentId: string, path: string): Promise<Index> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    /* c8 ignore next: gone between the caller's stat and this read, a race no test can time */
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw err
  }
  let index: unknown
  try {
    index = JSON.parse(text)
  } catch (err) {
    throw damaged(root, agentId, path, (err as Error).message)
  }
  if (typeof index !== 'object' || index === null || Array.isArray(index)) throw damaged(root, agentId, path, 'it is not a JSON object')
  return index as Index
}

function damaged (root: string, agentId: string, path: string, reason: string): InstanceType<typeof StoreCorruptError> {
  return new StoreCorruptError(`The session index ${relative(root, path)} cannot be read (${reason}): the sessions of agent "${agentId}" ` +
    'are unavailable until it is repaired. Restore it from a backup, or repair it by hand (the gateway leaves it as it is); ' +
    'other agents\' sessions are served as usual')
}

/** The entry for `key` if we can use it; entries we cannot (no usable sessionId) stay in the file, untouched. */
export function entryOf (index: Index, key: string): IndexEntry | undefined {
  const entry = Object.hasOwn(index, key) ? index[key] : undefined
  return typeof entry === 'object' && entry !== null && typeof entry.sessionId === 'string' && SESSION_ID_PATTERN.test(entry.sessionId) ? entry : undefined
}

export function * entriesOf (index: Index): Generator<[string, IndexEntry]> {
  for (const key of Object.keys(index)) {
    const entry = entryOf(index, key)
    if (entry !== undefined) yield [key, entry]
  }
}
