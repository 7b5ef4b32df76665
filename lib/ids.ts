import { randomUUID } from 'node:crypto'

/** 32 random hex characters: the tail of `resp_…`, `msg_…`, `fc_…` and `call_…` ids. */
export function randomHex (): string {
  return randomUUID().replaceAll('-', '')
}
