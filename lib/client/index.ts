// `fastify-session-gateway/client`: a typed client of the gateway protocol for browsers
// and Node. Plain ESM with no imports outside this folder, so a page can load it as is.
export { GatewayClient, type ConnectionState, type GatewayClientOptions, type WebSocketConstructor, type WebSocketLike } from './client.js'
export { Session, type SendOptions, type SessionUpdate } from './session.js'
export { ConnectionError, ServerError, type ConnectionErrorCode } from './errors.js'
export { randomId } from './ids.js'
export type * from './frames.js'
