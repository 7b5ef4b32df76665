import { randomHex } from '../../ids.js'
import { messageText, type TranscriptMessage } from '../../transcript.js'
import { invalidParam } from './errors.js'

// `POST /responses/compact` turns a conversation into its user messages plus one opaque
// `compaction` item; given back as input, that item stands for everything it replaced.
// Ours holds a plain digest of the replaced messages. It is opaque to clients, not secret:
// base64url JSON behind a version prefix, so a foreign or damaged one is refused clearly.

const PREFIX = 'fsgc1.'
/** The digest keeps the newest text up to this many characters. */
const MAX_DIGEST = 32_000

export function encodeCompaction (messages: readonly TranscriptMessage[]): string {
  const lines = messages.map(message => `${message.role === 'toolResult' ? `tool ${message.toolName}` : message.role}: ${messageText(message)}`)
  let digest = lines.join('\n')
  if (digest.length > MAX_DIGEST) digest = '…' + digest.slice(-MAX_DIGEST)
  return PREFIX + Buffer.from(JSON.stringify({ digest })).toString('base64url')
}

/** The text a compaction item stands for, for the agent's instructions. */
export function decodeCompaction (content: string, param: string): string {
  if (content.startsWith(PREFIX)) {
    try {
      const { digest } = JSON.parse(Buffer.from(content.slice(PREFIX.length), 'base64url').toString('utf8')) as { digest?: unknown }
      if (typeof digest === 'string') return `Earlier in this conversation (compacted):\n${digest}`
    } catch {}
  }
  throw invalidParam(param, 'This compaction item was not produced by this server, or it was damaged.')
}

/**
 * The answer of `POST /responses/compact` for a conversation: its user messages, kept as
 * they were, and one compaction item standing for everything.
 */
export function compactionResource (conversation: readonly TranscriptMessage[]): Record<string, unknown> {
  // A rough count, in words: there is no tokenizer here, and the digest is not model output.
  const inputTokens = conversation.reduce((sum, message) => sum + messageText(message).split(/\s+/).filter(Boolean).length, 0)
  return {
    id: `resp_${randomHex()}`,
    object: 'response.compaction',
    created_at: Math.floor(Date.now() / 1000),
    output: [
      ...conversation.flatMap(message => message.role !== 'user'
        ? []
        : [{
            type: 'message',
            id: `msg_${randomHex()}`,
            status: 'completed',
            role: 'user',
            content: message.content.flatMap(part => part.type === 'text' ? [{ type: 'input_text', text: part.text }] : [])
          }]),
      { type: 'compaction', id: `cmp_${randomHex()}`, encrypted_content: encodeCompaction(conversation) }
    ],
    usage: {
      input_tokens: inputTokens,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: 0,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: inputTokens
    }
  }
}
