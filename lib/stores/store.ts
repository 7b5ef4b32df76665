import type { FastifyBaseLogger } from 'fastify'
import { messageText, type TranscriptEntry } from '../transcript.js'

/**
 * A session row: the stable routing bucket `key` and the transcript generation
 * (`sessionId`) it currently points at. A reset points the key at a new generation;
 * older generations stay readable by their `sessionId`.
 */
export interface SessionRow {
  /** Canonical session key, lower-case (`agent:<agentId>:<rest>` or `global`). */
  key: string
  /** Current transcript generation, a UUID. */
  sessionId: string
  agentId: string
  label?: string
  /** Milliseconds since the epoch. */
  createdAt: number
  updatedAt: number
  /** The start of the last message's text, for lists. */
  preview?: string
  /**
   * Names this life of the session's event log (see the hub). Absent means "same as
   * `sessionId`"; the hub sets a new one when the log's past can no longer be trusted.
   */
  epoch?: string
}

export interface ListQuery {
  agentId?: string
  /** Exact label match. */
  label?: string
  /** Case-insensitive substring of key, label or preview. */
  search?: string
  /** Page size, 1..1000. */
  limit: number
  /** Opaque: the `cursor` of the previous page. */
  cursor?: string
}

export interface ListPage {
  /** Newest `updatedAt` first. */
  rows: SessionRow[]
  /** Present when more rows follow. */
  cursor?: string
}

export interface ReadQuery {
  /** How many entries, counted from the newest. */
  limit: number
  /** Opaque: the `before` of a previous page, to read older entries. */
  before?: string
  /** Read an older generation instead of the current one. */
  sessionId?: string
}

export interface ReadPage {
  /** Oldest first. */
  entries: TranscriptEntry[]
  /** Present when older entries exist. */
  before?: string
}

/** What ties a record to the rest of the store. */
export interface RecordOptions {
  /** The session the record belongs to: deleting the session deletes the record. */
  sessionKey?: string
  /** Milliseconds since the epoch after which the record is gone. */
  expiresAt?: number
}

export type RowPatch = Partial<Pick<SessionRow, 'label' | 'epoch'>>

/** What the gateway hands a store when it starts. */
export interface StoreContext {
  /** Where to report what a person must act on (a damaged file, say): the gateway's logger. */
  logger: Pick<FastifyBaseLogger, 'error' | 'warn'>
}

/**
 * Persistence behind the hub. Implement this to keep sessions in your own database;
 * `fastify-session-gateway/testing` exports the contract suite every adapter must pass.
 *
 * Rules every adapter keeps:
 * - keys arrive canonical; compare them as given;
 * - `append` resolves only once the entries are durable (the hub acknowledges
 *   a send on that promise), and entries keep every field they were given;
 * - `read` returns the newest entries without loading the whole transcript where the
 *   backend allows it.
 */
export interface SessionStore {
  /**
   * Called once when the gateway starts, before it serves (see `openStore`). A store
   * that must not serve, its data held by another process, throws `FSG_STORE_LOCKED`
   * and the gateway does not start; any other failure is logged and the store answers
   * each later call as it can (readiness says so).
   */
  open? (context: StoreContext): Promise<void>
  get (key: string): Promise<SessionRow | undefined>
  /** The row whose current generation is `sessionId`. */
  findBySessionId (sessionId: string): Promise<SessionRow | undefined>
  /** Returns the existing row, or creates it (with a new `sessionId`) if absent. */
  ensure (key: string, agentId: string): Promise<SessionRow>
  list (query: ListQuery): Promise<ListPage>
  /** Undefined when the key does not exist. */
  patch (key: string, patch: RowPatch): Promise<SessionRow | undefined>
  /** Points the key at a new, empty generation. Undefined when the key does not exist. */
  reset (key: string): Promise<SessionRow | undefined>
  /** Removes the row, and the records put with its key; false when it did not exist. */
  delete (key: string): Promise<boolean>
  /** Appends to the current generation and bumps `updatedAt` and `preview`. Throws `FSG_SESSION_NOT_FOUND` when the key does not exist. */
  append (key: string, entries: TranscriptEntry[]): Promise<void>
  /** Throws `FSG_SESSION_NOT_FOUND` when the key (or the requested generation) does not exist. */
  read (key: string, query: ReadQuery): Promise<ReadPage>
  /**
   * Small JSON documents that transports keep beside the sessions (an OpenResponses
   * response by its id, say), so they survive a restart. `kind` and `id` match
   * `RECORD_ID_PATTERN`; a put replaces. Durable when the promise resolves. A record
   * given a `sessionKey` goes when that session is deleted; one given `expiresAt` is
   * gone from then on (and `sweepRecords` reclaims its space).
   */
  putRecord (kind: string, id: string, value: unknown, options?: RecordOptions): Promise<void>
  /** Undefined when absent, or past its `expiresAt`. */
  getRecord (kind: string, id: string): Promise<unknown>
  /**
   * Removes up to `limit` records whose `expiresAt` is at or before `now`; answers how many
   * it removed. Absent when the backend expires records itself (Redis).
   */
  sweepRecords? (now: number, limit: number): Promise<number>
  close? (): Promise<void>
}

/** The methods every `SessionStore` has (`close` is optional). */
export const STORE_METHODS = ['get', 'findBySessionId', 'ensure', 'list', 'patch', 'reset', 'delete', 'append', 'read', 'putRecord', 'getRecord'] as const

/**
 * Opens a store as the gateway starts. A store another process has (`FSG_STORE_LOCKED`)
 * stops the start: two processes on one file store would interleave turns. Any other
 * failure (a full disk, a file where the directory should be) lets the gateway start,
 * not ready, and the store tries again on each call.
 */
export async function openStore (store: SessionStore, logger: StoreContext['logger']): Promise<void> {
  try {
    await store.open?.({ logger })
  } catch (err) {
    if ((err as { code?: unknown }).code === 'FSG_STORE_LOCKED') throw err
    logger.error({ err }, 'session gateway: the store could not open; it is tried again on each call')
  }
}

/** What a record kind or id may look like: safe as a file name, a Redis key or a SQL value. */
export const RECORD_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/

/** Whether a record put with these options is gone at `now`. */
export function expired (options: RecordOptions, now: number): boolean {
  return options.expiresAt !== undefined && options.expiresAt <= now
}

export const PREVIEW_LENGTH = 120

/** The preview a row shows for its newest message entry (undefined when none has text). */
export function previewOf (entries: readonly TranscriptEntry[]): string | undefined {
  for (let i = entries.length - 1; i >= 0; i--) {
    const message = entries[i]?.message
    if (message === undefined) continue
    const text = messageText(message)
    if (text !== '') return text.length > PREVIEW_LENGTH ? text.slice(0, PREVIEW_LENGTH - 1) + '…' : text
  }
  return undefined
}
