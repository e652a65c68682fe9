/** The peer lifecycle state machine (core/peer/lifecycle.ts, issue 12.1). */
import test from 'ava';
import { Lifecycle, type LifeEvent, type LifeState } from '../../core/peer/lifecycle.ts';

const walk = (...evs: LifeEvent[]) => {
  const l = new Lifecycle();
  for (const e of evs) l.to(e);
  return l;
};

test('join, lose the parent, reattach: the derived flags follow', (t) => {
  const seen: [LifeState, LifeState, LifeEvent][] = [];
  const l = new Lifecycle((from, to, ev) => seen.push([from, to, ev]));
  t.deepEqual([l.state, l.joined, l.inTree, l.stopping], ['idle', false, false, false]);
  l.to('joined');
  t.deepEqual([l.state, l.joined, l.inTree, l.stopping], ['attached', true, true, false]);
  l.to('parent-lost');
  t.deepEqual([l.state, l.joined, l.inTree, l.rejoining], ['orphaned', true, false, false]);
  l.to('reattach');
  t.deepEqual([l.state, l.joined, l.inTree, l.rejoining], ['rejoining', true, false, true]);
  l.to('attached');
  t.deepEqual([l.state, l.inTree], ['attached', true]);
  t.deepEqual(seen.map(([, to]) => to), ['attached', 'orphaned', 'rejoining', 'attached']);
});

test('a root merging into a bigger tree goes straight to rejoining', (t) => {
  const l = walk('joined', 'reattach');
  t.is(l.state, 'rejoining');
  t.false(l.inTree);
});

test('leave: joined while leaving, not once left; a hand-off only while leaving', (t) => {
  const l = walk('joined');
  t.throws(() => l.setHandoff(null), { message: /only while leaving/ });
  l.to('leave');
  t.deepEqual([l.state, l.joined, l.inTree, l.stopping], ['leaving', true, false, true]);
  l.setHandoff({ id: 'P1', host: '127.0.0.1', port: 1 });
  t.is(l.handoff?.id, 'P1');
  l.to('stop'); // leave() stops the peer itself: the state stays leaving
  t.is(l.state, 'leaving');
  l.to('left');
  t.deepEqual([l.state, l.joined, l.stopping], ['left', false, true]);
  // A peer that never joined leaves without ever having been joined.
  const idle = walk('leave');
  t.false(idle.joined);
});

test('stop keeps whether the peer was joined (state() reports it), and is terminal', (t) => {
  const l = walk('joined', 'parent-lost', 'stop');
  t.deepEqual([l.state, l.joined, l.stopping, l.inTree], ['stopped', true, true, false]);
  t.false(walk('stop').joined);
  for (const ev of ['joined', 'parent-lost', 'reattach', 'attached', 'leave', 'left'] as const) {
    t.false(l.can(ev), ev);
    t.throws(() => l.to(ev), { code: 'internal' } as never, ev);
  }
  l.to('stop');
  t.is(l.state, 'stopped');
});

test('illegal transitions throw and leave the state alone', (t) => {
  const l = new Lifecycle();
  t.throws(() => l.to('parent-lost'), { message: /"parent-lost" is not allowed in state idle/ });
  t.throws(() => l.to('attached'), { message: /not allowed in state idle/ });
  t.throws(() => l.to('left'), { message: /not allowed in state idle/ });
  t.is(l.state, 'idle');
  l.to('joined');
  t.throws(() => l.to('joined'), { message: /not allowed in state attached/ });
  t.is(l.state, 'attached');
});
