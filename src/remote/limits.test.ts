import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByteBudget, DEFAULT_LIMITS, clientLimits, fdsNeeded, fitToFds, limitsProblem } from './limits.js';

describe('ByteBudget', () => {
  it('holds a child (read-only clients) to its own limit and to its parent’s', () => {
    const all = new ByteBudget(100);
    const ro = new ByteBudget(50, all);
    assert.equal(ro.tryTake(40), true);
    assert.equal(ro.tryTake(20), false, 'over the child limit');
    assert.deepEqual([ro.used, all.used], [40, 40], 'a refused take takes nothing');
    assert.equal(all.tryTake(61), false, 'the parent counts the child’s bytes');
    assert.equal(all.tryTake(50), true);
    assert.equal(ro.tryTake(10), true, 'the child has room, the parent just enough');
    assert.equal(ro.tryTake(1), false, 'the parent is full though the child is not');
    ro.give(50);
    assert.deepEqual([ro.used, all.used], [0, 50]);
  });
});

describe('serve limits', () => {
  it('fit an open-file limit, keeping a reserve and half of the clients from read-only ones', () => {
    assert.deepEqual(fitToFds(DEFAULT_LIMITS, 65536), DEFAULT_LIMITS);
    const at1024 = fitToFds(DEFAULT_LIMITS, 1024);
    assert.deepEqual([at1024.maxClients, at1024.maxReadonlyClients], [768, 128]);
    const at300 = fitToFds(DEFAULT_LIMITS, 300);
    assert.deepEqual([at300.maxClients, at300.maxReadonlyClients], [44, 22]);
    assert.equal(fdsNeeded(DEFAULT_LIMITS), 8192, 'as libvirtd.service asks (LimitNOFILE=8192)');
  });

  it('keep read-only clients below the total, so root always has slots and bytes', () => {
    assert.equal(limitsProblem(DEFAULT_LIMITS), undefined);
    assert.match(limitsProblem({ ...DEFAULT_LIMITS, maxReadonlyClients: 5000 }) ?? '', /below maxClients/);
    assert.match(limitsProblem({ ...DEFAULT_LIMITS, maxReadonlyBufferedBytes: 1 << 30 }) ?? '', /below maxBufferedBytes/);
    assert.match(limitsProblem({ ...DEFAULT_LIMITS, maxClients: 0, maxReadonlyClients: 0 }) ?? '', /at least 1/);
  });

  it('give read-only clients a frame limit of 1 MiB and read-write ones libvirt’s 32 MiB', () => {
    assert.equal(clientLimits(DEFAULT_LIMITS, true).frameMax, 1024 * 1024);
    assert.equal(clientLimits(DEFAULT_LIMITS, false).frameMax, 32 * 1024 * 1024);
  });
});
