import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors'
import { invalidParam } from './errors.js'

// The body of `POST /responses` (OpenResponses 2026-04-24, `CreateResponseBody`), checked
// in two steps so an error names the real field: the top level first (an unknown
// parameter is refused by name), then each input item and tool by its `type`.
// Nested objects stay open: clients pass back output items that carry extra fields
// (`status`, `logprobs`, …), and refusing those would break real conversations.

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()])
const open = { additionalProperties: true }
const Text = Type.String({ maxLength: 10_485_760 })
const NumberOrNull = Type.Optional(Nullable(Type.Number()))

/**
 * JSON nested deeper than this is refused (400). Nothing in the API needs it, and the
 * response echoes the request's tools, formats and tool choice: serializing them again
 * that deep would overflow the stack (a 500).
 */
export const MAX_BODY_DEPTH = 64

export const MetadataSchema = Type.Record(Type.String(), Type.String({ maxLength: 512 }), { maxProperties: 16 })

const BodySchema = Type.Object({
  model: Type.Optional(Nullable(Type.String())),
  input: Type.Optional(Nullable(Type.Union([Text, Type.Array(Type.Unknown())]))),
  previous_response_id: Type.Optional(Nullable(Type.String())),
  include: Type.Optional(Type.Array(Type.Union([Type.Literal('reasoning.encrypted_content'), Type.Literal('message.output_text.logprobs')]))),
  tools: Type.Optional(Nullable(Type.Array(Type.Unknown()))),
  tool_choice: Type.Optional(Nullable(Type.Unknown())),
  metadata: Type.Optional(Nullable(MetadataSchema)),
  text: Type.Optional(Nullable(Type.Object({
    format: Type.Optional(Nullable(Type.Object({ type: Type.Union([Type.Literal('text'), Type.Literal('json_schema'), Type.Literal('json_object')]) }, open))),
    verbosity: Type.Optional(Type.Union([Type.Literal('low'), Type.Literal('medium'), Type.Literal('high')]))
  }, open))),
  temperature: NumberOrNull,
  top_p: NumberOrNull,
  presence_penalty: NumberOrNull,
  frequency_penalty: NumberOrNull,
  parallel_tool_calls: Type.Optional(Nullable(Type.Boolean())),
  stream: Type.Optional(Type.Boolean()),
  stream_options: Type.Optional(Nullable(Type.Object({ include_obfuscation: Type.Optional(Type.Boolean()) }, open))),
  background: Type.Optional(Type.Boolean()),
  max_output_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 16 }))),
  max_tool_calls: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
  reasoning: Type.Optional(Nullable(Type.Object({
    effort: Type.Optional(Nullable(Type.Union(['none', 'minimal', 'low', 'medium', 'high', 'xhigh'].map(v => Type.Literal(v))))),
    summary: Type.Optional(Nullable(Type.Union(['concise', 'detailed', 'auto'].map(v => Type.Literal(v)))))
  }, open))),
  safety_identifier: Type.Optional(Nullable(Type.String({ maxLength: 64 }))),
  prompt_cache_key: Type.Optional(Nullable(Type.String({ maxLength: 64 }))),
  truncation: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('disabled')])),
  instructions: Type.Optional(Nullable(Type.String())),
  store: Type.Optional(Type.Boolean()),
  service_tier: Type.Optional(Type.Union(['auto', 'default', 'flex', 'priority'].map(v => Type.Literal(v)))),
  top_logprobs: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 20 }))),
  // Not in the specification: OpenAI's (and OpenClaw's) `user`, which names the caller's session.
  user: Type.Optional(Nullable(Type.String({ maxLength: 256 })))
}, { additionalProperties: false })

const InputTextPart = Type.Object({ type: Type.Literal('input_text'), text: Text }, open)
const InputImagePart = Type.Object({
  type: Type.Literal('input_image'),
  image_url: Type.Optional(Nullable(Type.String({ maxLength: 20_971_520 }))),
  detail: Type.Optional(Nullable(Type.Union([Type.Literal('low'), Type.Literal('high'), Type.Literal('auto')])))
}, open)
const InputFilePart = Type.Object({
  type: Type.Literal('input_file'),
  filename: Type.Optional(Nullable(Type.String())),
  file_data: Type.Optional(Nullable(Type.String({ maxLength: 33_554_432 }))),
  file_url: Type.Optional(Nullable(Type.String()))
}, open)
const OutputTextPart = Type.Object({ type: Type.Literal('output_text'), text: Text }, open)
const RefusalPart = Type.Object({ type: Type.Literal('refusal'), refusal: Text }, open)

