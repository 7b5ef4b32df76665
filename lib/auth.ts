import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { UnauthenticatedError } from './errors.js'

/** Who is calling. `id` is what `authorize` and ownership rules compare. */
export interface Principal {
  id: string
  [claim: string]: unknown
}

/** Credentials found on a request or in a first frame. Never logged. */
export interface Credentials {
  token?: string
  password?: string
}

export type VerifyFunction = (
  request: FastifyRequest,
  credentials: Credentials
) => Principal | null | undefined | Promise<Principal | null | undefined>

/**
 * - `{ token }`: one shared bearer token; every holder is the principal `{ id: 'token' }`.
 * - `{ verify }`: your own check; return a principal, or null to refuse.
 * - `false`: no authentication; everyone is `{ id: 'anonymous' }`. Say so on purpose.
 */
export type AuthOption = false | { token: string } | { verify: VerifyFunction }

export const TOKEN_PRINCIPAL: Principal = Object.freeze({ id: 'token' })
export const ANONYMOUS_PRINCIPAL: Principal = Object.freeze({ id: 'anonymous' })

export type Authenticator = (request: FastifyRequest, credentials: Credentials) => Promise<Principal>

export function createAuthenticator (auth: AuthOption): Authenticator {
  if (auth === false) return async () => ANONYMOUS_PRINCIPAL
  if ('token' in auth) {
    const expected = digest(auth.token)
    return async (_request, credentials) => {
      // Compare fixed-length digests, so neither the content nor the length leaks through timing.
      if (credentials.token !== undefined && timingSafeEqual(digest(credentials.token), expected)) return TOKEN_PRINCIPAL
      throw new UnauthenticatedError()
    }
  }
  const verify = auth.verify
  return async (request, credentials) => {
    const principal = await verify(request, credentials)
    if (principal === null || principal === undefined) throw new UnauthenticatedError()
    if (typeof principal !== 'object' || typeof principal.id !== 'string') {
      throw new TypeError('auth.verify must return a principal with a string id, or null')
    }
    return principal
  }
}

/**
 * The credentials a request carries: `Authorization: Bearer <token>`, or, on GET
 * requests only (WebSocket upgrades and EventSource, where browsers cannot set
 * headers), the `token` query parameter.
 */
export function requestCredentials (request: FastifyRequest): Credentials {
  const header = request.headers.authorization
  if (typeof header === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (match !== null) return { token: match[1] as string }
  }
  if (request.method === 'GET') {
    const token = (request.query as Record<string, unknown> | undefined)?.token
    if (typeof token === 'string' && token !== '') return { token }
  }
  return {}
}

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}
