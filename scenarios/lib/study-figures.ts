/**
 * The figures of one run of a study: the figures compare.ts reads from a
 * result (join latency, search and topology completion, messages per
 * request, transfer rate, repair time, and every number of the scenario's
 * `summary`), one number each (the median of its samples: one per peer,
 * request or download), named the same in every run of the study: a run's
 * only round is left out of the names (scale's `N=1000 memory` and
 * `N=10000 memory` are both `join`), and so are one-element arrays of the
 * summary (scale's `sizes[N=1000]`).
 */
import { median } from '../../bench/lib/stats.ts';
import { scenarioFigures } from '../compare.ts';
import type { ScenarioResult } from './records.ts';
import type { FigureInfo } from './study-file.ts';


function unwrapSingles(v: unknown): unknown {
  if (Array.isArray(v)) return v.length === 1 && v[0] !== null && typeof v[0] === 'object' ? unwrapSingles(v[0]) : v.map(unwrapSingles);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSingles(x)]));
  return v;
}

/** The run's figures (name → value) and what each is (label, unit, which way is better). */
export function runFigures(r: ScenarioResult): { values: Record<string, number>; info: Record<string, FigureInfo> } {
  const rec = r.records;
  const rounds = new Set([...rec.joins, ...rec.floods, ...rec.transfers, ...rec.repairs].map((x) => x.round));
  const one = rounds.size === 1;
  const strip = <T extends { round: string }>(xs: T[]): T[] => (one ? xs.map((x) => ({ ...x, round: '' })) : xs);
  const norm: ScenarioResult = {
    ...r,
    records: { ...rec, joins: strip(rec.joins), floods: strip(rec.floods), transfers: strip(rec.transfers), repairs: strip(rec.repairs) },
    summary: unwrapSingles(r.summary) as Record<string, unknown>,
  };
  const values: Record<string, number> = {};
  const info: Record<string, FigureInfo> = {};
  for (const f of scenarioFigures(norm)) {
    const id = f.id.replace(/\.{2,}/g, '.').replace(/\.$/, '');
    if (f.samples.length === 0 || id in values) continue;
    values[id] = median(f.samples);
    info[id] = { label: f.label, unit: f.unit, ...(f.better ? { better: f.better } : {}) };
  }
  return { values, info };
}
