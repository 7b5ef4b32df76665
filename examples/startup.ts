// Starting the example server: settings read strictly from the environment, and every
// failure before the server listens told as one line (what is wrong, how to fix it) on
// stderr, with exit code 1. A stack trace helps whoever wrote the code, not whoever runs it.
import { constants } from 'node:fs'
import { access, mkdir } from 'node:fs/promises'

/** A start-up problem whose message already says what is wrong and how to fix it. */
export class StartError extends Error {}

/** An integer setting from `min` to `max`; `fallback` when unset. */
export function envInteger (name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name]
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!/^\s*\d+\s*$/.test(raw) || value < min || value > max) {
    throw new StartError(`${name}=${JSON.stringify(raw)} is not valid: set it to an integer from ${min} to ${max}, or unset it for ${fallback}`)
  }
  return value
}

/** One of `choices`; `fallback` when unset. */
export function envChoice<T extends string> (name: string, choices: readonly T[], fallback: T): T {
  const raw = process.env[name]
  if (raw === undefined) return fallback
  if (!(choices as readonly string[]).includes(raw)) {
    throw new StartError(`${name}=${JSON.stringify(raw)} is not valid: set it to one of ${choices.join(', ')}, or unset it for ${fallback}`)
  }
  return raw as T
}

/** A text setting that, when set, must not be empty (an empty token or path is a mistake, not a choice). */
export function envText (name: string, unsetMeans: string): string | undefined {
  const raw = process.env[name]
  if (raw !== undefined && raw.trim() === '') throw new StartError(`${name} is set but empty: give it a value, or unset it for ${unsetMeans}`)
  return raw
}

/** Creates the data directory if needed and checks that this process may read and write it. */
export async function checkDataDir (dir: string, name: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await access(dir, constants.R_OK | constants.W_OK | constants.X_OK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new StartError(`${name}=${dir} cannot be used for sessions (${code}: ${reason(code)}): point ${name} at a directory this user may read and write`)
  }
}

/** Checks that the database at DATABASE_URL answers and has the store's tables (the store never makes them). */
export async function checkDatabase (open: () => Promise<void>): Promise<void> {
  try {
    await open()
  } catch (err) {
    const error = err as Error & { code?: string }
    if (error.code === 'FSG_STORE_SCHEMA') throw new StartError(`DATABASE_URL: ${error.message}`)
    // Not reached (the store says so with FSG_STORE_UNAVAILABLE, naming the driver's cause).
    if (error.code === 'FSG_STORE_UNAVAILABLE') throw new StartError(`DATABASE_URL cannot be used (${error.message}): check that PostgreSQL runs there and that the URL's user, password and database are right`)
    throw new StartError(`DATABASE_URL cannot be used (${error.code ?? 'error'}: ${error.message}): check that PostgreSQL runs there and that the URL's user, password and database are right`)
  }
}

function reason (code: string): string {
  switch (code) {
    case 'EEXIST':
    case 'ENOTDIR': return 'a file is in the way'
    case 'EACCES':
    case 'EPERM': return 'permission denied'
    case 'EROFS': return 'read-only file system'
    default: return 'not usable'
  }
}

/** The one line that says why the server did not start. */
export function describeStartFailure (err: unknown): string {
  const error = err as NodeJS.ErrnoException & { address?: string, port?: number, hostname?: string }
  if (err instanceof StartError) return err.message
  switch (error.code) {
    case 'EADDRINUSE':
      return `port ${error.port} on ${error.address} is already in use: stop the process that holds it, or set PORT to another port (PORT=0 picks a free one)`
    case 'EACCES':
      if (error.syscall === 'listen') return `not allowed to listen on port ${error.port}: set PORT to a port above 1023`
      break
    case 'EADDRNOTAVAIL':
      return `HOST=${error.address} is not an address of this machine: set HOST to one of its addresses (127.0.0.1, or 0.0.0.0 for all)`
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `HOST=${error.hostname} cannot be resolved: set HOST to an address of this machine (127.0.0.1, or 0.0.0.0 for all)`
  }
  return error instanceof Error ? error.message : String(err)
}

/**
 * Until the returned function is called, any failure (a throw, a rejected await) ends the
 * process with one line on stderr and exit code 1. Call it once the server listens.
 */
export function guardStart (): () => void {
  const fail = (err: unknown): void => {
    process.stderr.write(`cannot start: ${describeStartFailure(err).replaceAll('\n', ' ')}\n`)
    process.exit(1)
  }
  process.on('uncaughtException', fail)
  return () => { process.off('uncaughtException', fail) }
}
