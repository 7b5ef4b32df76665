import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import sessionGateway, {
  MemoryStore,
  type SessionEvent, type SessionGatewayOptions, type UserMessage, type ToolResultMessage, type Agent, type AgentOutput
} from '../lib/index.js'

export const TOKEN = 'test-token-0123456789'

/** A gateway app with token auth and the given options; closed by the test's teardown. */
export async function buildApp (
  t: { teardown: (fn: () => unknown) => void },
  options: Partial<SessionGatewayOptions> = {},
  fastifyOptions: FastifyServerOptions = {}
): Promise<FastifyInstance> {
  const app = Fastify(fastifyOptions)
  await app.register(sessionGateway, { auth: { token: TOKEN }, store: new MemoryStore(), ...options })
  await app.ready()
  t.teardown(() => app.close())
  return app
}

export function user (text: string): UserMessage {
  return { role: 'user', content: [{ type: 'text', text }], timestamp: Date.now() }
}

export function toolResult (toolCallId: string, toolName: string, text: string): ToolResultMessage {
  return { role: 'toolResult', toolCallId, toolName, content: [{ type: 'text', text }], isError: false, timestamp: Date.now() }
}

/** Records events and lets a test wait for one that matches. */
export class EventLog {
  readonly events: SessionEvent[] = []
  #waiters: Array<{ match: (e: SessionEvent) => boolean, resolve: (e: SessionEvent) => void }> = []

  readonly listener = (event: SessionEvent): void => {
    this.events.push(event)
    this.#waiters = this.#waiters.filter(waiter => {
      if (!waiter.match(event)) return true
      waiter.resolve(event)
      return false
    })
  }

  async waitFor (match: (e: SessionEvent) => boolean): Promise<SessionEvent> {
    const seen = this.events.find(match)
    if (seen !== undefined) return seen
    return await new Promise(resolve => this.#waiters.push({ match, resolve }))
  }

  get seqs (): number[] {
    return this.events.map(event => event.seq)
  }

  get types (): string[] {
    return this.events.map(event => event.type)
  }
}

/**
 * An agent a test drives by hand: each run waits on `release()` before it answers,
 * and then yields the given outputs.
 */
export function gatedAgent (outputs: (text: string) => AgentOutput[] = text => [{ type: 'text', delta: text }]): Agent & {
  started: string[]
  release: () => void
  waitStarted: (n: number, timeoutMs?: number) => Promise<void>
} {
  const gates: Array<() => void> = []
  const started: string[] = []
  const onStart = new Set<() => void>()
  return {
    started,
    release () { gates.shift()?.() },
    // Bounded: a run that never starts fails the test instead of hanging it.
    async waitStarted (n: number, timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs
      while (started.length < n) {
        const left = until - Date.now()
        if (left <= 0) throw new Error(`${n} runs did not start within ${timeoutMs} ms; started: ${JSON.stringify(started)}`)
        await new Promise<void>(resolve => {
          const timer = setTimeout(done, left)
          function done (): void {
            clearTimeout(timer)
            onStart.delete(done)
            resolve()
          }
          onStart.add(done)
        })
      }
    },
    async * respond (request) {
      const text = request.input.map(m => m.content.map(p => p.type === 'text' ? p.text : '').join('')).join(' ')
      started.push(text)
      for (const wake of [...onStart]) wake()
      await new Promise<void>(resolve => gates.push(resolve))
      yield * outputs(text)
    }
  }
}

/**
 * The environment for a child Node process started by a test. Coverage is measured in
 * the test's own process: a child running the same sources through another loader
 * would report them with other line numbers.
 */
export function childEnv (env: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...env }
}

/** `auth.verify` that accepts `Bearer <name>` for each of `names`, as the principal `{ id: name }`. */
export function namedPrincipals (...names: string[]): (request: { headers: Record<string, unknown> }) => Promise<{ id: string } | null> {
  return async request => {
    const token = String(request.headers.authorization ?? '').replace(/^Bearer /, '')
    return names.includes(token) ? { id: token } : null
  }
}

/** Waits until `done()` says so, checking every few ms; bounded, and fails naming `what` when the bound is hit. */
export async function until (done: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await done()) {
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms in vain for: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
