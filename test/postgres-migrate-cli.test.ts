import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { migrateCommand } from '../lib/postgres/migrate-cli.js'
import { childEnv } from './helpers.js'
import { startPostgres } from './postgres-server.js'

// `npm run postgres:migrate`: what it runs, and what it prints.

const root = fileURLToPath(new URL('..', import.meta.url))
const server = await startPostgres(t)

async function command (env: NodeJS.ProcessEnv): Promise<{ code: number, lines: string[] }> {
  const lines: string[] = []
  const code = await migrateCommand(env, line => lines.push(line))
  return { code, lines }
}

t.test('without DATABASE_URL it says what to set', async t => {
  for (const env of [{}, { DATABASE_URL: '' }]) {
    const { code, lines } = await command(env)
    t.equal(code, 1)
    t.match(lines, [/^DATABASE_URL is not set: .*npm run postgres:migrate/])
  }
})

t.test('migrates once, then says it is already done; schema and prefix from the environment', async t => {
  const env = { DATABASE_URL: server.url, DATABASE_TABLE_PREFIX: 'cli_' }
  t.same(await command(env), { code: 0, lines: ['session gateway tables migrated from version 0 to 2 (schema public, table prefix cli_)'] })
  t.same(await command({ ...env, DATABASE_SCHEMA: '' }), { code: 0, lines: ['session gateway tables already at version 2 (schema public, table prefix cli_)'] })
  t.same(await command({ DATABASE_URL: server.url, DATABASE_SCHEMA: 'other' }), { code: 0, lines: ['session gateway tables migrated from version 0 to 2 (schema other, table prefix fsg_)'] })
})

t.test('a failure is one line and exit code 1', async t => {
  const { code, lines } = await command({ DATABASE_URL: server.url, DATABASE_TABLE_PREFIX: 'Bad Prefix' })
  t.equal(code, 1)
  t.match(lines, [/^migration failed: .*tablePrefix/])
})

t.test('the npm script runs the built command', async t => {
  const pkg = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }
  const [node, script, ...rest] = (pkg.scripts['postgres:migrate'] as string).split(' ')
  t.same([node, rest], ['node', []], 'plain node on one file')
  const run = async (): Promise<string> => (await promisify(execFile)(process.execPath, [script as string], {
    cwd: root, env: childEnv({ DATABASE_URL: server.url, DATABASE_TABLE_PREFIX: 'npm_' }), timeout: 60_000
  })).stdout
  t.equal(await run(), 'session gateway tables migrated from version 0 to 2 (schema public, table prefix npm_)\n')
  t.equal(await run(), 'session gateway tables already at version 2 (schema public, table prefix npm_)\n', 'and again: nothing to do')
})
