// `fastify-session-gateway/postgres`: sessions in PostgreSQL (needs the `pg` package).
export { PostgresStore, type PostgresStoreOptions } from './store.js'
export { migrate, SCHEMA_VERSION, type MigrateResult } from './schema.js'
export type { PgPool, PgPoolClient, PgQueryable, PgResult, PostgresConnectionOptions } from './connection.js'
