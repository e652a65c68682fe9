/**
 * Environments for the transport compliance suite: one factory per
 * transport (TCP, shaped TCP, keyed TCP, memory on the real clock, memory on
 * a SimClock driven in the background).
 */
import { keyedTransport, MemoryNetwork, realClock, SimClock, tcpTransport, DEFAULT_WINDOW_BYTES, type LinkShape, type Transport } from '../../core/index.ts';
import type { TransportEnv } from './compliance.ts';

/** Loopback TCP: kernel buffers (tcp_wmem/tcp_rmem) absorb several MiB before a sender stalls. */
const TCP_MAX_STALL = 48 * 1024 * 1024;
/** Real-time quiet period that counts as "no drain": loopback moves bytes in microseconds. */
const REAL_STALL_MS = 300;

function realEnv(transport: Transport, maxStallBytes: number): TransportEnv {
  return {
    transport,
    host: '127.0.0.1',
    quiet: (ms) => realClock.sleep(ms),
    stallMs: REAL_STALL_MS,
    maxStallBytes,
    close: async () => undefined,
  };
}

export const tcpEnv = (): TransportEnv => realEnv(tcpTransport(), TCP_MAX_STALL);

export const shapedTcpEnv = (): TransportEnv => realEnv(tcpTransport({ shape: { latencyMs: 5, bandwidthBytesPerSec: 200 * 1024 * 1024 } }), TCP_MAX_STALL);

export const keyedTcpEnv = (): TransportEnv => realEnv(keyedTransport(tcpTransport(), 'a'.repeat(64)), TCP_MAX_STALL);

export const memoryEnv = (shape: LinkShape = {}): TransportEnv => {
  const env = realEnv(new MemoryNetwork(shape).transport(), DEFAULT_WINDOW_BYTES + 64 * 1024);
  return { ...env, host: 'm1' };
};

/** Memory links on simulated time, 20 ms latency and 10 MB/s each way; the clock runs in the background. */
export const simMemoryEnv = (): TransportEnv => {
  const clock = new SimClock();
  const net = new MemoryNetwork({ latencyMs: 20, bandwidthBytesPerSec: 10_000_000 }, { clock });
  clock.start();
  return {
    transport: net.transport(),
    host: 'm1',
    quiet: (ms) => clock.sleep(ms),
    stallMs: 10_000,
    maxStallBytes: DEFAULT_WINDOW_BYTES + 64 * 1024,
    close: async () => clock.stop(),
  };
};
