/** WebSocket close codes, one list for every transport, with the meaning OpenClaw gives them. */
export const CloseCode = {
  normal: 1000,
  protocolMismatch: 1002,
  /** Bad handshake, bad credentials, a slow consumer. */
  policy: 1008,
  tooBig: 1009,
  serverError: 1011,
  /** The server is restarting (shutdown): come back. */
  restart: 1012
} as const
