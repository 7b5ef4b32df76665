import { randomUUID } from 'node:crypto'
import {
  AgentMismatchError, InvalidAgentIdError, InvalidSessionKeyError,
  MissingSessionKeyError, ReservedSessionKeyError
} from './errors.js'

// Session key rules, kept identical to OpenClaw's so keys are interchangeable:
// canonical form `agent:<agentId>:<rest>`, compared case-insensitively (stored lower-cased).

export const MAX_SESSION_KEY_LENGTH = 512
export const AGENT_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/
export const RESERVED_NAMESPACES = ['subagent', 'cron', 'acp'] as const
export const GLOBAL_SESSION_KEY = 'global'

// C0 controls, DEL and C1 controls: never part of a key (they break logs, headers and files).
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/
// A key is never used as a path, but we refuse anything that could become one.
const PATH_SEPARATORS = /[/\\]/

export interface KeyContext {
  /** The agent the key belongs to when the key itself does not say. */
  agentId: string
  /** Whether `agentId` was asked for explicitly (header, frame, model), so a key naming another agent is a contradiction. */
  explicitAgent: boolean
  /** The configured main key (`main`). */
  mainKey: string
}

export interface CanonicalKey {
  sessionKey: string
  agentId: string
}

/** Lower-cases and checks an agent id; throws `FSG_INVALID_AGENT_ID`. */
export function normalizeAgentId (raw: string): string {
  const id = raw.trim().toLowerCase()
  if (!AGENT_ID_PATTERN.test(id)) throw new InvalidAgentIdError(JSON.stringify(raw.slice(0, 80)))
  return id
}

/**
 * Turns a client-supplied key into its canonical form.
 * `main` → `agent:<agent>:main`, `foo` → `agent:<agent>:foo`, `global` stays `global`,
 * `agent:<id>:<rest>` is checked against the requested agent.
 */
export function canonicalizeSessionKey (raw: string, ctx: KeyContext): CanonicalKey {
  const trimmed = raw.trim()
  if (trimmed === '') throw new MissingSessionKeyError()
  checkCharacters(trimmed)
  const key = trimmed.toLowerCase()

  if (key === GLOBAL_SESSION_KEY) return { sessionKey: key, agentId: ctx.agentId }
  if (key === ctx.mainKey || key === 'main') return { sessionKey: mainSessionKey(ctx.agentId, ctx.mainKey), agentId: ctx.agentId }

  if (key.startsWith('agent:')) {
    const second = key.indexOf(':', 6)
    const keyAgent = second === -1 ? key.slice(6) : key.slice(6, second)
    const rest = second === -1 ? '' : key.slice(second + 1)
    if (!AGENT_ID_PATTERN.test(keyAgent)) throw new InvalidSessionKeyError('the agent id after "agent:" is not valid')
    if (rest === '') throw new InvalidSessionKeyError('nothing follows "agent:<agentId>:"')
    if (ctx.explicitAgent && keyAgent !== ctx.agentId) throw new AgentMismatchError(ctx.agentId, keyAgent)
    checkRest(rest)
    // Measured again once lower-cased: a few characters grow (`İ` becomes two).
    return finish(key, keyAgent)
  }

  checkRest(key)
  return finish(`agent:${ctx.agentId}:${key}`, ctx.agentId)
}

/** The key of an agent's main session. */
export function mainSessionKey (agentId: string, mainKey: string): string {
  return `agent:${agentId}:${mainKey}`
}

/** The agent a canonical key names (`agent:<id>:…`), or undefined for keys like `global`. */
export function agentOfKey (key: string): string | undefined {
  const id = /^agent:([^:]*):/.exec(key)?.[1]
  return id !== undefined && AGENT_ID_PATTERN.test(id) ? id : undefined
}

/** The same canonical key under another agent id (`global`, which names none, stays). */
export function keyForAgent (key: string, agentId: string): string {
  const current = agentOfKey(key)
  return current === undefined ? key : `agent:${agentId}:${key.slice(`agent:${current}:`.length)}`
}

/** The key an OpenResponses request with `user` and no explicit key lands on. */
export function userSessionKey (user: string, agentId: string): CanonicalKey {
  const trimmed = user.trim()
  if (trimmed === '') throw new InvalidSessionKeyError('"user" is empty')
  checkCharacters(trimmed)
  return finish(`agent:${agentId}:openresponses-user:${trimmed.toLowerCase()}`, agentId)
}

/** A fresh, never-seen key, for a request that names no session at all. */
export function freshSessionKey (agentId: string): CanonicalKey {
  return { sessionKey: `agent:${agentId}:openresponses:${randomUUID()}`, agentId }
}

function finish (sessionKey: string, agentId: string): CanonicalKey {
  if (sessionKey.length > MAX_SESSION_KEY_LENGTH) {
    throw new InvalidSessionKeyError(`longer than ${MAX_SESSION_KEY_LENGTH} characters`)
  }
  return { sessionKey, agentId }
}

function checkCharacters (key: string): void {
  if (key.length > MAX_SESSION_KEY_LENGTH) throw new InvalidSessionKeyError(`longer than ${MAX_SESSION_KEY_LENGTH} characters`)
  if (CONTROL_CHARACTERS.test(key)) throw new InvalidSessionKeyError('contains control characters')
  if (PATH_SEPARATORS.test(key)) throw new InvalidSessionKeyError('contains "/" or "\\"')
}

// `rest` is everything after `agent:<id>:` (or a bare key).
function checkRest (rest: string): void {
  const colon = rest.indexOf(':')
  const namespace = colon === -1 ? '' : rest.slice(0, colon)
  if ((RESERVED_NAMESPACES as readonly string[]).includes(namespace)) throw new ReservedSessionKeyError(namespace)
  for (const segment of rest.split(':')) {
    if (segment === '.' || segment === '..') throw new InvalidSessionKeyError('contains a "." or ".." segment')
  }
}
