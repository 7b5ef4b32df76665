import type { FastifyRequest } from 'fastify'

// Browsers put the token in the query string of a WebSocket URL; it must never reach a log.
const SECRET_QUERY = /([?&](?:token|password|access_token)=)[^&#]*/gi

export function redactUrl (url: string): string {
  return url.replace(SECRET_QUERY, '$1[redacted]')
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
