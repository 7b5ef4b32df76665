import type { TObject, TSchema } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors'
import { Value } from '@sinclair/typebox/value'
import type { FastifySchemaCompiler } from 'fastify'
import { invalidParam } from '../responses/errors.js'

/**
 * Checks requests with TypeBox itself rather than Fastify's Ajv, whose defaults strip
 * unknown fields without a word: here an unknown or wrong field is a 400 that names it.
 * Query strings and path parameters are text, so numbers are converted first.
 */
export const typeboxValidator: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = TypeCompiler.Compile(schema)
  const integers = httpPart === 'body' ? [] : integerFields(schema as TObject)
  return (data: unknown) => {
    // Conversion would read '1.5' as 1 and '0x10' as 16: an integer in text is digits.
    const loose = integers.find(field => notDigits((data as Record<string, unknown>)[field]))
    if (loose !== undefined) return { error: invalidParam(loose, `${loose}: expected integer`) }
    const value = httpPart === 'body' ? data : Value.Convert(schema, data)
    if (check.Check(value)) return { value }
    // Only reached when the check failed, so there is a first error.
    const error = check.Errors(value).First() as ValueError
    const field = error.path === '' ? String(httpPart) : error.path.slice(1).replaceAll('/', '.')
    return {
      error: error.type === ValueErrorType.ObjectAdditionalProperties
        ? invalidParam(field, `Unknown parameter: '${field}'.`, 'unknown_parameter')
        : invalidParam(field, `${field}: ${error.message.toLowerCase()}`)
    }
  }
}

/** The fields of a query or path schema (an object, in every route here) that hold integers. */
function integerFields (schema: TObject): string[] {
  return Object.entries(schema.properties).filter(([, property]) => property.type === 'integer').map(([field]) => field)
}

function notDigits (value: unknown): boolean {
  return typeof value === 'string' && !/^\d+$/.test(value)
}
