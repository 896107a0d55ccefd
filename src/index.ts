/**
 * The package's public entry point, for programs that embed the gateway instead of
 * running its binary (the bundled demo does: demo/stack.ts).
 *
 * @example
 * import { loadConfig, startGateway } from 'mfa-gateway';
 * const gateway = await startGateway(loadConfig('gateway.yaml'));
 * process.on('SIGTERM', () => gateway.close().then(() => process.exit(0)));
 *
 * @example Reloadable: the file and its effective settings, then gateway.reload('SIGHUP') on SIGHUP
 * const loaded = loadConfigFile('gateway.yaml');
 * const gateway = await startGateway(loaded.config, { source: { file: 'gateway.yaml', effective: loaded.effective } });
 */
export { startGateway, type GatewayHandle, type GatewayOptions } from './gateway.js';
export { compileConfig, loadConfig, loadConfigFile, readConfigFile, ConfigError, formatProblem, type ConfigProblem, type LoadedConfig } from './config/load.js';
export type { ReloadResult, ConfigChanges } from './reload.js';
export type { CompiledConfig } from './config/state.js';
export { parseDuration } from './config/duration.js';
export { createLogger, type Logger } from './observe/log.js';
