// A TCP proxy in front of a test's redis-server, for faults that need the wire itself: it can
// drop every connection, and hold back the answers a connection gets once it has sent a
// given command (so the client closes with that command still waiting for its reply).
import { once } from 'node:events'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'

export interface RedisProxy {
  url: string
  /** Cuts every connection through the proxy (clients see the server go away, and reconnect). */
  dropAll: () => void
  /**
   * From now on, a connection that sends `command` gets no more answers; resolves once one
   * did. The held connection ends when the server ends it (a QUIT), its answers unsent.
   */
  holdAnswersAfter: (command: string) => Promise<void>
  /** While true, a new connection is cut at once (the server seems away). */
  refusing: boolean
  close: () => Promise<void>
}

export async function startRedisProxy (target: number): Promise<RedisProxy> {
  const pairs = new Set<[Socket, Socket]>()
  let hold: { command: string, held: () => void } | undefined
  const server = createServer(client => {
    if (proxy.refusing) {
      client.destroy()
      return
    }
    const upstream = connect(target, '127.0.0.1')
    const pair: [Socket, Socket] = [client, upstream]
    pairs.add(pair)
    let holding = false
    client.on('data', chunk => {
      // RESP sends a command's name as a bulk string: `$9\r\nSUBSCRIBE\r\n`.
      if (hold !== undefined && chunk.toString('latin1').toUpperCase().includes(`\r\n${hold.command}\r\n`)) {
        holding = true
        hold.held()
        hold = undefined
      }
      upstream.write(chunk)
    })
    upstream.on('data', chunk => { if (!holding) client.write(chunk) })
    const end = (): void => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('close', end)
    upstream.on('close', end)
    client.on('error', () => {})
    upstream.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  const proxy: RedisProxy = {
    refusing: false,
    url: `redis://127.0.0.1:${port}`,
    dropAll: () => { for (const [client, upstream] of pairs) { client.destroy(); upstream.destroy() } },
    holdAnswersAfter: async command => await new Promise<void>(resolve => { hold = { command: command.toUpperCase(), held: resolve } }),
    close: async () => {
      for (const [client, upstream] of pairs) { client.destroy(); upstream.destroy() }
      server.close()
      await once(server, 'close')
    }
  }
  return proxy
}
