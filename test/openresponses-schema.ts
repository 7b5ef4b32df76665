import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'

// Validates what the server sends against the OpenResponses OpenAPI document (3.1, so
// JSON Schema 2020-12). `discriminator` is OpenAPI's; the oneOf branches decide anyway.

const documentPath = fileURLToPath(new URL('fixtures/openresponses-openapi.json', import.meta.url))
const document = JSON.parse(readFileSync(documentPath, 'utf8')) as { components: { schemas: Record<string, unknown> } }

const ajv = new (Ajv2020 as unknown as typeof Ajv2020.default)({ strict: false, allErrors: false, validateFormats: false })
;(addFormats as unknown as (a: unknown) => void)(ajv)
ajv.addSchema({ $id: 'openresponses', components: document.components }, 'openresponses')

const compiled = new Map<string, ValidateFunction>()

function validator (name: string): ValidateFunction {
  let validate = compiled.get(name)
  if (validate === undefined) {
    if (!(name in document.components.schemas)) throw new Error(`no schema ${name}`)
    validate = ajv.compile({ $ref: `openresponses#/components/schemas/${name}` })
    compiled.set(name, validate)
  }
  return validate
}

/** Undefined when `value` matches the named component schema, else what is wrong. */
export function schemaProblem (name: string, value: unknown): string | undefined {
  const validate = validator(name)
  if (validate(value)) return undefined
  return `${name}: ${ajv.errorsText(validate.errors?.slice(0, 3))} in ${JSON.stringify(value).slice(0, 400)}`
}

// The streaming event schema for each event type, from the document itself.
const eventSchemas = new Map<string, string>()
for (const [name, schema] of Object.entries(document.components.schemas)) {
  const type = (schema as { properties?: { type?: { enum?: string[] } } }).properties?.type?.enum?.[0]
  if (name.endsWith('StreamingEvent') && type !== undefined) eventSchemas.set(type, name)
}

/** Undefined when a streamed event matches the schema of its `type`. */
export function eventProblem (event: { type?: unknown }): string | undefined {
  const name = eventSchemas.get(String(event.type))
  if (name === undefined) return `no streaming event schema for type ${JSON.stringify(event.type)}`
  return schemaProblem(name, event)
}

/** Parses an SSE body into its events, checking the framing rules on the way. */
export function parseSse (body: string, firstSequence = 0): { events: Array<Record<string, any>>, problems: string[] } {
  const problems: string[] = []
  const events: Array<Record<string, any>> = []
  if (body.includes('\r')) problems.push('SSE must use \\n line ends')
  const blocks = body.split('\n\n')
  if (blocks.at(-1) !== '') problems.push('the stream must end with a blank line')
  const last = blocks.at(-2)
  if (last !== 'data: [DONE]') problems.push(`the stream must end with data: [DONE], got ${JSON.stringify(last)}`)
  for (const block of blocks.slice(0, -2)) {
    const lines = block.split('\n')
    const name = lines[0]?.startsWith('event: ') === true ? lines[0].slice(7) : undefined
    const data = lines[1]?.startsWith('data: ') === true ? lines[1].slice(6) : undefined
    if (name === undefined || data === undefined || lines.length !== 2) {
      problems.push(`an event must be exactly "event:" then one "data:" line: ${JSON.stringify(block).slice(0, 200)}`)
      continue
    }
    const event = JSON.parse(data) as Record<string, any>
    if (event.type !== name) problems.push(`event: ${name} does not match the JSON type ${String(event.type)}`)
    if (event.sequence_number !== firstSequence + events.length) problems.push(`sequence_number ${String(event.sequence_number)} where ${firstSequence + events.length} was due`)
    const problem = eventProblem(event)
    if (problem !== undefined) problems.push(problem)
    events.push(event)
  }
  return { events, problems }
}
