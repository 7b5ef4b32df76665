// Test support for the gateway protocol: a plain `ws` client that records every frame,
// and a validator for those frames against OpenClaw's own protocol.schema.json.
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { TOKEN } from './helpers.js'

// The package exports neither the schema file nor its package.json; read it by path.
const schemaFile = fileURLToPath(new URL('../node_modules/@openclaw/gateway-protocol/protocol.schema.json', import.meta.url))
const schema = JSON.parse(readFileSync(schemaFile, 'utf8')) as Record<string, unknown>
const ajv = new Ajv({ strict: false, allErrors: false })
ajv.addSchema(schema, 'protocol')
const validators = new Map<string, ReturnType<typeof ajv.getSchema>>()

function validator (definition: string): NonNullable<ReturnType<typeof ajv.getSchema>> {
  let validate = validators.get(definition)
  if (validate === undefined) {
    validate = ajv.getSchema(`protocol#/definitions/${definition}`)
    validators.set(definition, validate)
  }
  if (validate === undefined) throw new Error(`no definition ${definition}`)
  return validate
}

export interface Frame {
  type: 'req' | 'res' | 'event'
  id?: string
  ok?: boolean
  event?: string
  seq?: number
  payload?: any
  error?: { code: string, message: string, details?: any, retryable?: boolean }
}

/**
 * The parts of each method's answer that OpenClaw's schema defines, with their definition:
 * every method of ours that OpenClaw also has, wherever the schema has a result for it.
 */
const RESULTS: Record<string, (payload: any) => Array<[string, unknown]>> = {
  'sessions.list': payload => payload.sessions.map((row: unknown) => ['SessionRow', row]),
  'sessions.resolve': payload => [['SessionsResolveResult', payload]],
  'sessions.create': payload => [['SessionsCreateResult', payload], ['SessionRow', payload.entry]],
  'sessions.patch': payload => [['SessionRow', payload.entry]],
  'sessions.reset': payload => [['SessionRow', payload.entry]],
  'sessions.delete': payload => [['SessionsDeleteResult', payload]],
  'sessions.describe': payload => payload.session === null ? [] : [['SessionRow', payload.session]],
  'sessions.open': payload => payload.entry === undefined ? [] : [['SessionRow', payload.entry]],
  'chat.startup': payload => [['SessionRow', payload.sessionInfo], ...payload.metadata.models.map((model: unknown) => ['ModelChoice', model])],
  'chat.metadata': payload => payload.models.map((model: unknown) => ['ModelChoice', model]),
  'agents.list': payload => [['AgentsListResult', payload]],
  'agent.identity.get': payload => [['AgentIdentityResult', payload]],
  'models.list': payload => [['ModelsListResult', payload]]
}

/**
 * The first problem with a frame the server sent, checked against OpenClaw's schema:
 * the frame union, then `hello-ok`, `chat`, `agent` and `tick` payloads, and the answer
 * to `method` where the schema defines it. Undefined when valid.
 */
export function frameProblem (frame: Frame, helloId?: string, method?: string): string | undefined {
  const checks: Array<[string, unknown]> = [[frame.type === 'res' ? 'ResponseFrame' : 'EventFrame', frame]]
  if (frame.type === 'res' && frame.id === helloId && frame.ok === true) checks.push(['HelloOk', frame.payload])
  const result = method === undefined ? undefined : RESULTS[method]
  if (frame.type === 'res' && frame.ok === true && result !== undefined) checks.push(...result(frame.payload))
  if (frame.type === 'event' && frame.event === 'chat') checks.push(['ChatEvent', frame.payload])
  if (frame.type === 'event' && frame.event === 'agent') checks.push(['AgentEvent', frame.payload])
  if (frame.type === 'event' && frame.event === 'tick') checks.push(['TickEvent', frame.payload])
  for (const [definition, value] of checks) {
    const validate = validator(definition)
    if (validate(value) !== true) return `${definition}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(value).slice(0, 300)}`
  }
  return undefined
}

export interface OpenOptions {
  /** Default `/gateway`. */
  path?: string
  headers?: Record<string, string>
  query?: string
  /** Sent in `connect`; default: none (the header carries the token). */
  connect?: Record<string, unknown>
  caps?: string[]
  /** Skip the handshake (for tests of the handshake itself). */
  raw?: boolean
}

/** A gateway-protocol connection that records every frame the server sends. */
export class GatewaySocket {
  readonly frames: Frame[] = []
  readonly problems: string[] = []
  closed: { code: number, reason: string } | undefined
  #nextId = 0
  #waiters: Array<{ match: (f: Frame) => boolean, resolve: (f: Frame) => void }> = []
  #helloId: string | undefined
  /** The method of each request still waiting for its answer, to check the answer against its result. */
  readonly #methods = new Map<string, string>()
  readonly #closedPromise: Promise<{ code: number, reason: string }>