const PART_SCHEMAS = {
  input_text: InputTextPart,
  input_image: InputImagePart,
  input_file: InputFilePart,
  output_text: OutputTextPart,
  refusal: RefusalPart
} as const
export type InputPart = Static<typeof InputTextPart> | Static<typeof InputImagePart> | Static<typeof InputFilePart>
export type AssistantPart = Static<typeof OutputTextPart> | Static<typeof RefusalPart>

/** Which content parts each message role may hold. */
const ROLE_PARTS: Record<string, ReadonlyArray<keyof typeof PART_SCHEMAS>> = {
  user: ['input_text', 'input_image', 'input_file'],
  system: ['input_text'],
  developer: ['input_text'],
  assistant: ['output_text', 'refusal']
}

const MessageItem = Type.Object({
  type: Type.Optional(Type.Literal('message')),
  role: Type.Union([Type.Literal('user'), Type.Literal('system'), Type.Literal('developer'), Type.Literal('assistant')]),
  content: Type.Union([Text, Type.Array(Type.Unknown())])
}, open)
const FunctionCallItem = Type.Object({
  type: Type.Literal('function_call'),
  call_id: Type.String({ minLength: 1, maxLength: 64 }),
  name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9_-]+$' }),
  arguments: Type.String()
}, open)
const FunctionCallOutputItem = Type.Object({
  type: Type.Literal('function_call_output'),
  call_id: Type.String({ minLength: 1, maxLength: 64 }),
  output: Type.Union([Text, Type.Array(Type.Unknown())])
}, open)
const ReasoningItem = Type.Object({
  type: Type.Literal('reasoning'),
  summary: Type.Array(Type.Object({ type: Type.Literal('summary_text'), text: Text }, open))
}, open)
const ItemReference = Type.Object({ type: Type.Optional(Nullable(Type.Literal('item_reference'))), id: Type.String() }, open)
const CompactionItem = Type.Object({ type: Type.Literal('compaction'), encrypted_content: Text }, open)

export type MessageItem = Static<typeof MessageItem>
export type InputItem =
  | (Static<typeof MessageItem> & { type?: 'message' })
  | Static<typeof FunctionCallItem>
  | Static<typeof FunctionCallOutputItem>
  | Static<typeof ReasoningItem>
  | Static<typeof ItemReference>
  | Static<typeof CompactionItem>

const ITEM_SCHEMAS = {
  message: MessageItem,
  function_call: FunctionCallItem,
  function_call_output: FunctionCallOutputItem,
  reasoning: ReasoningItem,
  item_reference: ItemReference,
  compaction: CompactionItem
} as const

const FunctionToolSchema = Type.Object({
  type: Type.Literal('function'),
  name: Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9_-]+$' }),
  description: Type.Optional(Nullable(Type.String())),
  parameters: Type.Optional(Nullable(Type.Object({}, open))),
  strict: Type.Optional(Nullable(Type.Boolean()))
}, open)
export type FunctionToolParam = Static<typeof FunctionToolSchema>

const SpecificFunction = Type.Object({ type: Type.Literal('function'), name: Type.String({ minLength: 1 }) }, open)
const ToolChoiceSchema = Type.Union([
  Type.Literal('none'), Type.Literal('auto'), Type.Literal('required'),
  SpecificFunction,
  Type.Object({
    type: Type.Literal('allowed_tools'),
    tools: Type.Array(SpecificFunction, { minItems: 1, maxItems: 128 }),
    mode: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('auto'), Type.Literal('required')]))
  }, open)
])
export type ToolChoiceParam = Static<typeof ToolChoiceSchema>

export type CreateBody = Omit<Static<typeof BodySchema>, 'input' | 'tools' | 'tool_choice'> & {
  input?: string | InputItem[] | null
  tools?: FunctionToolParam[] | null
  tool_choice?: ToolChoiceParam | null
}

const checkBody = TypeCompiler.Compile(BodySchema)
const compileAll = <K extends string>(schemas: Record<K, TSchema>): Record<K, TypeCheck<TSchema>> =>
  Object.fromEntries(Object.entries<TSchema>(schemas).map(([type, schema]) => [type, TypeCompiler.Compile(schema)])) as Record<K, TypeCheck<TSchema>>
const checkItem = compileAll(ITEM_SCHEMAS)
const checkPart = compileAll(PART_SCHEMAS)
const checkTool = TypeCompiler.Compile(FunctionToolSchema)
const checkToolChoice = TypeCompiler.Compile(ToolChoiceSchema)

