/** Fuzzing budget: fixed seed and a small run count in CI; `npm run fuzz` runs long. */
export const FUZZ_SEED = Number(process.env.FUZZ_SEED ?? 20261125);
export const FUZZ_RUNS = Number(process.env.FUZZ_RUNS ?? 300);
/** Server fuzzing opens sockets per run, so it gets a smaller share of the budget. */
export const FUZZ_SERVER_RUNS = Math.max(20, Math.floor(FUZZ_RUNS / 6));
/** Registry model interleavings (in-process): FUZZ_RUNS in npm test; under `npm run fuzz` at least 10,000. */
export const FUZZ_MODEL_RUNS = FUZZ_RUNS >= 10_000 ? Math.max(10_000, Math.floor(FUZZ_RUNS / 10)) : FUZZ_RUNS;
