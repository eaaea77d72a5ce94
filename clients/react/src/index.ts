export { HeraldProvider } from './provider.js';
export type { HeraldProviderProps } from './provider.js';
export { useHerald } from './context.js';
export { useConnectionState, useNotifications, useUnreadCount } from './hooks.js';
export type { NotificationsState, UseNotificationsOptions } from './hooks.js';
export type { ConnectionState, Notification } from '@herald/client';
