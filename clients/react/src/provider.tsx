import { useEffect, useRef, useState, type ReactNode } from 'react';
import { HeraldClient, type HeraldClientOptions } from '@herald/client';

import { HeraldContext } from './context.js';

export type HeraldProviderProps =
  | { client: HeraldClient; children?: ReactNode }
  | (HeraldClientOptions & { client?: undefined; children?: ReactNode });

/**
 * Makes a HeraldClient available to the hooks below it.
 *
 * - With options (`url`, `getToken`, `storage`, … as for HeraldClient), the
 *   provider creates the client once, connects it on mount and closes it on
 *   unmount. `getToken` is read through a ref, so an inline function is
 *   fine; the other options are read once (give the provider a `key` to
 *   start over with new ones, e.g. the user id).
 * - With `client`, it only provides that client: connecting and closing it
 *   stay with you.
 */
export function HeraldProvider(props: HeraldProviderProps) {
  const getToken = useRef(props.client ? undefined : props.getToken);
  getToken.current = props.client ? undefined : props.getToken;
  const [owned] = useState(() => {
    if (props.client) return null;
    const { children: _children, client: _client, getToken: gt, ...options } = props;
    return new HeraldClient({ ...options, ...(gt && { getToken: () => getToken.current!() }) });
  });
  useEffect(() => {
    if (!owned) return;
    void owned.connect();
    return () => owned.close(); // a remount (StrictMode) connects again
  }, [owned]);
  return <HeraldContext.Provider value={props.client ?? owned}>{props.children}</HeraldContext.Provider>;
}
