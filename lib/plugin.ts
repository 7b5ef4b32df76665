import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { requestCredentials, type Principal } from './auth.js'
import { SessionGateway } from './gateway.js'
import { logSerializers } from './logging.js'
import { resolveOptions, type SessionGatewayOptions } from './options.js'
import type { ResolvedSession, SessionAction, SessionHints, WhenMissing } from './resolver.js'

/**
 * Per-route settings, under `config.sessionGateway`, for routes inside the gateway's scope.
 * - `auth`: `required` (default) answers 401 before the handler; `deferred` lets the
 *   handler authenticate later (a WebSocket whose first frame carries the token).
 * - `session`: how the resolver treats a request that names no session (default
 *   `optional`: resolve only when the request names one; `none`: never resolve).
 * - `action`: what `authorize` is asked (default: `read` for GET, else `write`).
 */
export interface GatewayRouteConfig {
  auth?: 'required' | 'deferred'
  session?: WhenMissing | 'optional' | 'none'
  action?: SessionAction
}

declare module 'fastify' {
  interface FastifyInstance {
    sessionGateway: SessionGateway
  }
  interface FastifyRequest {
    /** Who is calling; set by the gateway's `onRequest` hook (null until authenticated). */
    gatewayPrincipal: Principal | null
    /** The session this request means; set by the gateway's `preHandler` hook. */
    gatewaySession: ResolvedSession | null
  }
  interface FastifyContextConfig {
    sessionGateway?: GatewayRouteConfig
  }
}

async function sessionGatewayPlugin (app: FastifyInstance, rawOptions: SessionGatewayOptions): Promise<void> {
  const options = resolveOptions(rawOptions)
  const gateway = new SessionGateway(options, app.log)
  app.decorate('sessionGateway', gateway)
  app.decorateRequest('gatewayPrincipal', null)
  app.decorateRequest('gatewaySession', null)
  app.addHook('onClose', async () => { await gateway.close() })

  // One encapsulated scope holds every transport route, behind one authentication
  // hook and one resolver hook. Its request logs never show a query-string token.
  await app.register(async function sessionGatewayScope (scope) {
    scope.addHook('onRequest', async function authenticate (request: FastifyRequest) {
      const config = request.routeOptions.config.sessionGateway ?? {}
      const credentials = requestCredentials(request)
      if (config.auth === 'deferred' && credentials.token === undefined) return
      request.gatewayPrincipal = await gateway.authenticate(request, credentials)
    })

    scope.addHook('preHandler', async function resolveSession (request: FastifyRequest, _reply: FastifyReply) {
      const config = request.routeOptions.config.sessionGateway ?? {}
      const mode = config.session ?? 'optional'
      if (mode === 'none' || request.gatewayPrincipal === null) return
      const hints = requestHints(request)
      if (mode === 'optional' && hints.sessionKey === undefined && hints.user === undefined) return
      const action = config.action ?? (request.method === 'GET' ? 'read' : 'write')
      request.gatewaySession = await gateway.resolve(hints, request.gatewayPrincipal, action, mode === 'optional' ? 'error' : mode)
    })

    if (options.routes !== undefined) await options.routes(scope)
  }, { logSerializers })
}

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

export const sessionGateway = fp(sessionGatewayPlugin, { name: 'fastify-session-gateway', fastify: '5.x' })
