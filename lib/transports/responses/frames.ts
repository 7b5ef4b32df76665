import type { ErrorObject } from './errors.js'
import type { CreateBody } from './request.js'

// What an OpenResponses client of this gateway sends and receives, over HTTP and in
// WebSocket mode (PROTOCOL.md documents each). The `openai` package has richer types for
// the same JSON; these name exactly what this gateway accepts and answers.

export type { CreateBody as ResponsesCreateBody, InputItem as ResponsesInputItem, FunctionToolParam as ResponsesFunctionTool, ToolChoiceParam as ResponsesToolChoice } from './request.js'
export type { ResponseObject } from './response-stream.js'
export type { ErrorObject as ResponsesErrorObject } from './errors.js'

/** The body of an error answer over HTTP. */
export interface ResponsesErrorBody {
  error: ErrorObject
}

/** One stream event, as SSE `data:` or as a WebSocket-mode frame: `response.created`, `response.output_text.delta`, … */
export interface ResponseStreamEvent {
  type: string
  sequence_number: number
  [field: string]: unknown
}

/** WebSocket mode: what a client sends (every response streams, so no `stream`). */
export type ResponseCreateFrame = { type: 'response.create' } & Omit<CreateBody, 'stream' | 'stream_options' | 'background'>

/** WebSocket mode: a refusal, with the HTTP status the same request would have had. */
export interface ResponsesErrorFrame {
  type: 'error'
  status: number
  error: ErrorObject
}
