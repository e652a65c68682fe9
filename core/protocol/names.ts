/**
 * File-name rules of the share jail (pure). A name is served or accepted only
 * when it names a file directly inside a share folder: no path separators,
 * no `..`, no NUL or control characters, not absolute, not empty, at most 255
 * UTF-8 bytes, well-formed Unicode (no lone surrogates: they all encode to
 * U+FFFD in UTF-8, so two such names would alias one file on disk), not hidden (leading `.`, which also keeps temporary download
 * files out of reach), and not ending in a dot or space (Windows look-alikes).
 */
export const MAX_NAME_BYTES = 255;

/** The last name accepted: a search asks every peer of a process (the memory runner) about the same name. */
let lastAccepted = '';
const ACCEPTED = { ok: true } as const;

export function checkFileName(name: unknown): { ok: true } | { ok: false; reason: string } {
  if (name === lastAccepted && name !== '') return ACCEPTED;
  const r = checkFileNameOnce(name);
  if (r.ok) lastAccepted = name as string;
  return r;
}

function checkFileNameOnce(name: unknown): { ok: true } | { ok: false; reason: string } {
  if (typeof name !== 'string') return { ok: false, reason: 'file name must be a string' };
  if (name.length === 0) return { ok: false, reason: 'file name is empty' };
  // Before the byte count: lone surrogates are counted as 3 bytes of U+FFFD.
  if (!(name as unknown as { isWellFormed(): boolean }).isWellFormed()) return { ok: false, reason: 'file name is not well-formed Unicode (lone surrogate)' };
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return { ok: false, reason: `file name is longer than ${MAX_NAME_BYTES} bytes` };
  if (name.includes('/') || name.includes('\\')) return { ok: false, reason: 'file name must not contain / or \\' };
  if (name.includes('..')) return { ok: false, reason: 'file name must not contain ..' };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return { ok: false, reason: 'file name must not contain NUL or control characters' };
  if (/^[A-Za-z]:/.test(name)) return { ok: false, reason: 'file name must not be an absolute path' };
  if (name.startsWith('.')) return { ok: false, reason: 'hidden file names (leading ".") are not shared' };
  if (/[. ]$/.test(name) || /^\s/.test(name)) return { ok: false, reason: 'file name must not start with a space or end with a dot or space' };
  if (name.normalize('NFC') !== name) return { ok: false, reason: 'file name must be in Unicode NFC form' };
  if (/[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]/.test(name)) return { ok: false, reason: 'file name must not contain invisible or bidi control characters' };
  return ACCEPTED;
}
