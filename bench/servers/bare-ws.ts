// Baseline for streaming and idle connections: a bare `ws` server. A client that sends
// {"broadcast": n, "frames": [...]} makes it send those frames, in order, to every
// other client; nothing else happens.
import { WebSocketServer, type WebSocket } from 'ws'

// Asked before its memory is read (SIGUSR2): collect garbage. Installed before anything can send it.
process.on('SIGUSR2', () => (globalThis as { gc?: () => void }).gc?.())

const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
server.on('connection', (socket: WebSocket) => {
  socket.on('message', data => {
    const { frames } = JSON.parse(String(data)) as { frames: string[] }
    for (const frame of frames) {
      for (const client of server.clients) if (client !== socket) client.send(frame)
    }
  })
})
server.on('listening', () => {
  const address = server.address() as { port: number }
  process.stdout.write(`listening http://127.0.0.1:${address.port}\n`)
})
process.once('SIGTERM', () => { server.close(); process.exit(0) })
