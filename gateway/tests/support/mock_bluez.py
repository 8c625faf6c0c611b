#!/usr/bin/python3
"""Drives python3-dbusmock's `bluez5` template for gateway/tests/ble_mock.rs.

Run with Debian's /usr/bin/python3 (it has the `dbus` module); the bus is the one in
DBUS_SYSTEM_BUS_ADDRESS (the test's private dbus-daemon). Commands, one per line on stdin
(or one command as arguments):

    add-adapter NAME ALIAS
    add-device ADAPTER ADDRESS ALIAS public|random RSSI
    adv ADAPTER ADDRESS [rssi=N] [mfg=CID:HEX]... [svc=UUID16:HEX]...
    calls ADAPTER METHOD            prints how many times METHOD was called on the adapter
    has-bluez                       prints 1 if org.bluez is on the bus, else 0
    filter ADAPTER KEY              prints KEY of the last SetDiscoveryFilter call (or "none")

`adv` emits one org.freedesktop.DBus.Properties.PropertiesChanged on the device, as BlueZ
does for one received advertisement. (dbusmock's Mock.UpdateProperties cannot carry the
dict-valued ManufacturerData/ServiceData in 0.28, so the signal is emitted directly.)
Prints "ok" after each command so the caller can wait for it.
"""

import os
import sys

import dbus

BUS_NAME = 'org.bluez'
MOCK_IFACE = 'org.freedesktop.DBus.Mock'
DEVICE_IFACE = 'org.bluez.Device1'
BASE_UUID = '0000{:04x}-0000-1000-8000-00805f9b34fb'


def bus():
    return dbus.bus.BusConnection(os.environ['DBUS_SYSTEM_BUS_ADDRESS'])


def device_path(adapter, address):
    return f"/org/bluez/{adapter}/dev_{address.replace(':', '_').upper()}"


def mock(conn, path):
    return dbus.Interface(conn.get_object(BUS_NAME, path), MOCK_IFACE)


def add_adapter(conn, name, alias):
    bluez = dbus.Interface(conn.get_object(BUS_NAME, '/org/bluez'), 'org.bluez.Mock')
    bluez.AddAdapter(name, alias)


def add_device(conn, adapter, address, alias, address_type, rssi):
    """Like the template's AddDevice, with a chosen AddressType and RSSI."""
    path = device_path(adapter, address)
    props = {
        'Address': dbus.String(address, variant_level=1),
        'AddressType': dbus.String(address_type, variant_level=1),
        'Name': dbus.String(alias, variant_level=1),
        'Alias': dbus.String(alias, variant_level=1),
        'Icon': dbus.String('', variant_level=1),
        'Class': dbus.UInt32(0, variant_level=1),
        'Appearance': dbus.UInt16(0, variant_level=1),
        'UUIDs': dbus.Array([], signature='s', variant_level=1),
        'Paired': dbus.Boolean(False, variant_level=1),
        'Connected': dbus.Boolean(False, variant_level=1),
        'Trusted': dbus.Boolean(False, variant_level=1),
        'Blocked': dbus.Boolean(False, variant_level=1),
        'WakeAllowed': dbus.Boolean(False, variant_level=1),
        'Adapter': dbus.ObjectPath(f'/org/bluez/{adapter}', variant_level=1),
        'LegacyPairing': dbus.Boolean(False, variant_level=1),
        'Modalias': dbus.String('', variant_level=1),
        'RSSI': dbus.Int16(int(rssi), variant_level=1),
        'ServicesResolved': dbus.Boolean(False, variant_level=1),
    }
    root = mock(conn, '/')
    root.AddObject(path, DEVICE_IFACE, props, [])
    root.EmitSignal('org.freedesktop.DBus.ObjectManager', 'InterfacesAdded', 'oa{sa{sv}}',
                    [dbus.ObjectPath(path), dbus.Dictionary({DEVICE_IFACE: props}, signature='sa{sv}')])


def byte_array(hexstr):
    return dbus.Array([dbus.Byte(b) for b in bytes.fromhex(hexstr)], signature='y', variant_level=1)


def adv(conn, adapter, address, fields):
    changed = {}
    mfg = {}
    svc = {}
    for f in fields:
        key, _, value = f.partition('=')
        if key == 'rssi':
            changed['RSSI'] = dbus.Int16(int(value), variant_level=1)
        elif key == 'mfg':
            cid, _, data = value.partition(':')
            mfg[dbus.UInt16(int(cid, 16))] = byte_array(data)
        elif key == 'svc':
            uuid, _, data = value.partition(':')
            svc[dbus.String(BASE_UUID.format(int(uuid, 16)))] = byte_array(data)
        else:
            raise SystemExit(f'adv: unknown field {f!r}')
    if mfg:
        changed['ManufacturerData'] = dbus.Dictionary(mfg, signature='qv', variant_level=1)
    if svc:
        changed['ServiceData'] = dbus.Dictionary(svc, signature='sv', variant_level=1)
    mock(conn, device_path(adapter, address)).EmitSignal(
        'org.freedesktop.DBus.Properties', 'PropertiesChanged', 'sa{sv}as',
        [DEVICE_IFACE, dbus.Dictionary(changed, signature='sv'), dbus.Array([], signature='s')])


def calls(conn, adapter, method):
    print(len(mock(conn, f'/org/bluez/{adapter}').GetMethodCalls(method)))


def last_filter(conn, adapter, key):
    filters = mock(conn, f'/org/bluez/{adapter}').GetMethodCalls('SetDiscoveryFilter')
    if not filters:
        print('none')
        return
    _timestamp, args = filters[-1]
    value = args[0].get(key)
    print('none' if value is None else (str(bool(value)).lower() if isinstance(value, dbus.Boolean) else value))


def run(conn, words):
    cmd, args = words[0], words[1:]
    if cmd == 'add-adapter':
        add_adapter(conn, *args)
    elif cmd == 'add-device':
        add_device(conn, *args)
    elif cmd == 'adv':
        adv(conn, args[0], args[1], args[2:])
    elif cmd == 'calls':
        calls(conn, *args)
    elif cmd == 'filter':
        last_filter(conn, *args)
    elif cmd == 'has-bluez':
        print(1 if conn.name_has_owner(BUS_NAME) else 0)
    else:
        raise SystemExit(f'unknown command {cmd!r}')
    print('ok', flush=True)


def main():
    conn = bus()
    if len(sys.argv) > 1:
        run(conn, sys.argv[1:])
        return
    for line in sys.stdin:
        words = line.split()
        if words and not words[0].startswith('#'):
            run(conn, words)


if __name__ == '__main__':
    main()
