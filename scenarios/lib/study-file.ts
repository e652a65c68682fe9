/**
 * The study file (results/<scenario>-study-<time>.json): its schema, read
 * back and validated (zod) by --resume and compare.ts, and what a run's
 * process hands back (study-worker.ts). The runner is study.ts.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { readJsonFile } from './json-file.ts';

const num = z.number();
const figureStatsSchema = z.object({ n: num, median: num, mean: num, sd: num, ci95: z.tuple([num, num]), method: z.string(), meanCi95: z.tuple([num, num]).nullable() });
const tableSchema = z.object({ title: z.string(), head: z.array(z.string()), rows: z.array(z.array(z.string())), note: z.string().optional() });
const runSchema = z.object({
  rep: z.number().int().min(0),
  seed: z.number().int().min(0).max(2 ** 32 - 1),
  argv: z.array(z.string()),
  command: z.string(),
  ok: z.boolean(),
  failures: z.array(z.string()),
  error: z.string().optional(),
  simDigest: z.string().nullable(),
  durationMs: z.number().nullable(),
  wallMs: z.number().nullable(),
  figures: z.record(z.string(), num),
  summary: z.record(z.string(), z.unknown()),
  tables: z.array(tableSchema),
});
const paramsSchema = z.record(z.string(), z.union([z.string(), num]));
const studySchema = z.object({
  kind: z.literal('treeshare-study'),
  version: z.literal(1),
  scenario: z.string(),
  command: z.string(),
  startedAt: z.string(),
  updatedAt: z.string(),
  finished: z.boolean(),
  ok: z.boolean(),
  seed: z.number().int().min(0).max(2 ** 32 - 1),
  repeat: z.number().int().min(1),
  sweeps: z.array(z.object({ name: z.string(), values: z.array(z.string()) })),
  base: z.array(z.string()),
  method: z.record(z.string(), z.string()),
  counts: z.object({ runs: z.number(), done: z.number(), failed: z.number() }),
  figureInfo: z.record(z.string(), z.object({ label: z.string(), unit: z.string(), better: z.enum(['higher', 'lower']).optional() })),
  points: z.array(z.object({ key: z.string(), params: paramsSchema, runs: z.array(runSchema), figures: z.record(z.string(), figureStatsSchema) })),
  files: z.object({ json: z.string().optional(), html: z.string().optional() }),
});

export type StudyRun = z.infer<typeof runSchema>;
/** What a figure is: label, unit, which way is better (compare.ts's judgement from its name). */
export type FigureInfo = Study['figureInfo'][string];
export type Study = z.infer<typeof studySchema>;
export type StudyPoint = Study['points'][number];

/** What the worker writes: the run (without rep and command, which the study knows) and its figures' descriptions. */
export interface WorkerOutput {
  run: Omit<StudyRun, 'rep' | 'argv' | 'command'>;
  figureInfo: Record<string, FigureInfo>;
}

export const workerSchema = z.object({
  run: runSchema.omit({ rep: true, argv: true, command: true }),
  figureInfo: studySchema.shape.figureInfo,
});

/**
 * A figure of the machine rather than of the overlay: wall or CPU time, heap
 * or RSS (records.ts leaves the same out of simDigest: WALL_FIELDS). Under
 * the memory runner they move with what else the machine does.
 */
export function isMachineFigure(name: string): boolean {
  return /wallMs|cpuMs|rss|heap|(^|\.)memory\./i.test(name);
}

export class StudyFileError extends Error {}

/** Reads and validates a study file (throws StudyFileError with one clear line). */
export function loadStudy(file: string): Study {
  const r = studySchema.safeParse(readJsonFile(file, (m) => new StudyFileError(m)));
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new StudyFileError(`${file} is not a study file: ${i.path.join('.') || '(top)'}: ${i.message}`);
  }
  return r.data;
}

/** True when the JSON file looks like a study (kind "treeshare-study"); false for anything else, unreadable included. */
export function isStudyFile(file: string): boolean {
  try {
    return /"kind"\s*:\s*"treeshare-study"/.test(fs.readFileSync(file, 'utf8').slice(0, 200));
  } catch {
    return false;
  }
}
