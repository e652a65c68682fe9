import { measureScale } from './macro/registry-scale.ts';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const m = await measureScale(100, 100_000, Number(process.argv[2] ?? 10));
console.log(`small ${median(m.small).toFixed(0)} big ${median(m.big).toFixed(0)} ratio ${(median(m.big) / median(m.small)).toFixed(3)} build ${m.buildMs.toFixed(0)}`);
