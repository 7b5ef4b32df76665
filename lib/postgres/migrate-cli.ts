// `npm run postgres:migrate`: creates the PostgreSQL store's tables, or brings them to this
// package's version, in the database at DATABASE_URL (schema DATABASE_SCHEMA, default
// public; table prefix DATABASE_TABLE_PREFIX, default fsg_). Safe to run again.
import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { migrate } from './schema.js'

/** Runs the migration the environment describes; prints one line; answers the exit code. */
export async function migrateCommand (env: NodeJS.ProcessEnv, print: (line: string) => void): Promise<number> {
  const url = env.DATABASE_URL
  if (url === undefined || url === '') {
    print('DATABASE_URL is not set: set it to the database to migrate, e.g. DATABASE_URL=postgres://user:password@host:5432/db npm run postgres:migrate')
    return 1
  }
  const schema = env.DATABASE_SCHEMA === '' ? undefined : env.DATABASE_SCHEMA
  const tablePrefix = env.DATABASE_TABLE_PREFIX
  try {
    const { from, to } = await migrate({ connectionString: url, schema, tablePrefix })
    const where = `schema ${schema ?? 'public'}, table prefix ${tablePrefix ?? 'fsg_'}`
    print(from === to ? `session gateway tables already at version ${to} (${where})` : `session gateway tables migrated from version ${from} to ${to} (${where})`)
    return 0
  } catch (err) {
    print(`migration failed: ${(err as Error).message}`)
    return 1
  }
}

/* c8 ignore next 3: runs only as the npm script, which a test starts as a process of its own */
if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await migrateCommand(process.env, line => { process.stdout.write(`${line}\n`) })
}
