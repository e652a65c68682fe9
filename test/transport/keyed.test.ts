/** The compliance suite over today's keyed transport (HMAC handshake over TCP); adapt to its replacement at merge. */
import { transportCompliance } from './compliance.ts';
import { keyedTcpEnv } from './envs.ts';

transportCompliance('keyed tcp', keyedTcpEnv);
