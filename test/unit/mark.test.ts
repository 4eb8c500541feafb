import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyMark, formatMarkSpec, parseMarkSpec } from '../../src/verdict/mark';

describe('repeat mark', () => {
  it('sets the masked bits and keeps the others', () => {
    assert.equal(applyMark(0, { value: 1, mask: 1 }), 1);
    assert.equal(applyMark(0xf0, { value: 1, mask: 1 }), 0xf1);
    assert.equal(applyMark(0xffffffff, { value: 0x100, mask: 0xff00 }), 0xffff01ff);
    assert.equal(applyMark(0x80000000, { value: 0x2, mask: 0x2 }), 0x80000002, 'stays unsigned');
  });

  it('parses VALUE/MASK in hex and decimal', () => {
    assert.deepEqual(parseMarkSpec('0x1/0x1'), { value: 1, mask: 1 });
    assert.deepEqual(parseMarkSpec('256/0xff00'), { value: 256, mask: 0xff00 });
    assert.deepEqual(parseMarkSpec('0x80000000/0x80000000'), { value: 0x80000000, mask: 0x80000000 });
    assert.equal(formatMarkSpec({ value: 0x10, mask: 0x30 }), '0x10/0x30');
  });

  it('rejects marks that cannot work', () => {
    assert.throws(() => parseMarkSpec('zz'), /expected VALUE\/MASK/);
    assert.throws(() => parseMarkSpec('0x1/0x0'), /mask must not be 0/);
    assert.throws(() => parseMarkSpec('0x3/0x1'), /bits outside the mask/);
    assert.throws(() => parseMarkSpec('0x0/0x1'), /at least one bit/);
    assert.throws(() => parseMarkSpec('0x1ffffffff/0x1'), /expected VALUE\/MASK|32 bits/);
  });
});
