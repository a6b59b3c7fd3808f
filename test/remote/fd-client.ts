/**
 * A bare libvirt-protocol client that receives fds (recvmsg), to check REPLY_WITH_FDS on the
 * wire without libvirt's client library: `node fd-client.js SOCKET NAME [IDX]` opens display
 * IDX of guest NAME with DomainOpenGraphicsFd and prints, as JSON, the reply's header type,
 * status and announced fd count, what came with the fd, the fd's type, and the first 12 bytes
 * QEMU's VNC server sent on it (or the error). All I/O blocks: run it as a child process with
 * a timeout (fdClientRun).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectUnixAt, recvFds } from '../../src/host/native.js';
import { MessageStatus, readError, readDomain, readHeader, writeDomain, type MessageHeader } from '../../src/remote/protocol.js';
import { XdrReader, type XdrWriter } from '../../src/remote/xdr.js';
import { callFrame } from './raw-client.js';

export interface FdClientResult {
  readonly type: number;
  readonly status: number;
  readonly nfds?: number;
  readonly fdByte?: number[];
  readonly isSocket?: boolean;
  readonly greeting?: string;
  readonly error?: string;
}

function readExactly(fd: number, n: number): Buffer {
  const parts: Buffer[] = [];
  let got = 0;
  while (got < n) {
    const r = recvFds(fd, n - got, 0);
    if (r.data.length === 0) throw new Error(`connection closed after ${got} of ${n} bytes`);
    parts.push(r.data);
    got += r.data.length;
  }
  return Buffer.concat(parts);
}

function readMessage(fd: number): { h: MessageHeader; r: XdrReader } {
  const len = readExactly(fd, 4).readUInt32BE(0);
  const frame = Buffer.concat([Buffer.alloc(4), readExactly(fd, len - 4)]);
  const r = new XdrReader(frame, 4);
  return { h: readHeader(r), r };
}

function call(fd: number, frame: Buffer): { h: MessageHeader; r: XdrReader } {
  for (let off = 0; off < frame.length;) off += writeSync(fd, frame, off);
  return readMessage(fd);
}

export function openGraphicsFdRaw(socketPath: string, name: string, idx: number): FdClientResult {
  const dir = openSync(dirname(socketPath), 'r');
  let sock: number;
  try {
    sock = connectUnixAt(dir, basename(socketPath));
  } finally {
    closeSync(dir);
  }
  try {
    call(sock, callFrame(66, 1)); // AuthList
    call(
      sock,
      callFrame(1, 2, (w) => w.bool(false).uint(0)),
    ); // ConnectOpen(NULL, 0)
    const looked = call(
      sock,
      callFrame(23, 3, (w) => w.string(name, 4096)),
    ); // DomainLookupByName
    if (looked.h.status !== MessageStatus.OK)
      return { type: looked.h.type, status: looked.h.status, error: readError(looked.r).message };
    const dom = readDomain(looked.r);
    const { h, r } = call(
      sock,
      callFrame(343, 4, (w: XdrWriter) => {
        writeDomain(w, dom);
        w.uint(idx).uint(0);
      }),
    );
    if (h.status !== MessageStatus.OK) return { type: h.type, status: h.status, error: readError(r).message };
    const nfds = r.uint();
    const got = recvFds(sock, 1, 1);
    const fd = got.fds[0];
    if (fd === undefined) return { type: h.type, status: h.status, nfds, fdByte: [...got.data], error: 'no fd came' };
    try {
      const greeting = Buffer.alloc(12);
      let off = 0;
      while (off < 12) {
        const n = readSync(fd, greeting, off, 12 - off, null);
        if (n === 0) break;
        off += n;
      }
      return {
        type: h.type,
        status: h.status,
        nfds,
        fdByte: [...got.data],
        isSocket: fstatSync(fd).isSocket(),
        greeting: greeting.subarray(0, off).toString('latin1'),
      };
    } finally {
      closeSync(fd);
    }
  } finally {
    closeSync(sock);
  }
}

/** Runs the client in a child process (its I/O blocks), killed after `timeoutMs`. */
export function fdClientRun(socketPath: string, name: string, idx = 0, timeoutMs = 30_000): FdClientResult {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), socketPath, name, String(idx)], {
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  if (r.status !== 0) throw new Error(`fd-client failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout) as FdClientResult;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [socketPath, name, idx] = process.argv.slice(2);
  if (socketPath === undefined || name === undefined) throw new Error('usage: fd-client SOCKET NAME [IDX]');
  console.log(JSON.stringify(openGraphicsFdRaw(socketPath, name, Number(idx ?? 0))));
}
