import { RunErrorCode } from '../../errors.js'
import type { SessionEvent } from '../../events.js'
import type { AssistantMessage } from '../../transcript.js'
import type { CreateBody } from './request.js'

// One response, as OpenResponses shows it: the response object, and the stream of
// events that builds it (the same events go out as SSE and as WebSocket-mode frames).
// It is fed the hub's events for its run and keeps every event it produced, so a
// client can resume from any `sequence_number`.

/** An event as sent: its type and sequence number, and its JSON, made once. */
export interface StreamEvent {
  type: string
  sequence_number: number
  json: string
}

export type ResponseObject = Record<string, unknown> & { id: string, status: string, output: OutputItem[] }

type OutputItem = Record<string, unknown> & { type: string, id: string, status: string }

interface TextItem {
  item: OutputItem & { content: Array<{ type: 'output_text', text: string, annotations: [], logprobs: [] }> }
  index: number
}

interface ReasoningItem {
  item: OutputItem & { summary: [], content: Array<{ type: 'reasoning_text', text: string }> }
  index: number
}

type Listener = (event: StreamEvent) => void

/** The fields of the response object that the request decides, with the specification's defaults. */
export function requestFields (body: CreateBody, model: string): Record<string, unknown> {
  const choice = body.tool_choice
  return {
    model,
    previous_response_id: body.previous_response_id ?? null,
    instructions: body.instructions ?? null,
    tools: (body.tools ?? []).map(tool => ({
      type: 'function',
      name: tool.name,
      description: tool.description ?? null,
      parameters: tool.parameters ?? null,
      strict: tool.strict ?? null
    })),
    tool_choice: choice === null || choice === undefined
      ? 'auto'
      : typeof choice === 'string' || choice.type === 'function'
        ? choice
        : { type: 'allowed_tools', tools: choice.tools, mode: choice.mode ?? 'auto' },
    truncation: body.truncation ?? 'disabled',
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    text: { format: body.text?.format ?? { type: 'text' }, ...(body.text?.verbosity === undefined ? {} : { verbosity: body.text.verbosity }) },
    top_p: body.top_p ?? 1,
    presence_penalty: body.presence_penalty ?? 0,
    frequency_penalty: body.frequency_penalty ?? 0,
    top_logprobs: body.top_logprobs ?? 0,
    temperature: body.temperature ?? 1,
    reasoning: body.reasoning == null ? null : { effort: body.reasoning.effort ?? null, summary: body.reasoning.summary ?? null },
    max_output_tokens: body.max_output_tokens ?? null,
    max_tool_calls: body.max_tool_calls ?? null,
    store: body.store ?? true,
    background: body.background ?? false,
    service_tier: body.service_tier ?? 'default',
    metadata: body.metadata ?? {},
    safety_identifier: body.safety_identifier ?? null,
    prompt_cache_key: body.prompt_cache_key ?? null
  }
}

export class ResponseStream {
  /** The response's id, which is also its run's id in the session's event log. */
  readonly id: string
  readonly events: StreamEvent[] = []
  /**
   * False for a stream rebuilt from the transcript (its text in one delta): only its first
   * two events (`response.created`, `response.in_progress`) match the stream first sent.
   */
  exact = true
  /** The fields that never change, serialized once: `{"id":…,…,"prompt_cache_key":null` (no closing brace). */
  readonly #baseJson: string
  /** The final response object's JSON, once there is one. */
  #finalJson: string | undefined
  readonly #output: OutputItem[] = []
  readonly #listeners = new Set<Listener>()
  #text: TextItem | undefined
  #reasoning: ReasoningItem | undefined
  #status = 'in_progress'
  #completedAt: number | null = null
  #incomplete: { reason: string } | null = null
  #error: { code: string, message: string } | null = null
  #usage: Record<string, unknown> | null = null
  #finished = false
  readonly #ended: Promise<void>
  #end!: () => void

  constructor (id: string, fields: Record<string, unknown>, createdAt = Math.floor(Date.now() / 1000)) {
    this.id = id
    this.#baseJson = JSON.stringify({ id, object: 'response', created_at: createdAt, ...fields }).slice(0, -1)
    this.#ended = new Promise(resolve => { this.#end = resolve })
    const response = this.responseJson()
    this.#emitRaw('response.created', `"response":${response}`)
    this.#emitRaw('response.in_progress', `"response":${response}`)
  }

