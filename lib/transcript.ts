import { randomUUID } from 'node:crypto'

// Transcript rows use OpenClaw's transcript line shape, so a file store can share
// a directory with OpenClaw itself: `{type:"message", id, parentId, timestamp, message}`.

export interface TextPart { type: 'text', text: string }
export interface ImagePart { type: 'image', data?: string, url?: string, mimeType?: string }
export interface FilePart { type: 'file', data?: string, url?: string, filename?: string, mimeType?: string }
export interface ToolCallPart { type: 'toolCall', id: string, name: string, arguments: Record<string, unknown> }
/** The model's reasoning before its answer, in OpenClaw's shape (never sent back upstream). */
export interface ThinkingPart { type: 'thinking', thinking: string }
export type ContentPart = TextPart | ImagePart | FilePart | ToolCallPart | ThinkingPart

export interface UserMessage {
  role: 'user'
  content: Array<TextPart | ImagePart | FilePart>
  timestamp: number
}

export type StopReason = 'stop' | 'length' | 'toolUse' | 'aborted' | 'error'

export interface AssistantMessage {
  role: 'assistant'
  content: Array<ThinkingPart | TextPart | ToolCallPart>
  stopReason: StopReason
  errorMessage?: string
  model?: string
  /** OpenClaw's usage names; `cacheRead` and `reasoning` only when the agent counted them. */
  usage?: { input: number, output: number, totalTokens: number, cacheRead?: number, reasoning?: number }
  timestamp: number
}

export interface ToolResultMessage {
  role: 'toolResult'
  toolCallId: string
  toolName: string
  content: TextPart[]
  isError: boolean
  timestamp: number
}

export type TranscriptMessage = UserMessage | AssistantMessage | ToolResultMessage

/**
 * One transcript line. `seq` and `runId` are the gateway's own fields: the event
 * cursor position at which the row was committed, and the run that committed it.
 * `runState` marks the row that ended a run. Unknown fields are kept as they are.
 */
export interface TranscriptEntry {
  type: string
  id: string
  parentId: string | null
  timestamp: string
  message?: TranscriptMessage
  seq?: number
  runId?: string
  runState?: RunState
  /** Why a run that ended in `error` or `aborted` did, when the gateway knew. */
  runError?: { code: string, message: string }
  [field: string]: unknown
}

export type RunState = 'final' | 'aborted' | 'error'

export interface MessageEntry extends TranscriptEntry {
  type: 'message'
  message: TranscriptMessage
}

/** OpenClaw's entry ids are 8 hex characters (from randomUUID, whose entropy is batched: cheap per call). */
export function entryId (): string {
  return randomUUID().slice(0, 8)
}

export function isMessageEntry (entry: TranscriptEntry): entry is MessageEntry {
  return entry.type === 'message' && typeof entry.message === 'object' && entry.message !== null
}

/** The plain text of a message, for previews, search and echo. */
export function messageText (message: TranscriptMessage): string {
  let text = ''
  for (const part of message.content) {
    if (part.type === 'text') text += part.text
  }
  return text
}
