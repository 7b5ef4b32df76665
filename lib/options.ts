import { Kind, Type, TypeRegistry, type TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { FastifyInstance } from 'fastify'
import type { Agent } from './agents/agent.js'
import { echoAgent } from './agents/echo.js'
import type { AuthOption } from './auth.js'
import type { SessionLog } from './hub/session-log.js'
import { InvalidOptionError } from './errors.js'
import type { HealthOptions } from './operations/health.js'
import type { MetricsOptions } from './operations/metrics.js'
import type { AuthorizeFunction } from './resolver.js'
import type { ControlUiOptions } from './transports/openclaw/control-ui.js'
import { AGENT_ID_PATTERN } from './session-key.js'
import { FileStore } from './stores/file.js'
import { STORE_METHODS, type SessionStore } from './stores/store.js'

export interface SessionGatewayOptions {
  /** Where sessions and transcripts live. Default: a `FileStore` in `./data` (OpenClaw's layout). */
  store?: SessionStore
  /**
   * What processes share about each session at run time: its event log, lane, idempotency
   * claims and aborts. Default: an in-process log (one process per store).
   */
  sessionLog?: SessionLog
  /** What generates the answers. Default: `echoAgent()`. */
  agent?: Agent
  /** Required: `{ token }`, `{ verify }`, or `false` to run without authentication. */
  auth: AuthOption
  /** Who may read or write which session. Default: every authenticated principal may do everything. */
  authorize?: AuthorizeFunction
  /** The agent a request lands on when it names none. Default `main`. */
  defaultAgentId?: string
  /** When set, only these agent ids are accepted. */
  agents?: string[]
  /** The key that means "the agent's main session". Default `main`. */
  mainKey?: string
  /** What a send to a session with a running turn does: wait its turn, or fail with the running run's id. Default `queue`. */
  busy?: 'queue' | 'reject'
  /** Recent events kept in memory per session for exact replay. Default 512. */
  replay?: number
  /**
   * Bytes of events kept in memory for replay, every session together; past it the oldest
   * go first (a resume from further back is answered from the store). Default 64 MiB.
   * With `sessionLog` given, that log keeps the events instead.
   */
  maxReplayBytes?: number
  /**
   * Bytes of finished turns' answers kept for repeats of a keyed `chat.send` (five minutes
   * at most); past it the oldest go first, and a repeat reads the answer from the
   * transcript. Default 16 MiB.
   */
  maxIdempotencyBytes?: number
  /** Longest a turn may run, in ms. Default 600000 (10 minutes). */
  runTimeoutMs?: number
  /** Most sends waiting behind a running turn, per session, under `busy: 'queue'`. Default 16. */
  maxQueue?: number
  /** Idle sessions whose replay buffer stays in memory. Default 10000. */
  maxIdleSessions?: number
  /** With a shared session log: how often a run another process executes is checked for that process having died, in ms. Default 5000. */
  orphanCheckMs?: number
  /** Register your own routes behind the gateway's authentication and session resolution. */
  routes?: (scope: FastifyInstance) => void | Promise<void>
  /** OpenClaw's gateway protocol v4 over WebSocket; `false` turns it off. */
  gateway?: false | GatewayProtocolOptions
  /** Largest WebSocket frame accepted, in bytes (a bigger one closes the socket with 1009). Default 4 MiB. */
  maxPayload?: number
  /** The OpenResponses HTTP API (`POST <prefix>/responses`, …); `false` turns it off. */
  responses?: false | ResponsesOptions
  /** Liveness and readiness routes for load balancers (`/healthz`, `/readyz`); `false` turns them off. */
  health?: false | HealthOptions
  /** Prometheus metrics (`/metrics`); off unless given (`{}` for the defaults). */
  metrics?: false | MetricsOptions
  /** OpenClaw's Control UI, served at `/` from the directory given (it needs the gateway protocol). Off unless given. */
  controlUi?: false | ControlUiOptions
  /** Sessions over REST and Server-Sent Events (`GET <prefix>/sessions`, …); `false` turns it off. */
  rest?: false | RestOptions
}

export interface RestOptions {
  /** Default `/v1`. */
  prefix?: string
  /** How often an idle event stream gets a keep-alive comment, in ms. Default 15000. */
  keepAliveMs?: number
  /** The response is given events while it holds at most this many bytes it has not sent; the rest wait, deltas merged. Default 1 MiB. */
  maxBufferedBytes?: number
  /**
   * An event stream whose live events waiting pass this many bytes ends (its reader
   * resumes by `Last-Event-ID`); a replay is sent as the reader takes it and does not
   * count. Default 16 × `maxPayload` (64 MiB).
   */
  maxQueuedBytes?: number
}

export interface ResponsesOptions {
  /** Default `/v1`. */
  prefix?: string
  /** Largest request body, in bytes (a bigger one answers 413). Default: `maxPayload`. */
  bodyLimit?: number
  /**
   * What a streamed response does when its client goes away: `continue` (default) lets the
   * turn finish and land in the transcript, to be read or resumed later; `abort` stops it.
   */
  onDisconnect?: 'continue' | 'abort'
  /** OpenResponses' WebSocket mode on the same path (`GET <prefix>/responses`, upgraded). Default true. */
  websocket?: boolean
  /** How long a WebSocket-mode connection may live before it is told `websocket_connection_limit_reached`. Default 3600000 (60 minutes). */
  websocketMaxAgeMs?: number
  /** A streamed response is given events while its connection holds at most this many bytes not yet sent. Default 1 MiB. */
  maxBufferedBytes?: number
  /**
   * A streamed response whose reader leaves this many bytes of live events unread is cut
   * off (the SSE connection closed, the WebSocket closed with 1008) instead of held in
   * memory; the turn goes on, and the reader resumes with
   * `GET <prefix>/responses/{id}?stream=true&starting_after=<n>`. A resumed stream goes out
   * as the reader takes it and does not count. Default 16 × `maxPayload` (64 MiB).
   */
  maxQueuedBytes?: number
  /**
   * How long a finished response stays retrievable (`GET <prefix>/responses/:id`, and as a
   * `previous_response_id`), in ms; its record is then removed. Default 2592000000 (30 days).
   */
  recordTtlMs?: number
}

export interface GatewayProtocolOptions {
  /** Default `/gateway`. */
  path?: string
  /** How often `tick` events (and pings that find dead peers) go out. Default 30000. */
  tickIntervalMs?: number
  /**
   * The socket is given frames while it holds at most this many bytes it has not sent;
   * the rest wait in the connection, a run's deltas merged into one. Default 1 MiB.
   */
  maxBufferedBytes?: number
  /**
   * A connection whose live frames waiting for its socket pass this many bytes is closed
   * (1008, a slow consumer; it resumes with a cursor). A replay is sent as the socket
   * drains and does not count. Default 16 × `maxPayload` (64 MiB).
   */
  maxQueuedBytes?: number
  /** How long a new connection has to complete `connect`. Default 10000. */
  handshakeTimeoutMs?: number
  /**
   * The most sessions one connection watches at once (each `chat.send`, `chat.startup`,
   * `sessions.open` or `sessions.messages.subscribe` of another session adds one; a watch
   * costs a few KB). One more is refused with FSG_TOO_MANY_WATCHES. Default 256.
   */
  maxWatchedSessions?: number
}

// An object (or class instance) with these methods: the schema checks the shape, TypeScript the signatures.
TypeRegistry.Set<{ methods: string[] }>('FsgMethods', (schema, value) =>
  typeof value === 'object' && value !== null &&
  schema.methods.every(name => typeof (value as Record<string, unknown>)[name] === 'function'))
const methods = (names: string[], expected: string): TSchema =>
  Type.Unsafe({ [Kind]: 'FsgMethods', methods: names, expected })

const LOG_METHODS = ['position', 'append', 'read', 'subscribe', 'restart', 'acquire', 'release', 'dropWaiting', 'abort', 'claim', 'unclaim', 'forget', 'close']

const OptionsSchema = Type.Object({
  store: Type.Optional(methods([...STORE_METHODS], `a SessionStore (${STORE_METHODS.join(', ')})`)),
  sessionLog: Type.Optional(methods(LOG_METHODS, `a SessionLog (${LOG_METHODS.join(', ')})`)),
  agent: Type.Optional(methods(['respond'], 'an Agent (an object with a respond(request) method)')),
  auth: Type.Union([
    Type.Literal(false),
    Type.Object({ token: Type.String({ minLength: 1 }) }),
    Type.Object({ verify: Type.Function([], Type.Unknown()) })
  ], { expected: '{ token: "<non-empty string>" }, { verify(request, credentials) }, or false to run without authentication' }),
  authorize: Type.Optional(Type.Function([], Type.Unknown(), { expected: 'a function ({ principal, sessionKey, agentId, action }) => boolean' })),
  defaultAgentId: Type.Optional(Type.String({ pattern: AGENT_ID_PATTERN.source, expected: `an agent id matching ${AGENT_ID_PATTERN.source}` })),
  agents: Type.Optional(Type.Array(Type.String({ pattern: AGENT_ID_PATTERN.source }), { minItems: 1, expected: `a non-empty array of agent ids matching ${AGENT_ID_PATTERN.source}` })),
  mainKey: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9_.-]{0,63}$', expected: 'a lower-case key such as "main"' })),
  busy: Type.Optional(Type.Union([Type.Literal('queue'), Type.Literal('reject')], { expected: '"queue" or "reject"' })),
  replay: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, expected: 'an integer from 0 to 1000000' })),
  maxReplayBytes: Type.Optional(Type.Integer({ minimum: 0, expected: 'a non-negative integer (bytes)' })),
  maxIdempotencyBytes: Type.Optional(Type.Integer({ minimum: 0, expected: 'a non-negative integer (bytes)' })),
  runTimeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647, expected: 'a positive integer (milliseconds)' })),
  maxQueue: Type.Optional(Type.Integer({ minimum: 0, maximum: 100_000, expected: 'an integer from 0 to 100000' })),
  maxIdleSessions: Type.Optional(Type.Integer({ minimum: 0, expected: 'a non-negative integer' })),
  orphanCheckMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 3_600_000, expected: 'an integer from 10 to 3600000 (milliseconds)' })),
  routes: Type.Optional(Type.Function([], Type.Unknown(), { expected: 'a function (scope) => void' })),
  gateway: Type.Optional(Type.Union([Type.Literal(false), Type.Object({
    path: Type.Optional(Type.String({ pattern: '^/' })),
    tickIntervalMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 3_600_000 })),
    maxBufferedBytes: Type.Optional(Type.Integer({ minimum: 1024 })),
    maxQueuedBytes: Type.Optional(Type.Integer({ minimum: 1024 })),
    handshakeTimeoutMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 600_000 })),
    maxWatchedSessions: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 }))
  }, { additionalProperties: false })], {
    expected: 'false, or { path: "/…", tickIntervalMs: 10…3600000, maxBufferedBytes: ≥1024, maxQueuedBytes: ≥1024, handshakeTimeoutMs: 10…600000, maxWatchedSessions: 1…1000000 }'
  })),
  maxPayload: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1_073_741_824, expected: 'an integer from 1024 to 1073741824 (bytes)' })),
  responses: Type.Optional(Type.Union([Type.Literal(false), Type.Object({
    prefix: Type.Optional(Type.String({ pattern: '^(/[A-Za-z0-9._~-]+)*$' })),
    bodyLimit: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1_073_741_824 })),
    onDisconnect: Type.Optional(Type.Union([Type.Literal('continue'), Type.Literal('abort')])),
    websocket: Type.Optional(Type.Boolean()),
    websocketMaxAgeMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 2_147_483_647 })),
    maxBufferedBytes: Type.Optional(Type.Integer({ minimum: 1024 })),
    maxQueuedBytes: Type.Optional(Type.Integer({ minimum: 1024 })),
    recordTtlMs: Type.Optional(Type.Integer({ minimum: 10, maximum: Number.MAX_SAFE_INTEGER }))
  }, { additionalProperties: false })], {
    expected: 'false, or { prefix: "/v1" (or "" for none), bodyLimit: 1024…1073741824, onDisconnect: "continue" | "abort", websocket: boolean, websocketMaxAgeMs: ≥10, maxBufferedBytes: ≥1024, maxQueuedBytes: ≥1024, recordTtlMs: ≥10 }'
  })),
  health: Type.Optional(Type.Union([Type.Literal(false), Type.Object({
    livePath: Type.Optional(Type.String({ pattern: '^/' })),
    readyPath: Type.Optional(Type.String({ pattern: '^/' })),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 600_000 }))
  }, { additionalProperties: false })], {
    expected: 'false, or { livePath: "/…", readyPath: "/…", timeoutMs: 1…600000 }'
  })),
  metrics: Type.Optional(Type.Union([Type.Literal(false), Type.Object({
    path: Type.Optional(Type.Union([Type.Literal(false), Type.String({ pattern: '^/' })])),
    registry: Type.Optional(methods(['metrics', 'registerMetric'], 'a prom-client Registry'))
  }, { additionalProperties: false })], {
    expected: 'false, or { path: "/…" or false, registry: a prom-client Registry }'
  })),
  controlUi: Type.Optional(Type.Union([Type.Literal(false), Type.Object({
    root: Type.String({ minLength: 1 })
  }, { additionalProperties: false })], {
    expected: 'false, or { root: "<the directory of OpenClaw\'s Control UI, such as node_modules/openclaw/dist/control-ui>" }'
  })),
  rest: Type.Optional(Type.Union([Type.Literal(false), Type.Object({
    prefix: Type.Optional(Type.String({ pattern: '^(/[A-Za-z0-9._~-]+)*$' })),
    keepAliveMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 3_600_000 })),
    maxBufferedBytes: Type.Optional(Type.Integer({ minimum: 1024 })),
    maxQueuedBytes: Type.Optional(Type.Integer({ minimum: 1024 }))
  }, { additionalProperties: false })], {
    expected: 'false, or { prefix: "/v1" (or "" for none), keepAliveMs: 10…3600000, maxBufferedBytes: ≥1024, maxQueuedBytes: ≥1024 }'
  }))
}, { additionalProperties: false })

