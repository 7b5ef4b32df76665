import type { FastifyInstance } from 'fastify'
import type { SessionStore } from '../stores/store.js'

export interface HealthOptions {
  /** Answers 200 while the process serves requests (liveness). Default `/healthz`. */
  livePath?: string
  /** Answers 200 when the store answers, else 503 (readiness). Default `/readyz`. */
  readyPath?: string
  /** How long readiness waits for the store before it answers 503. Default 2000. */
  timeoutMs?: number
}

/**
 * Liveness and readiness for a load balancer or an orchestrator, outside the gateway's
 * authentication (probes carry no token) and saying nothing about sessions. Ready means
 * the store answers a one-row listing; the session log lives in this process, so it is
 * reachable whenever the process answers. While Fastify closes, it answers 503 itself.
 */
export function healthRoutes (app: FastifyInstance, store: SessionStore, options: Required<HealthOptions>): void {
  app.get(options.livePath, async () => ({ status: 'ok' }))

  app.get(options.readyPath, async (request, reply) => {
    const answer = await storeAnswer(store, options.timeoutMs)
    if (answer.ok) return { status: 'ready' }
    // The cause goes to the log; an unauthenticated probe learns only that it is not ready.
    request.log.warn({ err: answer.err }, 'session gateway: not ready, the store is unreachable')
    return await reply.code(503).send({ status: 'unavailable', reason: 'the session store is unreachable' })
  })
}

/** Whether the store answers a one-row listing within `ms`. */
async function storeAnswer (store: SessionStore, ms: number): Promise<{ ok: true } | { ok: false, err: unknown }> {
  return await new Promise(resolve => {
    const timer = setTimeout(() => resolve({ ok: false, err: new Error(`the store did not answer within ${ms} ms`) }), ms)
    store.list({ limit: 1 })
      .then(() => ({ ok: true as const }), (err: unknown) => ({ ok: false as const, err }))
      .then(answer => {
        clearTimeout(timer)
        resolve(answer)
      })
  })
}
