#!/usr/bin/env python3
"""Flash and RAM of a firmware ELF, split into application, BLE stack and runtime.

Usage: size-report.py ELF [--board NAME] [--markdown]

Totals come from the section headers (`llvm-size -A`, falling back to `size -A`): flash =
.vector_table + .text + .rodata + .data (its load image), RAM = .data + .bss + .uninit (static
RAM; the stack grows down from the top of RAM into whatever is left).

The split attributes every symbol (`llvm-nm -S -C`, or `nm`) by its crate: Rust symbols by the
first path segment of the demangled name, C symbols (Nordic's SoftDevice Controller and MPSL
libraries, Espressif's radio blobs) by name. With LTO, generic async code of several crates is
inlined into a few large futures (the board's task and join futures); those are reported on a
line of their own instead of being guessed.
"""
import argparse
import re
import shutil
import subprocess
import sys

APP = {"footfall_firmware", "footfall_proto", "footfall_nrf52840_dk", "footfall_esp32c3", "footfall_firmware_qemu",
       "aes", "cmac", "postcard", "heapless", "hash32", "serde", "cipher", "digest", "dbl",
       "subtle", "crypto_common", "generic_array", "cobs"}
BLE_HOST = {"trouble_host", "bt_hci", "nrf_sdc", "nrf_mpsl", "esp_radio", "bt_hci_transport"}
MIXED_MARKERS = ("embassy_futures::join", "embassy_main_task", "__embassy_main", "TaskStorage",
                 "embassy_executor::raw::TaskStorage")
C_BLE_PREFIXES = ("sym_", "sdc_", "mpsl_", "MPSL_", "ll_", "hci_", "ble_", "btdm_", "r_", "lld_",
                  "llm_", "llc_", "ke_", "co_", "rwip_", "esp_", "phy_", "rf_", "bt_", "ieee80211",
                  "wifi_", "pp_", "lmac", "net80211", "coex", "rtc_", "g_", "s_", "ic_", "hal_",
                  "ppTask", "wpa", "wpa2", "ets_", "__esp")


def tool(*names):
    for n in names:
        if shutil.which(n):
            return n
    sys.exit(f"size-report: none of {names} found (apt-get install binutils or llvm)")


def sections(elf):
    out = subprocess.run([tool("llvm-size", "size"), "-A", elf], capture_output=True,
                         text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = sizes.get(parts[0], 0) + int(parts[1])
    return sizes


def crate_of(name):
    n = name.lstrip("<").replace("_<", "<")
    m = re.match(r"(?:<)?([A-Za-z_][A-Za-z0-9_]*)::", n)
    if m:
        return m.group(1)
    return None


# Board-level statics, by their last path segment (the board crate owns them, the stack uses them).
BLE_STATICS = {"SDC_MEM", "RESOURCES", "MPSL", "RNG_CELL", "DEFAULT_POOL", "CONTROLLER", "HEAP",
               "RADIO", "BLE", "WIFI"}
APP_STATICS = {"ANCHOR", "STORE"}


def classify(name):
    last = re.sub(r"::h[0-9a-f]{16}$", "", name).rsplit("::", 1)[-1]
    if last in BLE_STATICS:
        return "ble"
    if last in APP_STATICS:
        return "app"
    if any(k in name for k in MIXED_MARKERS):
        return "mixed"
    crate = crate_of(name)
    if crate is None:
        if name.startswith(C_BLE_PREFIXES):
            return "ble"
        return "runtime"
    if crate in APP:
        return "app"
    if crate in BLE_HOST:
        return "ble"
    # `<T as Trait>::f` symbols: attribute by the first known crate mentioned.
    for c in re.findall(r"([a-z_][a-z0-9_]*)::", name):
        if c in APP:
            return "app"
        if c in BLE_HOST:
            return "ble"
    return "runtime"


def symbols(elf):
    nm = tool("llvm-nm", "nm")
    out = subprocess.run([nm, "-S", "-C", "--size-sort", elf], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4:
            continue
        _, size, kind, name = parts
        yield int(size, 16), kind.lower(), unescape(name)


def unescape(name):
    """Finishes demangling legacy Rust symbols that the C++ demangler leaves escaped."""
    for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$C$", ","), ("$u7b$", "{"),
                 ("$u7d$", "}"), ("$RF$", "&"), ("$BP$", "*"), ("$u27$", "'"), ("..", "::")):
        name = name.replace(a, b)
    return name.lstrip("_") if name.startswith("_<") else name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("elf")
    ap.add_argument("--board", default="")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    s = sections(a.elf)
    flash = sum(s.get(k, 0) for k in (".vector_table", ".text", ".rodata", ".data",
                                        ".rwtext", ".rodata_desc", ".text_init", ".trap"))
    ram = sum(s.get(k, 0) for k in (".data", ".bss", ".uninit", ".rwdata", ".stack",
                                      ".noinit", ".rwtext"))
    split = {k: {"flash": 0, "ram": 0} for k in ("app", "ble", "runtime", "mixed")}
    for size, kind, name in symbols(a.elf):
        cat = classify(name)
        if kind in ("t", "r", "w", "v"):
            split[cat]["flash"] += size
        elif kind in ("b", "d", "s", "c"):
            split[cat]["ram"] += size
    labels = {
        "app": "application (footfall app, proto, crypto, board glue)",
        "ble": "radio stack (BLE controller + trouble-host; esp-radio heap)",
        "runtime": "HAL, executor, defmt, core, compiler-builtins",
        "mixed": "LTO-merged task futures (app + host + HAL)",
    }
    kb = lambda n: f"{n / 1024:.1f} KiB"
    title = f"{a.board} " if a.board else ""
    if a.markdown:
        print(f"| {title}part | flash | static RAM |\n|---|---:|---:|")
        for k, v in split.items():
            print(f"| {labels[k]} | {kb(v['flash'])} | {kb(v['ram'])} |")
        print(f"| **total (sections)** | **{kb(flash)}** | **{kb(ram)}** |")
    else:
        print(f"{title}flash {flash} B ({kb(flash)}), static RAM {ram} B ({kb(ram)})")
        for k, v in split.items():
            print(f"  {labels[k]:<62} flash {kb(v['flash']):>10}  RAM {kb(v['ram']):>10}")


if __name__ == "__main__":
    main()
