import type { SessionRow } from '../stores/store.js'
import type { TranscriptEntry, TranscriptMessage } from '../transcript.js'

/** A function tool offered to the agent (OpenResponses `tools[]` entries of type `function`). */
export interface FunctionTool {
  type: 'function'
  name: string
  description?: string | null
  parameters?: Record<string, unknown> | null
  strict?: boolean | null
}

export type ToolChoice =
  | 'auto'
  | 'none'
  | 'required'
  | { type: 'function', name: string }

/** What the agent is asked to do on one turn. */
export interface AgentRequest {
  sessionKey: string
  sessionId: string
  agentId: string
  runId: string
  /** This turn's new rows (user messages, tool results, replayed assistant turns), already in the transcript. */
  input: TranscriptMessage[]
  /** The transcript before this turn, oldest first; loaded only if the agent asks. */
  history (limit?: number): Promise<TranscriptMessage[]>
  /** The tools the agent may call on this turn (already narrowed by `allowed_tools`). */
  tools: FunctionTool[]
  toolChoice: ToolChoice
  /** A model name the client asked for that is not an agent selector (say `gpt-4o-mini`). */
  model?: string
  instructions?: string
  maxOutputTokens?: number
  metadata: Record<string, string>
  /** Aborted when the run is cancelled, times out or the gateway closes. */
  signal: AbortSignal
}

/** What an agent yields while it answers. */
export type AgentOutput =
  | { type: 'text', delta: string }
  | { type: 'function_call', name: string, arguments: string | Record<string, unknown>, callId?: string }
  /**
   * The model's reasoning, where the model shows it: streamed live as its own output
   * (an OpenResponses `reasoning` item) and kept in the answer's row as a `thinking` part.
   */
  | { type: 'reasoning', delta: string }
  /** Token counts for the turn; the last one given wins. */
  | { type: 'usage', inputTokens: number, outputTokens: number, cachedTokens?: number, reasoningTokens?: number }
  /** The answer stopped early because it reached `maxOutputTokens`. */
  | { type: 'incomplete', reason: 'max_output_tokens' }

/** The model an agent answers with, for clients that show it (OpenClaw's Control UI does). */
export interface AgentModel {
  /** The model's name as its server knows it, such as `gpt-4o-mini`. */
  id: string
  /** Who serves it, such as `api.openai.com`. */
  provider: string
}

/** What to list of an upstream's sessions: a page, `offset` rows in, filtered as ours are. */
export interface UpstreamListQuery {
  agentId?: string
  label?: string
  search?: string
  limit: number
  offset: number
}

/**
 * Sessions an agent's upstream keeps itself (OpenClaw does), which may exist only there:
 * the gateway lists them beside its own and imports one into its store the first time it
 * is opened or continued. Rows and keys in this gateway's terms.
 */
export interface UpstreamSessions {
  /**
   * One entry per row of the upstream's page, newest first, in its order (so offsets
   * count the upstream's rows): undefined for a session this gateway cannot route to
   * (a key it refuses, an agent it cannot reach). `more` when rows follow.
   */
  list (query: UpstreamListQuery): Promise<{ rows: Array<SessionRow | undefined>, more: boolean }>
  /** The session's transcript, oldest first, as transcript entries; undefined when the upstream has no such session. */
  read (sessionKey: string): Promise<{ row: SessionRow, entries: TranscriptEntry[] } | undefined>
}

/**
 * Generates the answers. The hub owns everything else (ordering, persistence,
 * fan-out, abort): an agent only turns a request into a stream of outputs.
 * Throwing, or an iterator that fails, ends the run with state `error`.
 */
export interface Agent {
  respond (request: AgentRequest): AsyncIterable<AgentOutput>
  /** The model it answers with when a client names none; left out when the agent does not know. */
  readonly model?: AgentModel
  /** The upstream's own sessions, when it keeps them. */
  readonly sessions?: UpstreamSessions
}
