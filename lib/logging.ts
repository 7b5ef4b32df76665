import type { FastifyRequest } from 'fastify'

// Browsers put the token in the query string of a WebSocket URL; it must never reach a log.
const SECRET_NAMES = new Set(['token', 'password', 'access_token'])

/** The URL with the value of every secret query parameter redacted, however its name is encoded. */
export function redactUrl (url: string): string {
  const at = url.indexOf('?')
  if (at === -1) return url
  const parts = url.slice(at + 1).split('&').map(part => {
    const equals = part.indexOf('=')
    // Named as the query parser reads it: `%74oken` is `token` to it.
    return equals !== -1 && SECRET_NAMES.has(decodedName(part.slice(0, equals))) ? `${part.slice(0, equals)}=[redacted]` : part
  })
  return `${url.slice(0, at + 1)}${parts.join('&')}`
}

function decodedName (name: string): string {
  try {
    return decodeURIComponent(name.replaceAll('+', ' ')).toLowerCase()
  } catch {
    return name.toLowerCase()
  }
}

/** Fastify's default request serializer, with secrets in the query string redacted. */
export function serializeRequest (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactUrl(request.url),
    version: request.headers?.['accept-version'],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}

// Fastify types serializers as returning strings, though pino takes any value.
export const logSerializers = { req: serializeRequest } as unknown as Record<string, (value: unknown) => string>
