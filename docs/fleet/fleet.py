#!/usr/bin/python3
"""A small fleet of libvirt hosts, driven with python-libvirt (docs/fleet.md).

Nothing here knows svirt: it talks libvirt's remote protocol to every host in an inventory
file and uses only what any libvirt host offers (define, start, list, live migration). The
placement rule is the simplest one that works: the host with the fewest running guests.

    fleet.py INVENTORY status [--json]
    fleet.py INVENTORY place XML...      define and start each guest on the least busy host
    fleet.py INVENTORY drain HOST        mark HOST drained, live-migrate its guests away
    fleet.py INVENTORY undrain HOST      take the mark off, then rebalance
    fleet.py INVENTORY rebalance         move guests until no host has 2 more than another

INVENTORY has one host a line: `NAME URI`, and `drained` after a host that takes no guests.
"""

import argparse
import json
import sys
import xml.etree.ElementTree as ET

import libvirt

# What `virsh migrate --live --p2p --persistent --undefinesource` asks for: the source host
# drives the destination itself, and the definition moves with the running guest.
MIGRATE_FLAGS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)


class Host:
    def __init__(self, name, uri, drained):
        self.name = name
        self.uri = uri
        self.drained = drained
        self._conn = None

    @property
    def conn(self):
        if self._conn is None:
            self._conn = libvirt.open(self.uri)
        return self._conn

    def running(self):
        """Names of the guests running here, sorted."""
        doms = self.conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        return sorted(d.name() for d in doms)


def read_inventory(path):
    hosts = []
    with open(path) as f:
        for line in f:
            words = line.split('#', 1)[0].split()
            if not words:
                continue
            if len(words) not in (2, 3) or (len(words) == 3 and words[2] != 'drained'):
                sys.exit(f'{path}: expected "NAME URI [drained]", got: {line.strip()}')
            hosts.append(Host(words[0], words[1], len(words) == 3))
    if not hosts:
        sys.exit(f'{path}: no hosts')
    return hosts


def write_inventory(path, hosts):
    with open(path, 'w') as f:
        for h in hosts:
            f.write(f'{h.name} {h.uri}{" drained" if h.drained else ""}\n')


def by_name(hosts, name):
    for h in hosts:
        if h.name == name:
            return h
    sys.exit(f'no host {name} in the inventory')


def least_busy(hosts, load):
    """The open host with the fewest guests (the first in the inventory on a tie)."""
    open_hosts = [h for h in hosts if not h.drained]
    if not open_hosts:
        sys.exit('every host is drained')
    return min(open_hosts, key=lambda h: len(load[h.name]))


def migrate(src, dst, name, load):
    print(f'migrate {name}: {src.name} -> {dst.name}', flush=True)
    dom = src.conn.lookupByName(name)
    dom.migrateToURI3(dst.uri, {}, MIGRATE_FLAGS)
    load[src.name].remove(name)
    load[dst.name].append(name)


def status(hosts, as_json):
    load = {h.name: h.running() for h in hosts}
    if as_json:
        print(json.dumps({h.name: {'drained': h.drained, 'running': load[h.name]} for h in hosts}))
        return
    for h in hosts:
        mark = ' (drained)' if h.drained else ''
        print(f'{h.name}{mark}: {" ".join(load[h.name]) or "-"}')


def place(hosts, files):
    load = {h.name: h.running() for h in hosts}
    for path in files:
        with open(path) as f:
            xml = f.read()
        name = ET.fromstring(xml).findtext('name')
        for h in hosts:
            if name in load[h.name]:
                sys.exit(f'{name} already runs on {h.name}')
        h = least_busy(hosts, load)
        print(f'place {name} on {h.name}', flush=True)
        h.conn.defineXML(xml).create()
        load[h.name].append(name)


def rebalance(hosts):
    load = {h.name: h.running() for h in hosts}
    open_hosts = [h for h in hosts if not h.drained]
    # Each move narrows the gap; the count bounds the loop whatever the hosts answer.
    for _ in range(sum(len(v) for v in load.values())):
        busiest = max(open_hosts, key=lambda h: len(load[h.name]))
        idlest = least_busy(hosts, load)
        if len(load[busiest.name]) - len(load[idlest.name]) <= 1:
            return
        migrate(busiest, idlest, load[busiest.name][0], load)


def drain(hosts, path, name):
    host = by_name(hosts, name)
    host.drained = True
    write_inventory(path, hosts)  # marked first: nothing is placed there meanwhile
    load = {h.name: h.running() for h in hosts}
    for guest in list(load[host.name]):
        migrate(host, least_busy(hosts, load), guest, load)
    left = host.running()
    if left:
        sys.exit(f'{host.name} still runs {" ".join(left)}')


def main():
    p = argparse.ArgumentParser(description='Drive a few libvirt hosts: place, drain, bring back.')
    p.add_argument('inventory')
    sub = p.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('status')
    s.add_argument('--json', action='store_true')
    s = sub.add_parser('place')
    s.add_argument('xml', nargs='+')
    for verb in ('drain', 'undrain'):
        sub.add_parser(verb).add_argument('host')
    sub.add_parser('rebalance')
    a = p.parse_args()
    hosts = read_inventory(a.inventory)
    try:
        if a.cmd == 'status':
            status(hosts, a.json)
        elif a.cmd == 'place':
            place(hosts, a.xml)
        elif a.cmd == 'drain':
            drain(hosts, a.inventory, a.host)
        elif a.cmd == 'undrain':
            by_name(hosts, a.host).drained = False
            write_inventory(a.inventory, hosts)
            rebalance(hosts)
        elif a.cmd == 'rebalance':
            rebalance(hosts)
    except libvirt.libvirtError as e:
        sys.exit(f'fleet: {e}')


if __name__ == '__main__':
    main()
