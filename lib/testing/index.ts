// `fastify-session-gateway/testing`: helpers for people who build on the package.
export { storeContract, type StoreContractOptions } from './store-contract.js'
export { sessionLogContract, type SessionLogContractOptions } from './session-log-contract.js'
export { connectClient, type TestClientOptions } from './client.js'
