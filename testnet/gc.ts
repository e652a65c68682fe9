/**
 * A full garbage collection on demand, for heap figures that do not depend on
 * when V8 last collected (scenarios' memory per peer, benches' fair halves).
 */
import v8 from 'node:v8';
import vm from 'node:vm';

let gcFn: (() => void) | null | undefined;

/** A real GC when the engine lets us expose it, so heap deltas are stable. */
export function forceGc(): boolean {
  if (gcFn === undefined) {
    try {
      v8.setFlagsFromString('--expose-gc');
      gcFn = vm.runInNewContext('gc') as () => void;
    } catch {
      gcFn = null;
    }
  }
  if (!gcFn) return false;
  gcFn();
  gcFn();
  return true;
}
