import { Type, type TObject, type TProperties } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { InvalidOptionError } from '../../errors.js'

// The options every upstream agent shares, their defaults, and one checker that names
// the bad option the way the plugin's own options do (`FSG_INVALID_OPTION`).

export interface UpstreamOptions {
  /** Extra headers on every upstream request. */
  headers?: Record<string, string>
  /** Longest silence from the upstream, in ms: until its answer begins, and between two reads of its stream. Default 120000. */
  timeoutMs?: number
  /** Retries of a failed request (connection failed, 408, 409, 429, 5xx, silence), only before the turn's first output. Default 2. */
  maxRetries?: number
  /** Most of the upstream's stream held while an event is unfinished, in characters: a line that never ends cannot fill memory. Default 8388608 (8 Mi). */
  maxEventChars?: number
  /** The `fetch` to use (a proxy's, a test's). Default: the global one. */
  fetch?: typeof fetch
}

export const UPSTREAM_DEFAULTS = {
  timeoutMs: 120_000,
  maxRetries: 2,
  maxEventChars: 8 * 1024 * 1024
} as const

export const upstreamProperties = {
  headers: Type.Optional(Type.Record(Type.String(), Type.String(), { expected: 'an object of header names to string values' })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647, expected: 'a positive integer (milliseconds)' })),
  maxRetries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10, expected: 'an integer from 0 to 10' })),
  maxEventChars: Type.Optional(Type.Integer({ minimum: 1024, maximum: 1_073_741_824, expected: 'an integer from 1024 to 1073741824 (characters)' })),
  fetch: Type.Optional(Type.Function([], Type.Unknown(), { expected: 'a fetch function' }))
}

/** An http(s) URL. */
export const HttpUrl = (expected: string): ReturnType<typeof Type.String> => Type.String({ pattern: '^https?://[^\\s]+$', expected })

/** A checker for `schema` that throws `FSG_INVALID_OPTION` naming `<agent>.<option>`. */
export function optionsChecker<T extends TProperties> (agent: string, schema: TObject<T>): (options: unknown) => void {
  const check = TypeCompiler.Compile(schema)
  return options => {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError(agent, 'an options object')
    const first = check.Errors(options).First()
    if (first === undefined) return
    const name = first.path.split('/')[1] as string
    const property = (schema.properties as Record<string, { expected?: string }>)[name]
    throw new InvalidOptionError(`${agent}.${first.path.slice(1).replaceAll('/', '.')}`, property?.expected ?? 'no such option')
  }
}