const checkOptions = TypeCompiler.Compile(OptionsSchema)

export type ResolvedOptions = Required<Omit<SessionGatewayOptions, 'authorize' | 'agents' | 'routes' | 'gateway' | 'responses' | 'health' | 'metrics' | 'sessionLog' | 'controlUi' | 'rest'>> &
  Pick<SessionGatewayOptions, 'authorize' | 'agents' | 'routes' | 'sessionLog'> & {
    gateway: false | Required<GatewayProtocolOptions>
    responses: false | Required<ResponsesOptions>
    health: false | Required<HealthOptions>
    metrics: false | MetricsOptions & { path: string | false }
    controlUi: false | ControlUiOptions
    rest: false | Required<RestOptions>
  }

/** Checks the options against the schema and fills in the defaults; throws `FSG_INVALID_OPTION` naming the option. */
export function resolveOptions (options: SessionGatewayOptions): ResolvedOptions {
  if (options.auth === undefined) {
    throw new InvalidOptionError('auth', 'it is required: pass { token } or { verify(request, credentials) } to authenticate, or auth: false to run open on purpose')
  }
  const first = checkOptions.Errors(options).First()
  if (first !== undefined) {
    // Every option's schema says what it expects, in words; an unknown option has no schema.
    const property = (OptionsSchema.properties as unknown as Record<string, { expected: string }>)[first.path.split('/')[1] as string]
    throw new InvalidOptionError(first.path.slice(1).replaceAll('/', '.'), property?.expected ?? 'no such option')
  }
  const given = options
  if (given.controlUi !== undefined && given.controlUi !== false && given.gateway === false) {
    throw new InvalidOptionError('controlUi', 'it speaks the gateway protocol: leave gateway on, or turn controlUi off')
  }
  const maxPayload = given.maxPayload ?? 4 * 1024 * 1024
  return {
    ...given,
    // The embedded default: OpenClaw's file layout under ./data (nothing is written until a session is).
    store: given.store ?? new FileStore({ dir: 'data' }),
    agent: given.agent ?? echoAgent(),
    auth: given.auth,
    defaultAgentId: given.defaultAgentId ?? 'main',
    mainKey: given.mainKey ?? 'main',
    busy: given.busy ?? 'queue',
    replay: given.replay ?? 512,
    maxReplayBytes: given.maxReplayBytes ?? 64 * 1024 * 1024,
    maxIdempotencyBytes: given.maxIdempotencyBytes ?? 16 * 1024 * 1024,
    runTimeoutMs: given.runTimeoutMs ?? 600_000,
    maxQueue: given.maxQueue ?? 16,
    maxIdleSessions: given.maxIdleSessions ?? 10_000,
    orphanCheckMs: given.orphanCheckMs ?? 5000,
    maxPayload,
    responses: given.responses === false
      ? false
      : {
          prefix: given.responses?.prefix ?? '/v1',
          bodyLimit: given.responses?.bodyLimit ?? maxPayload,
          onDisconnect: given.responses?.onDisconnect ?? 'continue',
          websocket: given.responses?.websocket ?? true,
          websocketMaxAgeMs: given.responses?.websocketMaxAgeMs ?? 3_600_000,
          maxBufferedBytes: given.responses?.maxBufferedBytes ?? 1024 * 1024,
          maxQueuedBytes: given.responses?.maxQueuedBytes ?? 16 * maxPayload,
          recordTtlMs: given.responses?.recordTtlMs ?? 30 * 24 * 3_600_000
        },
    rest: given.rest === false
      ? false
      : {
          prefix: given.rest?.prefix ?? '/v1',
          keepAliveMs: given.rest?.keepAliveMs ?? 15_000,
          maxBufferedBytes: given.rest?.maxBufferedBytes ?? 1024 * 1024,
          maxQueuedBytes: given.rest?.maxQueuedBytes ?? 16 * maxPayload
        },
    gateway: given.gateway === false
      ? false
      : {
          path: given.gateway?.path ?? '/gateway',
          tickIntervalMs: given.gateway?.tickIntervalMs ?? 30_000,
          maxBufferedBytes: given.gateway?.maxBufferedBytes ?? 1024 * 1024,
          // Room for the frames of several turns at the largest message a client may send.
          maxQueuedBytes: given.gateway?.maxQueuedBytes ?? 16 * maxPayload,
          handshakeTimeoutMs: given.gateway?.handshakeTimeoutMs ?? 10_000,
          maxWatchedSessions: given.gateway?.maxWatchedSessions ?? 256
        },
    health: given.health === false
      ? false
      : {
          livePath: given.health?.livePath ?? '/healthz',
          readyPath: given.health?.readyPath ?? '/readyz',
          timeoutMs: given.health?.timeoutMs ?? 2000
        },
    metrics: given.metrics === undefined || given.metrics === false ? false : { ...given.metrics, path: given.metrics.path ?? '/metrics' },
    controlUi: given.controlUi ?? false
  }
}
