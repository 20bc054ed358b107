/** The host <-> target protocol: message schema, codec, framing, connection, server and client. */
export * from './limits.js';
export * from './messages.js';
export * from './codec.js';
export * from './framing.js';
export * from './errors.js';
export * from './connection.js';
export * from './requests.js';
export * from './server.js';
export * from './client.js';
export { IpcSchemaError, type SchemaErrorCode } from './schema.js';
