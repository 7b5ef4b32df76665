import { createRequire } from 'node:module'

/** This package's version, as `hello-ok` reports it. */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version
