/** The offload target: the sans-I/O core and the service that binds it to a link and the IPC socket. */
export { TargetCore, DEFAULT_LIMITS, type TargetCoreOptions, type TargetCounters, type TargetLimits } from './core.js';
export { OffloadedConnection, DEFAULT_PARAMETERS, type TargetParameters } from './offloaded-connection.js';
export {
  startTargetService,
  type TargetService, type TargetServiceOptions, type TargetStatus, type ServiceCounters, type ConnectionRow, type ShutdownResult,
} from './service.js';
