import { transportCompliance } from './compliance.ts';
import { shapedTcpEnv, tcpEnv } from './envs.ts';

transportCompliance('tcp', tcpEnv);
transportCompliance('shaped tcp (5 ms, 200 MiB/s)', shapedTcpEnv);
