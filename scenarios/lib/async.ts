/** Small async helpers of the harness: a bounded pool, and waiting for one peer event. */
import type { PeerHandle, PeerHandleEvents } from './runner.ts';

/** Runs `fn` over `items`, at most `n` at a time; rejects on the first failure (after the running ones settle). */
export async function pool<T, R>(items: readonly T[], n: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed !== undefined) throw failed;
  return out;
}

/** The next `event` of a peer handle satisfying `pred`; rejects after timeoutMs or if the peer exits. */
export function waitEvent<E extends 'repaired' | 'child-joined' | 'child-left' | 'parent-lost'>(
  h: PeerHandle, event: E, pred: (a: PeerHandleEvents[E][0]) => boolean, timeoutMs: number, what: string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const on = (a: PeerHandleEvents[E][0]) => {
      if (pred(a)) (done(), resolve());
    };
    const onExit = () => (done(), reject(new Error(`${h.id} exited while waiting for ${what}`)));
    const done = () => {
      clearTimeout(t);
      h.off(event, on as never);
      h.off('exit', onExit);
    };
    const t = setTimeout(() => (done(), reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))), timeoutMs);
    h.on(event, on as never);
    h.once('exit', onExit);
  });
}
