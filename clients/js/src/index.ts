export { HeraldClient } from './client.js';
export { HeraldError } from './errors.js';
export { TypedEmitter } from './emitter.js';
export type { Listener } from './emitter.js';
export { LruSet } from './lru.js';
export { decodeJwtPayload, tokenExpiry } from './jwt.js';
export { fullJitter, reconnectAfterMs } from './backoff.js';
export type {
  ConnectionState,
  Counts,
  EventSourceConstructor,
  EventSourceLike,
  FetchLike,
  HeraldClientOptions,
  HeraldEvents,
  ListQuery,
  LiveEvent,
  Notification,
  NotificationPage,
  Preferences,
  ReadyInfo,
  StateChange,
  StorageLike,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js';
