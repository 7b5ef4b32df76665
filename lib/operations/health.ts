import type { FastifyInstance } from 'fastify'
import type { SessionLog } from '../hub/session-log.js'
import type { SessionStore } from '../stores/store.js'

export interface HealthOptions {
  /** Answers 200 while the process serves requests (liveness). Default `/healthz`. */
  livePath?: string
  /** Answers 200 when the store and the session log answer, else 503 (readiness). Default `/readyz`. */
  readyPath?: string
  /** How long readiness waits for the store and the log before it answers 503. Default 2000. */
  timeoutMs?: number
}

/**
 * Liveness and readiness for a load balancer or an orchestrator, outside the gateway's
 * authentication (probes carry no token) and saying nothing about sessions. Ready means
 * the store answers a one-row listing and a shared session log (Redis) its ping; the
 * in-process log is reachable whenever the process answers. While Fastify closes, it
 * answers 503 itself.
 */
export function healthRoutes (app: FastifyInstance, store: SessionStore, log: SessionLog, options: Required<HealthOptions>): void {
  app.get(options.livePath, async () => ({ status: 'ok' }))

  app.get(options.readyPath, async (request, reply) => {
    const [stored, logged] = await Promise.all([
      within(async () => { await store.list({ limit: 1 }) }, options.timeoutMs, 'the store'),
      within(async () => { await log.ping?.() }, options.timeoutMs, 'the session log')
    ])
    if (stored.ok && logged.ok) return { status: 'ready' }
    const what = stored.ok ? 'the session log' : 'the session store'
    // The cause goes to the log; an unauthenticated probe learns only what is not ready.
    request.log.warn({ err: stored.ok ? (logged as { err: unknown }).err : stored.err }, `session gateway: not ready, ${what} is unreachable`)
    return await reply.code(503).send({ status: 'unavailable', reason: `${what} is unreachable` })
  })
}

/** Whether `call` settles without an error within `ms`. */
async function within (call: () => Promise<void>, ms: number, what: string): Promise<{ ok: true } | { ok: false, err: unknown }> {
  return await new Promise(resolve => {
    const timer = setTimeout(() => resolve({ ok: false, err: new Error(`${what} did not answer within ${ms} ms`) }), ms)
    call()
      .then(() => ({ ok: true as const }), (err: unknown) => ({ ok: false as const, err }))
      .then(answer => {
        clearTimeout(timer)
        resolve(answer)
      })
  })
}
