// Opens CONNECTIONS sockets and keeps them open: gateway-protocol clients that finish
// the handshake (BASELINE=0), or bare WebSocket connections (BASELINE=1). Prints
// `ready <n>` once all are open, then waits to be killed.
import WebSocket from 'ws'
import { ProtocolClient } from './protocol-client.js'

const url = process.env.URL as string
const count = Number(process.env.CONNECTIONS ?? 5000)
const baseline = process.env.BASELINE === '1'
const batch = 200

const open: Array<WebSocket | ProtocolClient> = []
for (let i = 0; i < count; i += batch) {
  const size = Math.min(batch, count - i)
  open.push(...await Promise.all(Array.from({ length: size }, async () => {
    if (!baseline) return await ProtocolClient.connect(url, 'bench')
    const socket = new WebSocket(url.replace(/^http/, 'ws'))
    await new Promise((resolve, reject) => { socket.once('open', resolve); socket.once('error', reject) })
    return socket
  })))
}
process.stdout.write(`ready ${open.length}\n`)
process.once('SIGTERM', () => process.exit(0))
setInterval(() => {}, 1 << 30)
