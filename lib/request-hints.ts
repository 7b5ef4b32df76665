import type { FastifyRequest } from 'fastify'
import type { SessionHints } from './resolver.js'

/** Headers win over the query string; `user` and `model` come from a JSON body. */
export function requestHints (request: FastifyRequest): SessionHints {
  const query = request.query as Record<string, unknown>
  const body = (typeof request.body === 'object' && request.body !== null ? request.body : {}) as Record<string, unknown>
  return {
    sessionKey: header(request, 'x-openclaw-session-key') ?? text(query.sessionKey),
    agentId: header(request, 'x-openclaw-agent-id') ?? text(query.agentId),
    user: text(body.user),
    model: text(body.model)
  }
}

function header (request: FastifyRequest, name: string): string | undefined {
  return text(request.headers[name])
}

function text (value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined
}
