// Our declarations load @fastify/websocket's (the `websocket` route option, `injectWS`),
// so an application gets them with ours without depending on @fastify/websocket itself.
/// <reference types="@fastify/websocket" preserve="true" />
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import websocket from '@fastify/websocket'
import fp from 'fastify-plugin'
import { requestCredentials, type Principal } from './auth.js'
import { SessionService } from './session-service.js'
import { logSerializers } from './logging.js'
import { healthRoutes } from './operations/health.js'
import { createMetrics } from './operations/metrics.js'
import { resolveOptions, type SessionGatewayOptions } from './options.js'
import { UpstreamSessionStore } from './stores/upstream-sessions.js'
import { requestHints } from './request-hints.js'
import { RecordSweeper } from './stores/record-sweeper.js'
import { openStore } from './stores/store.js'
import { NO_TELEMETRY } from './telemetry.js'
import { CloseCode } from './transports/close-codes.js'
import { ControlUi } from './transports/openclaw/control-ui.js'
import { openClawRoute } from './transports/openclaw/route.js'
import { LiveSockets } from './transports/live-sockets.js'
import { responsesRoutes } from './transports/responses/route.js'
import { restRoutes } from './transports/rest/route.js'
import { ResponsesService } from './transports/responses/service.js'
import { VERSION } from './version.js'
import type { ResolvedSession, SessionAction, WhenMissing } from './resolver.js'

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
    sessionGateway: SessionService
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
  await openStore(options.store, app.log)
  const metrics = options.metrics === false ? undefined : await createMetrics(options.metrics)
  const telemetry = metrics?.telemetry ?? NO_TELEMETRY
  // An agent whose upstream keeps sessions of its own (OpenClaw) has them listed and imported through the store.
  const upstream = options.agent.sessions
  const stored = upstream === undefined ? options.store : new UpstreamSessionStore(options.store, upstream, { ...(options.agents === undefined ? {} : { agents: options.agents }), logger: app.log })
  const store = metrics === undefined ? stored : metrics.countStoreErrors(stored)
  const sessions = new SessionService({ ...options, store }, app.log, telemetry)
  app.decorate('sessionGateway', sessions)
  app.decorateRequest('gatewayPrincipal', null)
  app.decorateRequest('gatewaySession', null)
  // Responses leave records; they expire, and their space is reclaimed in the background.
  const sweeper = options.responses === false ? undefined : new RecordSweeper(store, app.log, options.responses.recordTtlMs)
  app.addHook('onClose', async () => {
    await sweeper?.stop() // before the store closes under it
    await sessions.close()
  })

  // Shutdown closes every WebSocket with 1012 (service restart), so clients know to come
  // back; added before @fastify/websocket's own hook, which would close them without a code.
  const sockets = new LiveSockets()
  app.addHook('preClose', function closeSockets (done) {
    sockets.closeAll(CloseCode.restart, 'server restart')
    done()
  })
  if (!app.hasPlugin('@fastify/websocket')) await app.register(websocket, { options: { maxPayload: options.maxPayload } })

  // Operations routes sit outside the gateway's scope: probes and scrapers carry no token.
  // Readiness asks the store itself (a probe must not reach into the upstream), and the session log.
  if (options.health !== false) healthRoutes(app, options.store, sessions.log, options.health)
  metrics?.route(app)
  // The UI's files are public, as any web page's: its WebSocket authenticates in `connect`.
  const controlUi = options.controlUi === false ? undefined : await ControlUi.open(options.controlUi)
  controlUi?.routes(app)

  // One encapsulated scope holds every transport route, behind one authentication
  // hook and one resolver hook. Its request logs never show a query-string token.
  await app.register(async function sessionGatewayScope (scope) {
    scope.addHook('onRequest', async function authenticate (request: FastifyRequest) {
      const config = request.routeOptions.config.sessionGateway ?? {}
      const credentials = requestCredentials(request)
      if (config.auth === 'deferred' && credentials.token === undefined) return
      request.gatewayPrincipal = await sessions.authenticate(request, credentials)
    })

    scope.addHook('preHandler', async function resolveSession (request: FastifyRequest, _reply: FastifyReply) {
      const config = request.routeOptions.config.sessionGateway ?? {}
      const mode = config.session ?? 'optional'
      if (mode === 'none' || request.gatewayPrincipal === null) return
      const hints = requestHints(request)
      if (mode === 'optional' && hints.sessionKey === undefined && hints.user === undefined) return
      const action = config.action ?? (request.method === 'GET' ? 'read' : 'write')
      request.gatewaySession = await sessions.resolve(hints, request.gatewayPrincipal, action, mode === 'optional' ? 'error' : mode)
    })

    if (options.gateway !== false) {
      await scope.register(openClawRoute, {
        ...options.gateway,
        sessions,
        sockets,
        telemetry,
        maxPayload: options.maxPayload,
        serverVersion: VERSION,
        defaultAgentId: options.defaultAgentId,
        mainKey: options.mainKey,
        ...(options.agents === undefined ? {} : { agents: options.agents }),
        ...(options.agent.model === undefined ? {} : { model: options.agent.model }),
        ...(controlUi === undefined ? {} : { controlUi })
      })
    }
    if (options.responses !== false) {
      await scope.register(responsesRoutes, {
        ...options.responses,
        sessions,
        service: new ResponsesService(sessions, app.log, options.responses.recordTtlMs),
        sockets,
        telemetry,
        maxPayload: options.maxPayload
      })
    }
    if (options.rest !== false) await scope.register(restRoutes, options.rest)
    if (options.routes !== undefined) await options.routes(scope)
  }, { logSerializers })
}

export const sessionGateway = fp(sessionGatewayPlugin, { name: 'fastify-session-gateway', fastify: '5.x' })
