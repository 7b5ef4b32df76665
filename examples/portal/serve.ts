// Serves the demo portal at `/`: three files from examples/portal/, and the browser build
// of `fastify-session-gateway/client` (dist/client, made by `npm run build`) as it ships.
import { readFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'

// Found through the package itself, so this works from the sources and from build/examples alike.
const root = new URL('./', import.meta.resolve('fastify-session-gateway/package.json'))
const pageDir = new URL('examples/portal/', root)
const clientDir = new URL('./', import.meta.resolve('fastify-session-gateway/client'))
const PAGES: Record<string, [string, string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/portal.css': ['portal.css', 'text/css; charset=utf-8'],
  '/portal.js': ['portal.js', 'text/javascript; charset=utf-8']
}

export async function portal (app: FastifyInstance): Promise<void> {
  for (const [path, [file, type]] of Object.entries(PAGES)) {
    app.get(path, async (_request, reply) => await reply.type(type).header('cache-control', 'no-cache').send(await readFile(new URL(file, pageDir))))
  }
  // Only plain module names: nothing outside dist/client can be asked for.
  app.get<{ Params: { file: string } }>('/client/:file', async (request, reply) => {
    const { file } = request.params
    if (!/^[a-z-]+\.js$/.test(file)) return await reply.code(404).send({ error: 'not found' })
    try {
      const body = await readFile(new URL(file, clientDir))
      return await reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(body)
    } catch {
      return await reply.code(404).type('text/plain; charset=utf-8').send(`${file} is not built: run npm run build`)
    }
  })
}