  get finished (): boolean {
    return this.#finished
  }

  get status (): string {
    return this.#status
  }

  /** Settles when the terminal event has been produced. */
  async ended (): Promise<void> {
    await this.#ended
  }

  /** The response object as it stands now, with every key of the schema. */
  response (): ResponseObject {
    return JSON.parse(this.responseJson()) as ResponseObject
  }

  /** The same, as JSON: the unchanging part was serialized once, at the start. */
  responseJson (): string {
    if (this.#finalJson !== undefined) return this.#finalJson
    return `${this.#baseJson},"completed_at":${JSON.stringify(this.#completedAt)},"status":${JSON.stringify(this.#status)},` +
      `"incomplete_details":${JSON.stringify(this.#incomplete)},"output":${JSON.stringify(this.#output)},` +
      `"error":${JSON.stringify(this.#error)},"usage":${JSON.stringify(this.#usage)}}`
  }

  /** Every event after `after` (a `sequence_number`, -1 for all), then the live ones until the end. */
  subscribe (after: number, listener: Listener, onEnd: () => void): () => void {
    for (const event of this.events) if (event.sequence_number > after) listener(event)
    if (this.#finished) {
      onEnd()
      return () => {}
    }
    // Its own function, so the same listener may subscribe twice and leave once.
    const live: Listener = event => listener(event)
    this.#listeners.add(live)
    void this.#ended.then(() => {
      if (this.#listeners.delete(live)) onEnd()
    })
    return () => { this.#listeners.delete(live) }
  }

  /** Takes one of the hub's events for this response's run. */
  onHubEvent (event: SessionEvent): void {
    if (this.#finished || !('runId' in event) || event.runId !== this.id) return
    switch (event.type) {
      case 'run.delta':
        this.#closeReasoning('completed')
        this.#delta(event.delta)
        return
      case 'run.reasoning':
        this.#closeText('completed')
        this.#reasoningDelta(event.delta)
        return
      case 'run.tool_call': {
        this.#closeReasoning('completed')
        this.#closeText('completed')
        const call = event.call
        const index = this.#output.length
        const item: OutputItem = { type: 'function_call', id: this.#itemId('fc', index), call_id: call.id, name: call.name, arguments: '', status: 'in_progress' }
        this.#output.push(item)
        const args = JSON.stringify(call.arguments)
        this.#emit('response.output_item.added', { output_index: index, item })
        this.#emit('response.function_call_arguments.delta', { item_id: item.id, output_index: index, delta: args })
        item.arguments = args
        item.status = 'completed'
        this.#emit('response.function_call_arguments.done', { item_id: item.id, output_index: index, arguments: args })
        this.#emit('response.output_item.done', { output_index: index, item })
        return
      }
      case 'run.finished':
        this.#finish(event.state, event.entry.message, event.error, event.at)
    }
  }

  #delta (delta: string): void {
    let text = this.#text
    if (text === undefined) {
      const index = this.#output.length
      const item = { type: 'message', id: this.#itemId('msg', index), status: 'in_progress', role: 'assistant', content: [] } as unknown as TextItem['item']
      this.#output.push(item)
      this.#emit('response.output_item.added', { output_index: index, item })
      const part = { type: 'output_text' as const, text: '', annotations: [] as [], logprobs: [] as [] }
      item.content.push(part)
      this.#emit('response.content_part.added', { item_id: item.id, output_index: index, content_index: 0, part })
      text = this.#text = { item, index }
    }
    const part = text.item.content[0] as TextItem['item']['content'][number]
    part.text += delta
    this.#emit('response.output_text.delta', { item_id: text.item.id, output_index: text.index, content_index: 0, delta, logprobs: [] })
  }

  /** The model's reasoning, as a `reasoning` item whose one content part grows. */
  #reasoningDelta (delta: string): void {
    let reasoning = this.#reasoning
    if (reasoning === undefined) {
      const index = this.#output.length
      const item = { type: 'reasoning', id: this.#itemId('rs', index), status: 'in_progress', summary: [], content: [] } as unknown as ReasoningItem['item']
      this.#output.push(item)
      this.#emit('response.output_item.added', { output_index: index, item })
      const part = { type: 'reasoning_text' as const, text: '' }
      item.content.push(part)
      this.#emit('response.content_part.added', { item_id: item.id, output_index: index, content_index: 0, part })
      reasoning = this.#reasoning = { item, index }
    }
    const part = reasoning.item.content[0] as ReasoningItem['item']['content'][number]
    part.text += delta
    this.#emit('response.reasoning.delta', { item_id: reasoning.item.id, output_index: reasoning.index, content_index: 0, delta })
  }

  #closeReasoning (status: 'completed' | 'incomplete'): void {
    const reasoning = this.#reasoning
    if (reasoning === undefined) return
    this.#reasoning = undefined
    const { item, index } = reasoning
    const part = item.content[0] as ReasoningItem['item']['content'][number]
    this.#emit('response.reasoning.done', { item_id: item.id, output_index: index, content_index: 0, text: part.text })
    this.#emit('response.content_part.done', { item_id: item.id, output_index: index, content_index: 0, part })
    item.status = status
    this.#emit('response.output_item.done', { output_index: index, item })
  }

  #closeText (status: 'completed' | 'incomplete'): void {
    const text = this.#text
    if (text === undefined) return
    this.#text = undefined
    const { item, index } = text
    const part = item.content[0] as TextItem['item']['content'][number]
    this.#emit('response.output_text.done', { item_id: item.id, output_index: index, content_index: 0, text: part.text, logprobs: [] })
    this.#emit('response.content_part.done', { item_id: item.id, output_index: index, content_index: 0, part })
    item.status = status
    this.#emit('response.output_item.done', { output_index: index, item })
  }

  /**
   * An item's id, made from the response's and the item's place in it: the same events
   * always build the same stream, so one rebuilt later matches the one first sent.
   */
  #itemId (prefix: string, index: number): string {
    return `${prefix}_${this.id.slice(this.id.indexOf('_') + 1)}_${index}`
  }

