import type { Frame } from './protocol.js';

/**
 * SSE_FRAMES maps the event stream's event names to the WebSocket frames
 * they carry, so both transports go through one frame handler
 * (docs/protocol.md, "Server-Sent Events"). `close` is handled apart.
 */
export const SSE_FRAMES: ReadonlyArray<[string, (d: Record<string, unknown>) => Frame]> = [
  ['ready', (d) => ({ ...d, type: 'ready' })],
  ['notification', (d) => ({ type: 'notification', notification: d })],
  ['read', (d) => ({ ...d, type: 'notification:read' })],
  ['deleted', (d) => ({ ...d, type: 'notification:deleted' })],
  ['unread', (d) => ({ ...d, type: 'unread' })],
  ['archived', (d) => ({ ...d, type: 'notification:archived' })],
  ['unarchived', (d) => ({ ...d, type: 'notification:unarchived' })],
  ['preferences', (d) => ({ ...d, type: 'preferences' })],
  ['resync', (d) => ({ ...d, type: 'resync' })],
  ['event', (d) => ({ type: 'event', event: d })],
];

/**
 * parseEventData parses an event's data: the object it holds, null for
 * JSON that is not an object (ignored), undefined when unparsable.
 */
export function parseEventData(data: unknown): Record<string, unknown> | null | undefined {
  let d: unknown;
  try {
    d = JSON.parse(String(data));
  } catch {
    return undefined;
  }
  return d && typeof d === 'object' ? (d as Record<string, unknown>) : null;
}
