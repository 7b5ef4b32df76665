import type { AgentRequest } from '../agent.js'
import type { AssistantMessage, TranscriptMessage } from '../../transcript.js'

// What a stateless upstream is sent each turn: the session's recent history, then the
// turn's input. The history is bounded (newest kept), and tool calls and their results
// are kept only in pairs, since the APIs refuse a call without its result and a result
// without its call (a bound can cut between them; a client can leave a call unanswered).

export interface HistoryBounds {
  /** Most earlier messages sent. */
  maxMessages: number
  /** Most characters of earlier messages sent (text, tool arguments, inline data). */
  maxChars: number
}

/** The history within `bounds` and the input, oldest first, every tool call paired. */
export async function conversation (request: AgentRequest, bounds: HistoryBounds): Promise<TranscriptMessage[]> {
  const earlier = bounds.maxMessages === 0 ? [] : await request.history(bounds.maxMessages)
  let start = earlier.length
  let chars = 0
  while (start > 0) {
    chars += messageChars(earlier[start - 1] as TranscriptMessage)
    if (chars > bounds.maxChars) break
    start--
  }
  return pairToolCalls([...earlier.slice(start), ...request.input])
}

/** Drops tool calls that have no result, results that have no call, and assistant messages left empty. */
export function pairToolCalls (messages: TranscriptMessage[]): TranscriptMessage[] {
  const called = new Set<string>()
  const answered = new Set<string>()
  for (const message of messages) {
    if (message.role === 'toolResult') answered.add(message.toolCallId)
    if (message.role === 'assistant') for (const part of message.content) if (part.type === 'toolCall') called.add(part.id)
  }
  const out: TranscriptMessage[] = []
  for (const message of messages) {
    if (message.role === 'toolResult') {
      if (called.has(message.toolCallId)) out.push(message)
    } else if (message.role === 'assistant') {
      const content = message.content.filter(part => part.type !== 'toolCall' || answered.has(part.id))
      const sendable = content.some(part => part.type === 'toolCall' || (part.type === 'text' && part.text !== ''))
      if (sendable) out.push(content.length === message.content.length ? message : { ...message, content } satisfies AssistantMessage)
    } else {
      out.push(message)
    }
  }
  return out
}

function messageChars (message: TranscriptMessage): number {
  let chars = 0
  for (const part of message.content) {
    switch (part.type) {
      case 'text': chars += part.text.length; break
      case 'toolCall': chars += JSON.stringify(part.arguments).length + part.name.length; break
      case 'image':
      case 'file': chars += (part.data ?? part.url ?? '').length; break
      // Reasoning is never sent back upstream.
      case 'thinking': break
    }
  }
  return chars
}
