import { canonicalizeSessionKey, agentOfKey, keyForAgent } from '../session-key.js'
import type { SessionRow } from '../stores/store.js'
import { entryId, type AssistantMessage, type ContentPart, type StopReason, type TranscriptEntry, type TranscriptMessage } from '../transcript.js'
import type { UpstreamListQuery, UpstreamSessions } from './agent.js'
import { withOpenClawGateway, type OpenClawGatewayTarget } from './upstream/openclaw-gateway.js'

// The sessions an OpenClaw gateway keeps (in SQLite since 2026.7, where our file store
// cannot see them), read over its gateway protocol: `sessions.list` for a page of them,
// `chat.history` page by page for one's transcript. Keys and agents in our terms.

export interface OpenClawSessionsOptions {
  target: OpenClawGatewayTarget
  /** Our agent id → OpenClaw's, where they differ. */
  agents: Record<string, string>
  /** Most messages of one session read (the newest). */
  maxImportMessages: number
}

/** OpenClaw's largest `chat.history` page, and its largest message before it cuts one short. */
const HISTORY_PAGE = 1000
const MAX_MESSAGE_CHARS = 500_000
const STOP_REASONS = new Set<StopReason>(['stop', 'length', 'toolUse', 'aborted', 'error'])

export function openClawSessions (options: OpenClawSessionsOptions): UpstreamSessions {
  const { target, agents, maxImportMessages } = options
  const theirs = (ours: string): string => agents[ours] ?? ours
  // The agent of ours that reaches OpenClaw's `agent`: the one mapped to it, else itself unless we map it elsewhere;
  // none when two of ours are mapped to it (which one a session belongs to cannot be told).
  const ours = (agent: string): string | undefined => {
    const mapped = Object.keys(agents).filter(id => agents[id] === agent)
    if (mapped.length > 0) return mapped.length === 1 ? mapped[0] : undefined
    return Object.hasOwn(agents, agent) ? undefined : agent
  }

  return {
    async list (query: UpstreamListQuery) {
      const page = await withOpenClawGateway(target, async request => await request('sessions.list', {
        limit: query.limit,
        offset: query.offset,
        includeLastMessage: true,
        ...(query.agentId === undefined ? {} : { agentId: theirs(query.agentId) }),
        ...(query.label === undefined ? {} : { label: query.label }),
        ...(query.search === undefined ? {} : { search: query.search })
      }))
      const rows = array(page.sessions).map(raw => {
        const agentId = query.agentId ?? (typeof raw.agentId === 'string' ? ours(raw.agentId) : undefined)
        const key = routable(raw.key, agentId)
        return key === undefined ? undefined : rowOf(raw, key, agentId as string)
      })
      return { rows, more: page.hasMore === true }
    },

    async read (sessionKey: string) {
      const agentId = agentOfKey(sessionKey)
      const key = agentId === undefined ? sessionKey : keyForAgent(sessionKey, theirs(agentId))
      return await withOpenClawGateway(target, async request => {
        const history = async (offset: number, read: number): Promise<Record<string, any>> =>
          await request('chat.history', { sessionKey: key, limit: Math.min(HISTORY_PAGE, maxImportMessages - read), offset, maxChars: MAX_MESSAGE_CHARS })
        let page = await history(0, 0)
        // OpenClaw answers any key; one it has no session for has no session id.
        if (page.sessionId === undefined) return undefined
        const row = rowOf({ ...page.sessionInfo, sessionId: page.sessionId }, sessionKey, agentId ?? String(page.sessionInfo?.agentId))
        // Pages count from the newest; each holds its messages oldest first.
        const pages: Array<Array<Record<string, any>>> = []
        let read = 0
        for (;;) {
          const messages = array(page.messages)
          pages.unshift(messages)
          read += messages.length
          if (page.hasMore !== true || messages.length === 0 || read >= maxImportMessages) break
          page = await history(typeof page.nextOffset === 'number' ? page.nextOffset : read, read)
        }
        return { row, entries: transcript(pages.flat()) }
      })
    }
  }
}

