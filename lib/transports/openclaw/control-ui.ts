import { createReadStream } from 'node:fs'
import { readFile, realpath, stat } from 'node:fs/promises'
import { extname, join, posix, sep } from 'node:path'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { InvalidOptionError } from '../../errors.js'

// OpenClaw's Control UI, served from a directory the user points at (the `dist/control-ui`
// of the `openclaw` npm package): its files at `/`, its page for every path it routes
// itself, and, since it opens its WebSocket at the page's own origin, the gateway
// protocol at `/` too (route.ts registers that). Files only from inside the directory.

export interface ControlUiOptions {
  /** The directory holding the Control UI's `index.html` and `assets/`. */
  root: string
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8'
}

/** The Control UI's files, checked once when the gateway registers. */
export class ControlUi {
  private constructor (readonly root: string) {}

  /** Fails registration with a clear option error unless `root` holds an `index.html`. */
  static async open (options: ControlUiOptions): Promise<ControlUi> {
    let root: string
    try {
      root = await realpath(options.root)
      if (!(await stat(join(root, 'index.html'))).isFile()) throw new Error('not a file')
    } catch {
      throw new InvalidOptionError('controlUi.root', `a directory holding OpenClaw's Control UI (its index.html), such as the dist/control-ui of the openclaw npm package; ${options.root} has none`)
    }
    return new ControlUi(root)
  }

  /**
   * The page itself: what `GET /` answers over plain HTTP, and any route of the UI's.
   * Its `./` links become `/` ones, as OpenClaw serves it: the page at `/chat/main/x`
   * loads its scripts from `/assets/`, not `/chat/main/assets/`.
   */
  async index (_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const html = await readFile(join(this.root, 'index.html'), 'utf8')
    return await reply
      .header('content-type', TYPES['.html'] as string)
      .header('cache-control', 'no-cache')
      .send(html.replace(/(\s(?:src|href))="\.\//g, '$1="/'))
  }

  /**
   * Every other path under `/`: a file of the UI, else, for a browser navigating to one
   * of the UI's own routes (`/chat/…`), the page; anything else goes to the application's
   * not-found handler (Fastify's 404 unless it set its own).
   */
  routes (app: FastifyInstance): void {
    app.get('/*', async (request, reply) => {
      const file = await this.#find((request.params as { '*': string })['*'])
      if (file !== undefined) return await this.#send(reply, file)
      const path = request.url.split('?')[0] as string
      if (extname(path) === '' && String(request.headers.accept ?? '').includes('text/html')) return await this.index(request, reply)
      reply.callNotFound()
      return reply
    })
  }

  /** The regular file at `relative` inside the root, after every link is followed; undefined otherwise. */
  async #find (relative: string): Promise<string | undefined> {
    // (A NUL byte in the path makes realpath throw: not found, like any other path that is not a file here.)
    const normalized = posix.normalize(`/${relative}`)
    try {
      const file = await realpath(join(this.root, normalized))
      if (!file.startsWith(this.root + sep)) return undefined
      return (await stat(file)).isFile() ? file : undefined
    } catch {
      return undefined
    }
  }

  async #send (reply: FastifyReply, file: string): Promise<FastifyReply> {
    const { size } = await stat(file)
    // Assets carry a content hash in their name; the page and the rest may change with an upgrade.
    const immutable = file.startsWith(join(this.root, 'assets') + sep)
    return await reply
      .header('content-type', TYPES[extname(file)] ?? 'application/octet-stream')
      .header('content-length', size)
      .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
      .send(createReadStream(file))
  }
}
