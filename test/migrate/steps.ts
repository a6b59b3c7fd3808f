/** libvirt's five migration steps, called one by one on two serves (as plain `virsh migrate` does), for tests that look between them. */
import assert from 'node:assert/strict';
import { RemoteClient } from '../../src/remote/client.js';
import { Proc, writeDomain } from '../../src/remote/protocol.js';
import { writeTypedParams, type TypedValue } from '../../src/remote/typed-params.js';
import { UUID } from './support.js';

const COOKIE_MAX = 16384;
export const LIVE = 1;
const DOM = { name: 'mig', uuid: UUID, id: -1 };

export class Steps {
  private cookie: Buffer = Buffer.alloc(0);
  private uri: string | undefined;

  constructor(
    readonly src: RemoteClient,
    readonly dst: RemoteClient,
    /** VIR_MIGRATE_* of every step (LIVE; | 64 for --copy-storage-all). */
    readonly flags = LIVE,
  ) {}

  static async open(srcSocket: string, dstSocket: string, flags = LIVE): Promise<Steps> {
    return new Steps(await RemoteClient.open(srcSocket), await RemoteClient.open(dstSocket), flags);
  }

  /** The cookie as the last step left it (Prepare's goes to Perform, as libvirt's client passes it on). */
  get cookieJson(): Record<string, unknown> {
    return JSON.parse(this.cookie.toString('utf8')) as Record<string, unknown>;
  }

  async begin(): Promise<void> {
    const r = await this.src.call(Proc.DomainMigrateBegin3Params, (w) => {
      writeDomain(w, DOM);
      writeTypedParams(w, new Map<string, TypedValue>());
      w.uint(this.flags);
    });
    this.cookie = r.opaqueVar(COOKIE_MAX);
  }

  async prepare(destXml: string): Promise<void> {
    const r = await this.dst.call(Proc.DomainMigratePrepare3Params, (w) => {
      writeTypedParams(
        w,
        new Map<string, TypedValue>([
          ['destination_xml', destXml],
          ['destination_name', 'mig'],
        ]),
      );
      w.opaqueVar(this.cookie, COOKIE_MAX).uint(this.flags);
    });
    this.cookie = r.opaqueVar(COOKIE_MAX);
    this.uri = r.optional((x) => x.string(1024));
    assert.ok(this.uri, 'the destination names where it receives the stream');
  }

  async perform(): Promise<void> {
    await this.src.call(Proc.DomainMigratePerform3Params, (w) => {
      writeDomain(w, DOM);
      w.optional(undefined, (x, v: string) => x.string(v, 1024));
      writeTypedParams(w, new Map<string, TypedValue>([['migrate_uri', this.uri ?? '']]));
      w.opaqueVar(this.cookie, COOKIE_MAX).uint(this.flags);
    });
  }

  async finish(cancelled: boolean): Promise<void> {
    await this.dst.call(
      Proc.DomainMigrateFinish3Params,
      (w) => {
        writeTypedParams(w, new Map<string, TypedValue>([['destination_name', 'mig']]));
        w.opaqueVar(this.cookie, COOKIE_MAX)
          .uint(this.flags)
          .int(cancelled ? 1 : 0);
      },
      120_000,
    );
  }

  async confirm(cancelled: boolean): Promise<void> {
    await this.src.call(Proc.DomainMigrateConfirm3Params, (w) => {
      writeDomain(w, DOM);
      writeTypedParams(w, new Map<string, TypedValue>());
      w.opaqueVar(this.cookie, COOKIE_MAX)
        .uint(this.flags)
        .int(cancelled ? 1 : 0);
    });
  }

  close(): void {
    this.src.close();
    this.dst.close();
  }
}
