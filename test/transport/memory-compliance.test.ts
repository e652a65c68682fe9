import { transportCompliance } from './compliance.ts';
import { memoryEnv, simMemoryEnv } from './envs.ts';

transportCompliance('memory (real clock)', () => memoryEnv());
transportCompliance('memory (real clock, 3 ms latency)', () => memoryEnv({ latencyMs: 3 }));
transportCompliance('memory (SimClock, 20 ms, 10 MB/s)', simMemoryEnv);
