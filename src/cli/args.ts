import { SvirtError } from '../errors.js';

export interface ParsedArgs {
  readonly stateDir?: string;
  readonly securityDriver?: string;
  readonly json: boolean;
  readonly command?: string;
  /** Positional arguments after the command. */
  readonly positional: readonly string[];
  /** `--flag` without a value. */
  readonly flags: ReadonlySet<string>;
  /** `--opt VALUE` or `--opt=VALUE`. */
  readonly options: ReadonlyMap<string, string>;
}

/** Options that take a value, anywhere on the line. Everything else starting with -- is a flag. */
const VALUED = new Set([
  'state-dir',
  'security-driver',
  'driver',
  'mode',
  'timeout',
  'type',
  'stacks',
  'rows',
  'target',
  'file',
  'subdriver',
  'targetbus',
  'source',
  'socket',
  'max-clients',
  'max-readonly-clients',
  'idle-timeout',
  'mac',
  'model',
  'devname',
  'screen',
  'guest',
  // pool-* and vol-* (src/cli/commands/pool.ts, vol.ts)
  'pool',
  'format',
  'offset',
  'length',
  'allocation',
  'since',
  'limit',
  'codeset',
  'holdtime',
  'key',
  'set',
  'time',
  'audit-log',
  'migrateuri',
  'listen-address',
  'xml',
  // serve --listen tls (src/cli/commands/serve.ts)
  'listen',
  'port',
  'tls-dir',
  'ca-file',
  'cert-file',
  'key-file',
  'crl-file',
  'handshake-timeout',
]);

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const positional: string[] = [];
  const flags = new Set<string>();
  const options = new Map<string, string>();
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (VALUED.has(name)) {
        const value = eq > 0 ? a.slice(eq + 1) : argv[++i];
        if (value === undefined) throw new SvirtError('SVIRT_ERR_USAGE', `option --${name} needs a value`);
        options.set(name, value);
      } else {
        if (eq > 0) throw new SvirtError('SVIRT_ERR_USAGE', `option --${name} takes no value`);
        flags.add(name);
      }
      continue;
    }
    if (command === undefined) command = a;
    else positional.push(a);
  }
  const stateDir = options.get('state-dir');
  const securityDriver = options.get('security-driver');
  return {
    ...(stateDir !== undefined ? { stateDir } : {}),
    ...(securityDriver !== undefined ? { securityDriver } : {}),
    json: flags.has('json'),
    ...(command !== undefined ? { command } : {}),
    positional,
    flags,
    options,
  };
}

/** The n-th positional argument, or a usage error naming it. */
export function arg(args: ParsedArgs, n: number, what: string): string {
  const v = args.positional[n];
  if (v === undefined) throw new SvirtError('SVIRT_ERR_USAGE', `${args.command ?? 'command'}: missing ${what}`);
  return v;
}
