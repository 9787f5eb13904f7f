import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  glibcHasHugetlbTunable, hugePagesFrom, hugePagesRelaunchEnv, hugetlbTunable, runtimeGlibcVersion, thpMode,
} from '../../src/util/huge-pages.ts';

const ALWAYS = '[always] madvise never\n';
const MADVISE = 'always [madvise] never\n';
const NEVER = 'always madvise [never]\n';
const throwing = (): never => {
  throw new Error('asked for a fact the decision does not need');
};

test('thpMode: the bracketed word of the enabled file', () => {
  assert.equal(thpMode(ALWAYS), 'always');
  assert.equal(thpMode(MADVISE), 'madvise');
  assert.equal(thpMode(NEVER), 'never');
  assert.equal(thpMode(''), undefined);
});

test('glibcHasHugetlbTunable: glibc 2.35 and later', () => {
  assert.equal(glibcHasHugetlbTunable('2.34'), false);
  assert.equal(glibcHasHugetlbTunable('2.35'), true);
  assert.equal(glibcHasHugetlbTunable('2.36'), true);
  assert.equal(glibcHasHugetlbTunable('2.4'), false);
  assert.equal(glibcHasHugetlbTunable('2.100'), true);
  assert.equal(glibcHasHugetlbTunable('3.0'), true);
  assert.equal(glibcHasHugetlbTunable('1.99'), false);
  assert.equal(glibcHasHugetlbTunable(undefined), false);
  assert.equal(glibcHasHugetlbTunable('unknown'), false);
});

test('hugetlbTunable: the last glibc.malloc.hugetlb entry of GLIBC_TUNABLES', () => {
  assert.equal(hugetlbTunable(undefined), undefined);
  assert.equal(hugetlbTunable(''), undefined);
  assert.equal(hugetlbTunable('glibc.malloc.arena_max=2'), undefined);
  assert.equal(hugetlbTunable('glibc.malloc.hugetlb=0'), '0');
  assert.equal(hugetlbTunable('glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1'), '1');
  assert.equal(hugetlbTunable('glibc.malloc.hugetlb=1:glibc.malloc.hugetlb=0'), '0');
  // A longer name that starts the same is another tunable.
  assert.equal(hugetlbTunable('glibc.malloc.hugetlbx=1'), undefined);
});

test('hugePagesFrom: THP always, or madvise with glibc.malloc.hugetlb=1 on glibc ≥ 2.35', () => {
  assert.equal(hugePagesFrom(ALWAYS, undefined, throwing), true);
  assert.equal(hugePagesFrom(MADVISE, undefined, '2.36'), false);
  assert.equal(hugePagesFrom(MADVISE, 'glibc.malloc.hugetlb=1', '2.36'), true);
  assert.equal(hugePagesFrom(MADVISE, 'glibc.malloc.hugetlb=1', '2.35'), true);
  assert.equal(hugePagesFrom(MADVISE, 'glibc.malloc.hugetlb=1', '2.34'), false);
  assert.equal(hugePagesFrom(MADVISE, 'glibc.malloc.hugetlb=1', undefined), false);
  assert.equal(hugePagesFrom(MADVISE, 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1', '2.36'), true);
  assert.equal(hugePagesFrom(MADVISE, 'glibc.malloc.hugetlb=0', throwing), false);
  assert.equal(hugePagesFrom(MADVISE, 'glibc.malloc.hugetlb=2', throwing), false);
  assert.equal(hugePagesFrom(NEVER, 'glibc.malloc.hugetlb=1', throwing), false);
  assert.equal(hugePagesFrom('', 'glibc.malloc.hugetlb=1', throwing), false);
});

test('hugePagesRelaunchEnv: madvise, glibc ≥ 2.35, no hugetlb tunable yet → the tunable and the relaunch mark added', () => {
  const env = { PATH: '/usr/bin', HOME: '/home/u' };
  assert.deepEqual(hugePagesRelaunchEnv(env, MADVISE, '2.36', 'linux'),
    { PATH: '/usr/bin', HOME: '/home/u', GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1', CREPE_RELAUNCHED: '1' });
  assert.deepEqual(hugePagesRelaunchEnv({}, MADVISE, '2.35', 'linux'), { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1', CREPE_RELAUNCHED: '1' });
  // The caller's environment object is left as it was.
  assert.deepEqual(env, { PATH: '/usr/bin', HOME: '/home/u' });
  // The user's other tunables stay, the new one after them.
  assert.deepEqual(hugePagesRelaunchEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }, MADVISE, '2.36', 'linux'),
    { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1', CREPE_RELAUNCHED: '1' });
  // Opt-out values other than 0/off/false (and an empty one) do not opt out.
  assert.notEqual(hugePagesRelaunchEnv({ CREPE_HUGE_PAGES: '1' }, MADVISE, '2.36', 'linux'), null);
  assert.notEqual(hugePagesRelaunchEnv({ CREPE_HUGE_PAGES: '' }, MADVISE, '2.36', 'linux'), null);
  assert.notEqual(hugePagesRelaunchEnv({ CREPE_HUGE_PAGES: 'on' }, MADVISE, '2.36', 'linux'), null);
});

test('hugePagesRelaunchEnv: no relaunch for other THP modes, an old or unknown glibc, another system', () => {
  assert.equal(hugePagesRelaunchEnv({}, ALWAYS, throwing, 'linux'), null, 'always: huge pages already');
  assert.equal(hugePagesRelaunchEnv({}, NEVER, throwing, 'linux'), null);
  assert.equal(hugePagesRelaunchEnv({}, '', throwing, 'linux'), null, 'no THP interface');
  assert.equal(hugePagesRelaunchEnv({}, MADVISE, '2.34', 'linux'), null);
  assert.equal(hugePagesRelaunchEnv({}, MADVISE, undefined, 'linux'), null, 'musl or unknown C library');
  assert.equal(hugePagesRelaunchEnv({}, throwing, throwing, 'darwin'), null);
  assert.equal(hugePagesRelaunchEnv({}, throwing, throwing, 'win32'), null);
});

test('hugePagesRelaunchEnv: a user\'s own hugetlb setting, the opt-out and the relaunched child run in this process', () => {
  assert.equal(hugePagesRelaunchEnv({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }, throwing, throwing, 'linux'), null);
  assert.equal(hugePagesRelaunchEnv({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' }, throwing, throwing, 'linux'), null);
  assert.equal(hugePagesRelaunchEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2' }, throwing, throwing, 'linux'), null);
  for (const value of ['0', 'off', 'false', 'OFF', 'False', ' 0 ']) {
    assert.equal(hugePagesRelaunchEnv({ CREPE_HUGE_PAGES: value }, throwing, throwing, 'linux'), null, `CREPE_HUGE_PAGES=${value}`);
  }
  assert.equal(hugePagesRelaunchEnv({ CREPE_RELAUNCHED: '1' }, throwing, throwing, 'linux'), null);
});

test('runtimeGlibcVersion: a version string on glibc Linux, undefined elsewhere', () => {
  const version = runtimeGlibcVersion();
  const header = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header;
  assert.equal(version, header.glibcVersionRuntime);
  if (version !== undefined) assert.match(version, /^\d+\.\d+/);
});
