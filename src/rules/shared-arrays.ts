// Moves the typed arrays of a plain data tree into one SharedArrayBuffer.
// Posting the result to a worker then copies only the tree's few objects and
// numbers: every array arrives as a view of the same memory, so the cost does
// not grow with the arrays' size (a rule set's indexes are megabytes).

type TypedArray = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;
type TypedArrayConstructor = new (buffer: SharedArrayBuffer, byteOffset: number, length: number) => TypedArray;

function isTypedArray(x: unknown): x is TypedArray {
  return ArrayBuffer.isView(x) && !(x instanceof DataView) && !(x instanceof BigInt64Array) && !(x instanceof BigUint64Array);
}

function isPlain(x: object): boolean {
  const proto = Object.getPrototypeOf(x) as unknown;
  return proto === Object.prototype || proto === null || Array.isArray(x);
}

function collect(x: unknown, out: Set<TypedArray>): void {
  if (x === null || typeof x !== 'object') return;
  if (isTypedArray(x)) {
    out.add(x);
    return;
  }
  if (!isPlain(x)) throw new TypeError(`cannot share a ${Object.prototype.toString.call(x)}: plain objects, arrays and typed arrays only`);
  for (const v of Object.values(x)) collect(v, out);
}

function rebuild(x: unknown, copies: Map<TypedArray, TypedArray>): unknown {
  if (x === null || typeof x !== 'object') return x;
  if (isTypedArray(x)) return copies.get(x);
  if (Array.isArray(x)) return Object.freeze(x.map((v) => rebuild(v, copies)));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) out[k] = rebuild(v, copies);
  return Object.freeze(out);
}

/**
 * A frozen copy of `root` whose typed arrays are views of one
 * SharedArrayBuffer (an array met twice stays one array): a new one, or the
 * one `area` gives for the bytes needed. Nothing writes to the views while
 * another thread may read them: readers rely on that, not on a lock
 * (shared-area-pool.ts says when an area may be written again).
 */
export function intoSharedMemory<T>(root: T, area: (bytes: number) => SharedArrayBuffer = (bytes) => new SharedArrayBuffer(bytes)): T {
  const found = new Set<TypedArray>();
  collect(root, found);
  const arrays = Array.from(found);
  let bytes = 0;
  const offsets = arrays.map((a) => {
    const at = Math.ceil(bytes / 8) * 8;
    bytes = at + a.byteLength;
    return at;
  });
  const need = Math.max(8, bytes);
  const sab = area(need);
  if (sab.byteLength < need) throw new RangeError(`shared area of ${sab.byteLength} bytes, ${need} needed`);
  const copies = new Map<TypedArray, TypedArray>();
  arrays.forEach((a, k) => {
    const copy = new (a.constructor as TypedArrayConstructor)(sab, offsets[k], a.length);
    copy.set(a);
    copies.set(a, copy);
  });
  return rebuild(root, copies) as T;
}