  #finish (state: 'final' | 'aborted' | 'error', message: AssistantMessage, error: { code: string, message: string } | undefined, at: number): void {
    const usage = message.usage
    if (usage !== undefined) {
      this.#usage = {
        input_tokens: usage.input,
        output_tokens: usage.output,
        total_tokens: usage.totalTokens,
        input_tokens_details: { cached_tokens: usage.cacheRead ?? 0 },
        output_tokens_details: { reasoning_tokens: usage.reasoning ?? 0 }
      }
    }
    let terminal: string
    if (state === 'final' && message.stopReason !== 'length') {
      this.#closeReasoning('completed')
      this.#closeText('completed')
      this.#status = 'completed'
      this.#completedAt = Math.floor(at / 1000)
      terminal = 'response.completed'
    } else if (state !== 'error') {
      this.#closeReasoning('incomplete')
      this.#closeText('incomplete')
      this.#status = 'incomplete'
      this.#incomplete = { reason: state === 'final' ? 'max_output_tokens' : abortReason(error?.code) }
      terminal = 'response.incomplete'
    } else {
      this.#closeReasoning('incomplete')
      this.#closeText('incomplete')
      this.#status = 'failed'
      // The hub always says why a run ended in error.
      const { code: reason, message: text } = error as { code: string, message: string }
      const code = reason.replace(/^FSG_/, '').toLowerCase()
      this.#error = { code, message: text }
      this.#emit('error', { error: { type: 'server_error', code, message: text, param: null } })
      terminal = 'response.failed'
    }
    this.#finalJson = this.responseJson()
    this.#emitRaw(terminal, `"response":${this.#finalJson}`)
    this.#finished = true
    this.#end()
  }

  /** Events are serialized here, at once, so they may refer to items that change later. */
  #emit (type: string, fields: Record<string, unknown>): void {
    this.#emitRaw(type, JSON.stringify(fields).slice(1, -1))
  }

  /** An event from its fields already serialized (`"name":value,…`, without braces). */
  #emitRaw (type: string, fieldsJson: string): void {
    const sequenceNumber = this.events.length
    const event: StreamEvent = { type, sequence_number: sequenceNumber, json: `{"type":${JSON.stringify(type)},"sequence_number":${sequenceNumber},${fieldsJson}}` }
    this.events.push(event)
    for (const listener of this.#listeners) listener(event)
  }
}

/** Why an aborted run stopped, as an `incomplete_details.reason`. */
function abortReason (code: string | undefined): string {
  switch (code) {
    case RunErrorCode.gatewayClosed: return 'interrupted'
    case RunErrorCode.sessionReset: return 'session_reset'
    default: return 'cancelled'
  }
}