/** Our key for OpenClaw's session under our `agentId`: undefined when we cannot route to it (no agent of ours reaches it, our resolver refuses the key). */
function routable (raw: unknown, agentId: string | undefined): string | undefined {
  if (agentId === undefined || typeof raw !== 'string') return undefined
  const key = keyForAgent(raw, agentId)
  try {
    return canonicalizeSessionKey(key, { agentId, explicitAgent: false, mainKey: 'main' }).sessionKey === key ? key : undefined
  } catch {
    return undefined
  }
}

/** OpenClaw's row in ours. */
function rowOf (raw: Record<string, any>, key: string, agentId: string): SessionRow {
  const updatedAt = typeof raw.updatedAt === 'number' ? raw.updatedAt : 0
  const label = typeof raw.label === 'string' && raw.label !== '' ? raw.label : undefined
  return {
    key,
    sessionId: String(raw.sessionId ?? ''),
    agentId,
    ...(label === undefined ? {} : { label }),
    createdAt: typeof raw.createdAt === 'number' ? raw.createdAt : updatedAt,
    updatedAt,
    ...(typeof raw.lastMessagePreview === 'string' && raw.lastMessagePreview !== '' ? { preview: raw.lastMessagePreview } : {})
  }
}

/** History messages as transcript entries, chained by `parentId` as OpenClaw chains its own. */
function transcript (messages: Array<Record<string, any>>): TranscriptEntry[] {
  const entries: TranscriptEntry[] = []
  let parentId: string | null = null
  for (const raw of messages) {
    const message = transcriptMessage(raw)
    if (message === undefined) continue
    const meta = (raw.__openclaw ?? {}) as Record<string, unknown>
    const id = typeof meta.id === 'string' && meta.id !== '' ? meta.id : entryId()
    entries.push({ type: 'message', id, parentId, timestamp: new Date(message.timestamp).toISOString(), message })
    parentId = id
  }
  return entries
}

function transcriptMessage (raw: Record<string, any>): TranscriptMessage | undefined {
  const timestamp = typeof raw.timestamp === 'number' ? raw.timestamp : Date.now()
  switch (raw.role) {
    case 'user':
      return { role: 'user', content: parts(raw.content).filter(part => part.type === 'text' || part.type === 'image' || part.type === 'file') as Array<Exclude<ContentPart, { type: 'toolCall' | 'thinking' }>>, timestamp }
    case 'assistant': {
      const message: AssistantMessage = {
        role: 'assistant',
        content: parts(raw.content).filter(part => part.type === 'text' || part.type === 'thinking' || part.type === 'toolCall') as AssistantMessage['content'],
        stopReason: STOP_REASONS.has(raw.stopReason) ? raw.stopReason : 'stop',
        timestamp
      }
      if (typeof raw.model === 'string') message.model = raw.model
      if (typeof raw.errorMessage === 'string') message.errorMessage = raw.errorMessage
      const usage = raw.usage as Record<string, unknown> | undefined
      if (typeof usage?.input === 'number' && typeof usage.output === 'number') {
        message.usage = { input: usage.input, output: usage.output, totalTokens: typeof usage.totalTokens === 'number' ? usage.totalTokens : usage.input + usage.output }
      }
      return message
    }
    case 'toolResult':
      return {
        role: 'toolResult',
        toolCallId: String(raw.toolCallId ?? ''),
        toolName: String(raw.toolName ?? ''),
        content: parts(raw.content).filter(part => part.type === 'text') as Array<{ type: 'text', text: string }>,
        isError: raw.isError === true,
        timestamp
      }
    default:
      return undefined
  }
}

/** A list from an answer; anything else is none. */
function array (value: unknown): Array<Record<string, any>> {
  return Array.isArray(value) ? value : []
}

/** A message's content as parts: OpenClaw may give a user's as one string. */
function parts (content: unknown): ContentPart[] {
  if (typeof content === 'string') return [{ type: 'text', text: content }]
  return Array.isArray(content) ? content.filter((part): part is ContentPart => typeof part === 'object' && part !== null && typeof part.type === 'string') : []
}
