/**
 * A bounded set that forgets its least recently used entries. The client
 * uses it to drop notifications it has already delivered.
 */
export class LruSet {
  #max: number;
  #map = new Map<string, true>();

  constructor(max: number) {
    this.#max = Math.max(1, Math.floor(max));
  }

  get size(): number {
    return this.#map.size;
  }

  has(key: string): boolean {
    return this.#map.has(key);
  }

  /** Adds key (or marks it as most recently used) and evicts beyond the bound. */
  add(key: string): void {
    this.#map.delete(key);
    this.#map.set(key, true);
    while (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value as string;
      this.#map.delete(oldest);
    }
  }

  clear(): void {
    this.#map.clear();
  }
}