  /** Called with each frame that does not match the schema, as it arrives. */
  onProblem: (problem: string) => void = problem => { this.problems.push(problem) }

  constructor (readonly socket: WebSocket, readonly validate: boolean) {
    socket.on('message', (data: Buffer) => {
      const frame = JSON.parse(String(data)) as Frame
      const method = frame.type === 'res' && frame.id !== undefined ? this.#methods.get(frame.id) : undefined
      if (method !== undefined) this.#methods.delete(frame.id as string)
      if (this.validate) {
        const problem = frameProblem(frame, this.#helloId, method)
        if (problem !== undefined) this.onProblem(problem)
      }
      this.frames.push(frame)
      this.#waiters = this.#waiters.filter(waiter => {
        if (!waiter.match(frame)) return true
        waiter.resolve(frame)
        return false
      })
    })
    this.#closedPromise = new Promise(resolve => socket.once('close', (code, reason) => {
      this.closed = { code, reason: String(reason) }
      resolve(this.closed)
    }))
  }

  /** Connects to a listening app, or to a port (a server in another process). */
  static async open (target: FastifyInstance | { port: number }, options: OpenOptions = {}, onProblem?: (problem: string) => void): Promise<GatewaySocket> {
    const address = 'server' in target ? target.server.address() as { port: number } : target
    const url = `ws://127.0.0.1:${address.port}${options.path ?? '/gateway'}${options.query === undefined ? '' : `?${options.query}`}`
    const socket = new WebSocket(url, { headers: options.headers ?? { authorization: `Bearer ${TOKEN}` } })
    const client = new GatewaySocket(socket, options.caps === undefined || !options.caps.includes('session-cursor'))
    if (onProblem !== undefined) client.onProblem = onProblem
    await once(socket, 'open')
    await client.next(f => f.event === 'connect.challenge')
    if (options.raw === true) return client
    const hello = await client.request('connect', {
      minProtocol: 4, maxProtocol: 4, client: { id: 'test', version: '1', platform: 'node', mode: 'test' },
      ...(options.caps === undefined ? {} : { caps: options.caps }),
      ...options.connect
    })
    if (hello.ok !== true) throw new Error(`connect refused: ${JSON.stringify(hello.error)}`)
    return client
  }

  /** Sends a request and waits for its answer. */
  async request (method: string, params?: unknown): Promise<Frame> {
    const id = `r${++this.#nextId}`
    if (method === 'connect') this.#helloId = id
    this.#methods.set(id, method)
    this.send({ type: 'req', id, method, ...(params === undefined ? {} : { params }) })
    return await this.next(frame => frame.type === 'res' && frame.id === id)
  }

  send (frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** The first frame (already received or still to come) that matches. */
  async next (match: (frame: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const seen = this.frames.find(match)
    if (seen !== undefined) return seen
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`)), timeoutMs)
      this.#waiters.push({ match, resolve: frame => { clearTimeout(timer); resolve(frame) } })
    })
  }

  events (name: string): Frame[] {
    return this.frames.filter(frame => frame.type === 'event' && frame.event === name)
  }

  async closedWith (timeoutMs = 5000): Promise<{ code: number, reason: string }> {
    const timer = setTimeout(() => this.socket.terminate(), timeoutMs)
    const closed = await this.#closedPromise
    clearTimeout(timer)
    return closed
  }

  close (): void {
    this.socket.close()
  }
}

export async function listen (app: FastifyInstance): Promise<void> {
  await app.listen({ port: 0, host: '127.0.0.1' })
}

/** A gateway-protocol client on a listening app, watching `key` (`sessions.open`), closed by the test's teardown. */
export async function watchSession (t: { teardown: (fn: () => unknown) => void }, app: FastifyInstance, key: string): Promise<GatewaySocket> {
  const watcher = await GatewaySocket.open(app)
  t.teardown(() => watcher.close())
  await watcher.request('sessions.open', { key })
  return watcher
}

/** A gateway-protocol client on a listening app whose every frame must match OpenClaw's schema (a mismatch fails the test); closed at teardown. */
export async function openChecked (t: { fail: (message: string) => unknown, teardown: (fn: () => unknown) => void }, app: FastifyInstance): Promise<GatewaySocket> {
  let ended = false
  const socket = await GatewaySocket.open(app, {}, problem => { if (!ended) t.fail(problem) })
  t.teardown(() => {
    ended = true
    socket.close()
  })
  return socket
}
