import type { FastifyInstance, FastifyRequest } from 'fastify'
import type {} from '@fastify/websocket'
import type { WebSocket } from 'ws'
import type { SessionService } from '../../session-service.js'
import { requestHints } from '../../request-hints.js'
import type { Telemetry } from '../../telemetry.js'
import type { LiveSockets } from '../live-sockets.js'
import { OpenClawConnection, type OpenClawConnectionOptions, type OpenClawSocket } from './connection.js'
import type { ControlUi } from './control-ui.js'

export interface OpenClawRouteOptions extends Omit<OpenClawConnectionOptions, 'defaultAgentId' | 'mainKey'> {
  sessions: SessionService
  sockets: LiveSockets
  telemetry: Telemetry
  path: string
  defaultAgentId: string
  mainKey: string
  /** OpenClaw's Control UI: its page at `/`, whose WebSocket opens there too. */
  controlUi?: ControlUi
}

/**
 * The thin adapter between `@fastify/websocket` and the protocol core: it attaches the
 * socket's listeners before anything else can happen, and runs one timer for all of
 * its connections (ticks, and pings that find dead peers).
 */
export async function openClawRoute (scope: FastifyInstance, options: OpenClawRouteOptions): Promise<void> {
  const { sessions, sockets, telemetry, path, controlUi, ...connectionOptions } = options
  const live = new Map<WebSocket, { connection: OpenClawConnection, alive: boolean }>()

  const heartbeat = setInterval(() => {
    for (const [socket, peer] of live) {
      // No pong since the last ping: the peer is gone, whatever TCP thinks.
      if (!peer.alive) {
        socket.terminate()
        continue
      }
      peer.alive = false
      socket.ping()
      peer.connection.tick()
    }
  }, connectionOptions.tickIntervalMs)
  heartbeat.unref()
  scope.addHook('onClose', async () => clearInterval(heartbeat))

  // Credentials and a default session may come at the upgrade (refused there when wrong) or later, in `connect`.
  const config = { sessionGateway: { auth: 'deferred', session: 'optional', action: 'read' } } as const
  const onSocket = (socket: WebSocket, request: FastifyRequest): void => {
    // Long-lived closures below must not hold `request`: an idle connection would keep it all.
    const log = request.log
    const connection = new OpenClawConnection(batchedSocket(socket), {
      sessions,
      principal: request.gatewayPrincipal,
      authenticate: async credentials => await sessions.authenticate(request, credentials),
      defaultHints: requestHints(request),
      options: connectionOptions,
      telemetry,
      logger: log
    })
    const peer = { connection, alive: true }
    // Listeners first, synchronously: a listener added later would miss the first frames.
    socket.on('message', (data: Buffer, isBinary: boolean) => connection.receive(data, isBinary))
    socket.on('pong', () => { peer.alive = true })
    socket.on('error', err => log.warn({ err, connId: connection.connId }, 'session gateway: socket error'))
    socket.on('close', () => {
      live.delete(socket)
      sockets.delete(connection)
      telemetry.connectionClosed('gateway')
      connection.dispose()
    })
    live.set(socket, peer)
    sockets.add(connection)
    telemetry.connectionOpened('gateway')
    connection.open()
  }
  scope.get(path, { websocket: true, config }, onSocket)
  if (controlUi !== undefined) {
    scope.route({ method: 'GET', url: '/', config, handler: async (request, reply) => await controlUi.index(request, reply), wsHandler: onSocket })
  }
}

/**
 * Frames produced in one turn of the event loop (a whole short answer often is) leave
 * together: the first write goes out at once and the rest coalesce into one writev,
 * instead of a system call per frame.
 */
function batchedSocket (socket: WebSocket): OpenClawSocket {
  let queue: string[] = []
  let queuedBytes = 0
  const flush = (): void => {
    const frames = queue
    queue = []
    queuedBytes = 0
    if (socket.readyState !== socket.OPEN) return
    for (const frame of frames) socket.send(frame)
  }
  return {
    send (data) {
      if (queue.length === 0) setImmediate(flush)
      queue.push(data)
      queuedBytes += data.length
    },
    close (code, reason) {
      flush()
      socket.close(code, reason)
    },
    get bufferedAmount () { return socket.bufferedAmount + queuedBytes }
  }
}
