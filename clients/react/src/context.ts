import { createContext, useContext } from 'react';
import type { HeraldClient } from '@herald/client';

/** The provider's client; null outside a provider. */
export const HeraldContext = createContext<HeraldClient | null>(null);

/** The HeraldClient of the nearest <HeraldProvider>. Throws outside one. */
export function useHerald(): HeraldClient {
  const c = useContext(HeraldContext);
  if (!c) throw new Error('useHerald: no <HeraldProvider> above this component');
  return c;
}
