import type { ListPosition } from '../stores/list-rows.js'

// Where the Redis store keeps what (`prefix` defaults to `fsg:`):
//
//   <prefix>{<key>}:row            hash: sessionId, agentId, createdAt, updatedAt, label,
//                                  preview, epoch, and our generation and entries counters
//   <prefix>{<key>}:transcript     stream: every generation's entries, id <generation>-<position>
//   <prefix>{<key>}:generations    hash: sessionId → generation, current and older
//   <prefix>{<key>}:records        set: the names of the records put with this session key
//                                  (expiring with the latest of them; a delete deletes them)
//   <prefix>{<key>}:deleted:<stamp>:row|transcript|generations   what a delete archived (expiring)
//   <prefix>session-id:<sessionId> string: the key whose current generation it is
//   <prefix>{sessions}:all         sorted set: every session, newest first (see listMember)
//   <prefix>{sessions}:agent:<id>  sorted set: the same, one agent's
//   <prefix>record:<kind>:<id>     string: a record's JSON (expiring at its expiresAt)
//
// The braces are a Cluster hash tag: every key of one session hashes to one slot (so each
// change to a session is one atomic script), and both listing indexes to another. Braces
// and `%` inside a session key are %-escaped in its tag, so the tag is always the whole
// key and two keys never share a name.

export interface SessionKeys {
  row: string
  transcript: string
  generations: string
  records: string
  /** Where a delete archives the three (same slot). */
  archived: (stamp: string) => [row: string, transcript: string, generations: string]
}

export class StoreKeys {
  readonly all: string

  constructor (readonly prefix: string) {
    this.all = `${prefix}{sessions}:all`
  }

  session (key: string): SessionKeys {
    const tag = `${this.prefix}{${key.replace(/[%{}]/g, char => `%${char.charCodeAt(0).toString(16)}`)}}`
    return {
      row: `${tag}:row`,
      transcript: `${tag}:transcript`,
      generations: `${tag}:generations`,
      records: `${tag}:records`,
      archived: stamp => [`${tag}:deleted:${stamp}:row`, `${tag}:deleted:${stamp}:transcript`, `${tag}:deleted:${stamp}:generations`]
    }
  }

  agent (agentId: string): string {
    return `${this.prefix}{sessions}:agent:${agentId}`
  }

  sessionId (sessionId: string): string {
    return `${this.prefix}session-id:${sessionId}`
  }

  record (kind: string, id: string): string {
    return `${this.prefix}record:${kind}:${id}`
  }
}

// Index members sort like the list: newest first, then by key. All scores are 0 and the
// member is `<MAX - updatedAt, 16 digits><key>`, so a lexicographic range from a cursor's
// member is exactly the keyset page after it (Redis compares bytes, JavaScript UTF-16
// units: the two orders differ only between astral characters and U+E000–U+FFFF, in
// keys updated in the same millisecond).
const MAX = Number.MAX_SAFE_INTEGER
const WIDTH = String(MAX).length

export function listMember (position: ListPosition): string {
  return String(MAX - position.updatedAt).padStart(WIDTH, '0') + position.key
}

export function memberPosition (member: string): ListPosition {
  return { updatedAt: MAX - Number(member.slice(0, WIDTH)), key: member.slice(WIDTH) }
}
