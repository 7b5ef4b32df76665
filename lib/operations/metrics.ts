import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { isGatewayError } from '../errors.js'
import { STORE_METHODS, type SessionStore } from '../stores/store.js'
import type { ConnectionKind, Telemetry } from '../telemetry.js'

export interface MetricsOptions {
  /** Where Prometheus scrapes, outside the gateway's authentication; `false` for no route (serve `registry` yourself). Default `/metrics`. */
  path?: string | false
  /** The prom-client registry the gateway's metrics join (yours, to scrape them with your own). Default: one of their own. */
  registry?: Registry
}

/** The gateway's metrics: what feeds them, and where they are. */
export interface GatewayMetrics {
  telemetry: Telemetry
  registry: Registry
  /** The store, with its failures counted. */
  countStoreErrors (store: SessionStore): SessionStore
  /** Serves the registry in Prometheus' text format at `path`, unless `path` is false. */
  route (app: FastifyInstance): void
}

// The calls counted: the interface's, not whatever else an adapter class may have.
const STORE_OPERATIONS = new Set<PropertyKey>([...STORE_METHODS, 'sweepRecords', 'close'])
const CONNECTION_KINDS: ConnectionKind[] = ['gateway', 'responses_websocket', 'responses_sse']
const RUN_STATES = ['final', 'aborted', 'error'] as const
const RESUME_OUTCOMES = ['live', 'replay', 'catchup', 'reset'] as const
// A turn is an agent's whole answer: from a fraction of a second to the 10-minute default timeout.
const TURN_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]

/**
 * Prometheus series for what an operator watches: open connections by transport, turns
 * started and finished by state with their duration, resume outcomes, slow consumers
 * closed, store errors. prom-client is loaded only when metrics are asked for.
 */
export async function createMetrics (options: MetricsOptions & { path: string | false }): Promise<GatewayMetrics> {
  const { Counter, Gauge, Histogram, Registry } = await import('prom-client')
  const registry = options.registry ?? new Registry()
  const registers = [registry]

  const connections = new Gauge({ name: 'session_gateway_open_connections', help: 'Open WebSocket connections and SSE streams, by transport', labelNames: ['transport'], registers })
  const started = new Counter({ name: 'session_gateway_turns_started_total', help: 'Turns started', registers })
  const finished = new Counter({ name: 'session_gateway_turns_finished_total', help: 'Turns finished, by state (final, aborted, error)', labelNames: ['state'], registers })
  const duration = new Histogram({ name: 'session_gateway_turn_duration_seconds', help: 'Turn duration, from its input being durable to its end, by state', labelNames: ['state'], buckets: TURN_BUCKETS, registers })
  const resumes = new Counter({ name: 'session_gateway_resumes_total', help: 'Resumes from a cursor, by outcome (live, replay, catchup, reset)', labelNames: ['outcome'], registers })
  const slowConsumers = new Counter({ name: 'session_gateway_slow_consumer_closes_total', help: 'Streams cut off for falling too far behind: gateway and OpenResponses WebSockets closed with 1008, event streams ended', registers })
  const storeErrors = new Counter({ name: 'session_gateway_store_errors_total', help: 'Store calls that failed, by operation', labelNames: ['operation'], registers })

  // Every series exists from the start at zero, so rate() and alerts see the first event.
  for (const transport of CONNECTION_KINDS) connections.set({ transport }, 0)
  for (const state of RUN_STATES) finished.inc({ state }, 0)
  for (const outcome of RESUME_OUTCOMES) resumes.inc({ outcome }, 0)

  return {
    registry,
    telemetry: {
      connectionOpened: transport => connections.inc({ transport }),
      connectionClosed: transport => connections.dec({ transport }),
      turnStarted: () => started.inc(),
      turnFinished (state, seconds) {
        finished.inc({ state })
        duration.observe({ state }, seconds)
      },
      resumed: outcome => resumes.inc({ outcome }),
      slowConsumerClosed: () => slowConsumers.inc()
    },
    countStoreErrors: store => countFailures(store, operation => storeErrors.inc({ operation })),
    route (app) {
      const path = options.path
      if (path === false) return
      app.get(path, async (_request, reply) => await reply.type(registry.contentType).send(await registry.metrics()))
    }
  }
}

/**
 * The store, as it is, except that a failed call is counted. The gateway's own
 * refusals (a 4xx, such as an unknown session) are answers, not failures.
 */
function countFailures (store: SessionStore, failed: (operation: string) => void): SessionStore {
  // By the function itself, not its name: a method replaced on the store is wrapped anew.
  const methods = new WeakMap<Function, (...args: unknown[]) => unknown>()
  return new Proxy(store, {
    get (target, property) {
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== 'function') return value
      let method = methods.get(value)
      if (method === undefined) {
        // Anything else an adapter has still runs on the adapter itself (its #private fields work).
        method = STORE_OPERATIONS.has(property) ? counted(value, target, String(property), failed) : value.bind(target) as (...args: unknown[]) => unknown
        methods.set(value, method)
      }
      return method
    }
  })
}

function counted (method: Function, store: SessionStore, operation: string, failed: (operation: string) => void): (...args: unknown[]) => Promise<unknown> {
  return async (...args) => {
    try {
      return await method.apply(store, args)
    } catch (err) {
      if (!isGatewayError(err) || err.statusCode >= 500) failed(operation)
      throw err
    }
  }
}
