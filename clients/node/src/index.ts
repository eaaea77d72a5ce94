export { Herald } from './herald.js';
export { HeraldError, parseRetryAfter } from './errors.js';
export type { HeraldErrorCode } from './errors.js';
export type { Audience, CallOptions, HeraldOptions, LiveEvent, Notification, RetryOptions } from './types.js';
