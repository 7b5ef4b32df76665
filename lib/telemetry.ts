import type { Replay } from './hub/hub.js'
import type { RunState } from './transcript.js'

/** The long-lived connections the gateway counts: each transport's WebSockets, and SSE streams. */
export type ConnectionKind = 'gateway' | 'responses_websocket' | 'responses_sse'

/**
 * What the gateway reports as it works, for metrics. Transports and `SessionGateway` call
 * it; with the `metrics` option it feeds Prometheus series (lib/operations/metrics.ts, which
 * also counts store errors), and without it every call is a no-op.
 */
export interface Telemetry {
  connectionOpened (kind: ConnectionKind): void
  connectionClosed (kind: ConnectionKind): void
  turnStarted (): void
  turnFinished (state: RunState, seconds: number): void
  /** A client resumed from a cursor (`open` with `since`): how it was answered. */
  resumed (outcome: Replay['kind']): void
  /** A gateway-protocol connection closed (1008) for falling too far behind. */
  slowConsumerClosed (): void
}

export const NO_TELEMETRY: Telemetry = Object.freeze({
  connectionOpened () {},
  connectionClosed () {},
  turnStarted () {},
  turnFinished () {},
  resumed () {},
  slowConsumerClosed () {}
})
