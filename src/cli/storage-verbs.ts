/** The pool-* and vol-* verbs (loaded on demand) and the net/pool verbs a running serve is told of. */
import type { ParsedArgs } from './args.js';

type Loader = () => Promise<{ run: (args: ParsedArgs) => Promise<number> }>;

const pool =
  (name: string): Loader =>
  () =>
    import('./commands/pool.js').then((m) => ({ run: m[name as keyof typeof m] as (a: ParsedArgs) => Promise<number> }));
const vol =
  (name: string): Loader =>
  () =>
    import('./commands/vol.js').then((m) => ({ run: m[name as keyof typeof m] as (a: ParsedArgs) => Promise<number> }));

export const STORAGE_VERBS: Record<string, Loader> = {
  'pool-list': pool('runPoolList'),
  'pool-info': pool('runPoolInfo'),
  'pool-dumpxml': pool('runPoolDumpxml'),
  'pool-define': pool('runPoolDefine'),
  'pool-define-as': pool('runPoolDefineAs'),
  'pool-build': pool('runPoolBuild'),
  'pool-start': pool('runPoolStart'),
  'pool-destroy': pool('runPoolDestroy'),
  'pool-delete': pool('runPoolDelete'),
  'pool-undefine': pool('runPoolUndefine'),
  'pool-refresh': pool('runPoolRefresh'),
  'pool-autostart': pool('runPoolAutostart'),
  'vol-list': vol('runVolList'),
  'vol-info': vol('runVolInfo'),
  'vol-dumpxml': vol('runVolDumpxml'),
  'vol-path': vol('runVolPath'),
  'vol-create': vol('runVolCreate'),
  'vol-create-as': vol('runVolCreateAs'),
  'vol-clone': vol('runVolClone'),
  'vol-delete': vol('runVolDelete'),
  'vol-resize': vol('runVolResize'),
  'vol-upload': vol('runVolUpload'),
  'vol-download': vol('runVolDownload'),
};

/** Network and pool changes: serve's clients get network and pool lifecycle events. */
export const STORAGE_CHANGING_VERBS: readonly string[] = [
  'net-define',
  'net-undefine',
  'net-start',
  'net-destroy',
  'pool-define',
  'pool-define-as',
  'pool-start',
  'pool-destroy',
  'pool-undefine',
];

export const STORAGE_USAGE = `  pool-define FILE | pool-define-as NAME dir --target PATH | pool-build | pool-start [--build] | pool-destroy
  pool-delete | pool-undefine | pool-refresh | pool-autostart [--disable] | pool-list [--all] | pool-info | pool-dumpxml POOL
  vol-create-as POOL NAME SIZE [--format raw|qcow2] | vol-create POOL FILE | vol-list POOL
  vol-info | vol-dumpxml | vol-path | vol-delete VOL [--pool POOL] | vol-clone VOL NEWNAME --pool POOL
  vol-resize VOL SIZE [--delta] [--shrink] | vol-upload VOL FILE | vol-download VOL FILE [--pool POOL] [--offset N] [--length N]
                                    storage pools (directories) and volumes (raw, qcow2): docs/storage.md`;
