import type { Principal } from './auth.js'
import { ForbiddenError, MissingSessionKeyError, UnknownAgentError } from './errors.js'
import {
  canonicalizeSessionKey, freshSessionKey, normalizeAgentId, userSessionKey, type CanonicalKey
} from './session-key.js'

export type SessionAction = 'read' | 'write'

export interface AuthorizeContext {
  principal: Principal
  sessionKey: string
  agentId: string
  action: SessionAction
}

/** Decides who may read or write which session. Written once, applied on every transport. */
export type AuthorizeFunction = (context: AuthorizeContext) => boolean | Promise<boolean>

/** Everything a request or frame may say about which session it means. */
export interface SessionHints {
  /** `x-openclaw-session-key` header, `sessionKey` query or frame field. */
  sessionKey?: string | undefined
  /** `x-openclaw-agent-id` header, `agentId` query or frame field. */
  agentId?: string | undefined
  /** OpenResponses `user`: with no key, the session `agent:<id>:openresponses-user:<user>`. */
  user?: string | undefined
  /** OpenResponses `model`: `openclaw`, `openclaw/<id>`, `openclaw:<id>` or `agent:<id>` select an agent. */
  model?: string | undefined
}

/** What to do when the hints name no session: a new one, the agent's main session, or refuse. */
export type WhenMissing = 'fresh' | 'main' | 'error'

export interface ResolvedSession extends CanonicalKey {
  /** A `model` that was not an agent selector, to hand to the agent and echo back. */
  model?: string
}

export interface ResolverOptions {
  defaultAgentId: string
  mainKey: string
  /** When set, only these agents exist. */
  agents?: readonly string[]
  authorize?: AuthorizeFunction
}

export type Resolver = (
  hints: SessionHints,
  principal: Principal,
  action: SessionAction,
  whenMissing?: WhenMissing
) => Promise<ResolvedSession>

const AGENT_MODEL = /^(?:openclaw[/:]|agent:)(.+)$/i

/**
 * The one resolver: every transport turns its hints into a canonical session key and
 * agent id here, and every answer has passed `authorize`.
 */
export function createResolver (options: ResolverOptions): Resolver {
  const agents = options.agents === undefined ? undefined : new Set(options.agents)

  function checkAgent (agentId: string): void {
    if (agents !== undefined && !agents.has(agentId)) throw new UnknownAgentError(agentId)
  }

  return async function resolve (hints, principal, action, whenMissing = 'error') {
    const selected = selectAgent(hints, options.defaultAgentId)
    checkAgent(selected.agentId)
    const keyContext = { agentId: selected.agentId, explicitAgent: selected.explicit, mainKey: options.mainKey }

    let resolved: CanonicalKey
    if (present(hints.sessionKey)) {
      resolved = canonicalizeSessionKey(hints.sessionKey, keyContext)
      checkAgent(resolved.agentId)
    } else if (present(hints.user)) {
      resolved = userSessionKey(hints.user, selected.agentId)
    } else if (whenMissing === 'fresh') {
      resolved = freshSessionKey(selected.agentId)
    } else if (whenMissing === 'main') {
      resolved = canonicalizeSessionKey(options.mainKey, keyContext)
    } else {
      throw new MissingSessionKeyError()
    }

    if (options.authorize !== undefined) {
      const allowed = await options.authorize({ principal, sessionKey: resolved.sessionKey, agentId: resolved.agentId, action })
      if (allowed !== true) throw new ForbiddenError(action, resolved.sessionKey)
    }
    return selected.model === undefined ? resolved : { ...resolved, model: selected.model }
  }
}

/** Header or frame agent id first, then an agent-selecting `model`, then the default. */
function selectAgent (hints: SessionHints, defaultAgentId: string): { agentId: string, explicit: boolean, model?: string } {
  if (present(hints.agentId)) return { agentId: normalizeAgentId(hints.agentId), explicit: true }
  const model = hints.model?.trim()
  if (model === undefined || model === '') return { agentId: defaultAgentId, explicit: false }
  if (model.toLowerCase() === 'openclaw') return { agentId: defaultAgentId, explicit: false }
  const match = AGENT_MODEL.exec(model)
  if (match !== null) return { agentId: normalizeAgentId(match[1] as string), explicit: true }
  return { agentId: defaultAgentId, explicit: false, model }
}

function present (value: string | undefined): value is string {
  return typeof value === 'string' && value.trim() !== ''
}

