import type { TSchema } from '@sinclair/typebox'
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
  return (data: unknown) => {
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