/**
 * The body as a `CreateBody`, or a 400 naming the first field at fault. `omit` names
 * fields a transport has already checked itself (WebSocket mode's `type`).
 */
export function parseCreateBody (body: unknown, omit: readonly string[] = []): CreateBody {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalidParam('body', 'The request body must be a JSON object.', 'invalid_type')
  }
  if (deeperThan(body, MAX_BODY_DEPTH)) throw invalidParam('body', `The request body is nested more than ${MAX_BODY_DEPTH} levels deep.`)
  const rest = omit.length === 0 ? body : Object.fromEntries(Object.entries(body).filter(([name]) => !omit.includes(name)))
  check(checkBody, rest, '')
  const parsed = rest as CreateBody
  if (Array.isArray(parsed.input)) parsed.input.forEach((item, i) => checkInputItem(item, `input[${i}]`))
  parsed.tools?.forEach((tool, i) => {
    const type = (tool as { type?: unknown } | null)?.type
    if (type !== 'function') throw invalidParam(`tools[${i}].type`, `Unsupported tool type ${JSON.stringify(type)}: only function tools are available here.`)
    check(checkTool, tool, `tools[${i}]`)
  })
  if (parsed.tool_choice !== undefined && parsed.tool_choice !== null) check(checkToolChoice, parsed.tool_choice, 'tool_choice')
  return parsed
}

/** Whether objects and arrays in `value` nest more than `max` levels (counted without recursion, so any depth is safe to ask about). */
function deeperThan (value: unknown, max: number): boolean {
  const pending: Array<[unknown, number]> = [[value, 1]]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [node, depth] = next
    if (typeof node !== 'object' || node === null) continue
    if (depth > max) return true
    for (const child of Object.values(node)) pending.push([child, depth + 1])
  }
  return false
}

function checkInputItem (item: unknown, path: string): void {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) throw invalidParam(path, `${path} must be an object.`, 'invalid_type')
  const given = (item as { type?: unknown }).type
  // A message may leave out its type (`{role, content}`, as chat clients write it).
  const type = given === undefined && 'role' in item ? 'message' : given === undefined || given === null ? ('id' in item ? 'item_reference' : undefined) : given
  if (typeof type !== 'string' || !(type in checkItem)) {
    throw invalidParam(`${path}.type`, `Unsupported input item type ${JSON.stringify(given)}: expected one of ${Object.keys(ITEM_SCHEMAS).join(', ')}.`)
  }
  check(checkItem[type as keyof typeof ITEM_SCHEMAS], item, path)
  if (type === 'message') {
    const { role, content } = item as MessageItem
    if (Array.isArray(content)) content.forEach((part, i) => checkPartOf(part, role, `${path}.content[${i}]`))
  }
  if (type === 'function_call_output') {
    const output = (item as { output: unknown }).output
    if (Array.isArray(output)) output.forEach((part, i) => checkPartOf(part, 'user', `${path}.output[${i}]`))
  }
}

function checkPartOf (part: unknown, role: string, path: string): void {
  const type = (part as { type?: unknown } | null)?.type
  const allowed = ROLE_PARTS[role] as ReadonlyArray<keyof typeof PART_SCHEMAS>
  if (typeof type !== 'string' || !allowed.includes(type as keyof typeof PART_SCHEMAS)) {
    throw invalidParam(`${path}.type`, `A ${role} message cannot hold a part of type ${JSON.stringify(type)}: expected ${allowed.join(' or ')}.`)
  }
  check(checkPart[type as keyof typeof PART_SCHEMAS], part, path)
}

function check (checker: TypeCheck<TSchema>, value: unknown, path: string): void {
  if (checker.Check(value)) return
  const error = checker.Errors(value).First() as ValueError
  // Every property check names the property; an unknown one is `unknown_parameter`, as OpenAI says it.
  const field = fieldOf(path, error.path)
  if (error.type === ValueErrorType.ObjectAdditionalProperties) {
    const name = Object.keys(value as object).find(key => !(key in (checker.Schema() as unknown as { properties: object }).properties)) as string
    throw invalidParam(fieldOf(path, `/${name}`), `Unknown parameter: '${fieldOf(path, `/${name}`)}'.`, 'unknown_parameter')
  }
  throw invalidParam(field, `Invalid value for '${field}': ${error.message.toLowerCase()}.`, error.value === undefined ? 'missing_required_parameter' : 'invalid_value')
}

function fieldOf (base: string, pointer: string): string {
  let field = base
  for (const segment of pointer.split('/').slice(1)) field += /^\d+$/.test(segment) ? `[${segment}]` : `${field === '' ? '' : '.'}${segment}`
  return field
}
