/** Every workflow this project registers; the worker bundle is built from this file. */
export { usageIntegration } from './usage-integration.js';
export { usageDispatch } from './usage-dispatch.js';
export { reaper } from './reaper.js';
