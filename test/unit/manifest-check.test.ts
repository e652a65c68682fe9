/**
 * checkManifest (issue 22, defect 1): every field of a manifest from the network or a resume file
 * is bounded by what the file's size implies; honest manifests (pieceSizeFor, any minimum piece
 * size up to MAX_MIN_PIECE_BYTES) always pass.
 */
import test from 'ava';
import fc from 'fast-check';
import { checkManifest, MAX_MIN_PIECE_BYTES, pieceCount, pieceSizeFor, type Manifest } from '../../core/transfer/manifest.ts';
import { MAX_PIECES } from '../../core/protocol/messages.ts';

const H = 'a'.repeat(64);
const m = (size: number, pieceSize: number, pieces = Math.ceil(size / pieceSize)): Manifest => ({ name: 'f', size, sha256: H, pieceSize, pieces: Array(pieces).fill(H) });

test('manifests out of the bounds their size implies are refused, with the reason', (t) => {
  for (const [bad, re] of [
    [m(100, 2 ** 40), /piece size 1099511627776 is above/],
    [m(100, 2 ** 29), /piece size 536870912 is too large for a file of 100 bytes/],
    [m(100, 512), /below 1024/],
    [m(100, 1024.5, 1), /below 1024|not/],
    [m(5000, 1024, 4), /4 piece hashes for 5000 bytes .*expected 5/],
    [m(5000, 1024, 6), /6 piece hashes/],
    [m(1024 * (MAX_PIECES + 1), 1024), /more than 512 pieces/],
    [{ ...m(5000, 1024), sha256: 'XYZ' }, /sha256/],
    [{ ...m(5000, 1024), pieces: [H, H, H, H, 'nope'] }, /piece hash 4/],
    [m(-1, 1024, 0), /size -1/],
    [m(2 ** 53, 2 ** 30, 0), /size/],
  ] as const) t.regex(checkManifest(bad as Manifest) ?? 'accepted', re, JSON.stringify({ ...bad, pieces: bad.pieces.length }));
});

test('every honest manifest passes: pieceSizeFor(size, min) for any size up to 256 GiB and minimum piece size up to 64 MiB', (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 38 }), fc.integer({ min: 1, max: MAX_MIN_PIECE_BYTES }), (size, min) => {
    const pieceSize = pieceSizeFor(size, min);
    const ok = checkManifest(m(size, pieceSize, pieceCount({ size, pieceSize })));
    if (ok !== null) throw new Error(`size ${size}, min ${min}: ${ok}`);
  }));
  t.pass();
});
