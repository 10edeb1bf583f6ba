#!/usr/bin/env python3
"""Generate the phone-number lookup tables of libs/telephony from libphonenumber's data.

Reads the prefix data that Google's libphonenumber ships (Apache License 2.0) as packaged by
the Python package `phonenumbers`:

  phonenumbers.tzdata.TIMEZONE_DATA   E.164 prefix -> tuple of IANA zones
  phonenumbers.geodata.GEOCODE_DATA   E.164 prefix -> {language: description}; for +86 the
                                      'zh' text ("广东省深圳市"), 'en' ("Shenzhen, Guangdong")
                                      to cross-check the province and where 'zh' is missing
  the CN metadata (phonenumbers.data) only to name the area code of the four +86 geocoding
                                      entries shorter than one ("8633" -> 335)

and writes:

  libs/telephony/src/data/tz_prefixes.rs  E.164 prefix -> IANA time zone   (used by tzmap.rs)
  libs/telephony/src/data/cn_regions.rs   +86 prefix -> province/city/area (used by region.rs)

Requirements (this script installs nothing itself), Python 3.11:

  python3 -m venv /tmp/pn && /tmp/pn/bin/pip install phonenumbers==9.0.43
  /tmp/pn/bin/python scripts/gen_phone_data.py

The version is pinned (PHONENUMBERS_VERSION below) so the output is reproducible; to move to a
newer data release, install it, change PHONENUMBERS_VERSION, re-run, review the diff and run
`cargo test -p waihu-telephony`. The output is deterministic (everything sorted).

The script stops with an error, rather than guessing, when the data holds something it does not
know how to handle: a Chinese description it cannot split into province and city, an English-only
+86 description with no translation below, a province the English description contradicts, an
alias that no longer matches the data, or a table that outgrows its integer types.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

PHONENUMBERS_VERSION = "9.0.43"

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "libs" / "telephony" / "src" / "data"
TZ_OUT = OUT_DIR / "tz_prefixes.rs"
CN_OUT = OUT_DIR / "cn_regions.rs"

# libphonenumber's "no time zone known" value; a prefix mapping to it is treated as ambiguous.
UNKNOWN_ZONE = "Etc/Unknown"

# --- Provinces -----------------------------------------------------------------------------
# The 31 provincial-level divisions of mainland China: canonical name (as the data mostly spells
# it: "X省", "X市" for the four municipalities, the short name for the five autonomous
# regions), the other spellings the descriptions start with, and the English name the 'en'
# description ends with (used to cross-check every split).
MUNICIPALITY, PROVINCE, AUTONOMOUS = "municipality", "province", "autonomous region"
PROVINCES: list[tuple[str, str, list[str], str]] = [
    # (canonical, kind, other spellings, English)
    ("北京市", MUNICIPALITY, [], "Beijing"),
    ("天津市", MUNICIPALITY, ["天津"], "Tianjin"),
    ("上海市", MUNICIPALITY, [], "Shanghai"),
    ("重庆市", MUNICIPALITY, [], "Chongqing"),
    ("河北省", PROVINCE, [], "Hebei"),
    ("山西省", PROVINCE, [], "Shanxi"),
    ("辽宁省", PROVINCE, [], "Liaoning"),
    ("吉林省", PROVINCE, [], "Jilin"),
    ("黑龙江省", PROVINCE, [], "Heilongjiang"),
    ("江苏省", PROVINCE, [], "Jiangsu"),
    ("浙江省", PROVINCE, [], "Zhejiang"),
    ("安徽省", PROVINCE, [], "Anhui"),
    ("福建省", PROVINCE, [], "Fujian"),
    ("江西省", PROVINCE, [], "Jiangxi"),
    ("山东省", PROVINCE, [], "Shandong"),
    ("河南省", PROVINCE, [], "Henan"),
    ("湖北省", PROVINCE, [], "Hubei"),
    ("湖南省", PROVINCE, [], "Hunan"),
    ("广东省", PROVINCE, [], "Guangdong"),
    ("海南省", PROVINCE, [], "Hainan"),
    ("四川省", PROVINCE, ["四川"], "Sichuan"),
    ("贵州省", PROVINCE, ["贵州"], "Guizhou"),
    ("云南省", PROVINCE, ["云南"], "Yunnan"),
    ("陕西省", PROVINCE, [], "Shaanxi"),
    ("甘肃省", PROVINCE, ["甘肃"], "Gansu"),
    ("青海省", PROVINCE, [], "Qinghai"),
    ("内蒙古", AUTONOMOUS, ["内蒙古自治区"], "Inner Mongolia"),
    ("广西", AUTONOMOUS, ["广西壮族自治区"], "Guangxi"),
    ("西藏", AUTONOMOUS, ["西藏自治区"], "Tibet"),
    ("宁夏", AUTONOMOUS, ["宁夏回族自治区"], "Ningxia"),
    ("新疆", AUTONOMOUS, ["新疆维吾尔自治区"], "Xinjiang"),
]

# Endings a prefecture- or county-level name has; a city part ending otherwise must be listed in
# CITY_ALIASES or BARE_NAMES, else the script fails.
CITY_SUFFIXES = ("市", "地区", "自治州", "盟", "县", "林区")

# Short or misspelt city names some descriptions (mostly the 3-digit area-code entries) use,
# mapped to the spelling the rest of the data uses for the same prefecture. Each target must occur
# in the data as a city of that province, or the script fails.
CITY_ALIASES: dict[tuple[str, str], str] = {
    ("云南省", "怒江"): "怒江傈僳族自治州",
    ("云南省", "红河"): "红河哈尼族彝族自治州",
    ("云南省", "西双版纳"): "西双版纳傣族自治州",
    ("云南省", "迪庆"): "迪庆藏族自治州",
    ("内蒙古", "乌兰察布"): "乌兰察布市",
    ("内蒙古", "兴安"): "兴安盟",
    ("内蒙古", "呼伦贝尔"): "呼伦贝尔市",
    ("内蒙古", "巴彦淖尔"): "巴彦淖尔市",
    ("内蒙古", "鄂尔多斯"): "鄂尔多斯市",
    ("内蒙古", "锡林郭勒"): "锡林郭勒盟",
    ("内蒙古", "阿拉善"): "阿拉善盟",
    ("四川省", "甘孜"): "甘孜藏族自治州",
    ("四川省", "阿坝"): "阿坝藏族羌族自治州",
    ("甘肃省", "甘南"): "甘南藏族自治州",
    ("西藏", "山南"): "山南地区",
    ("西藏", "阿里"): "阿里地区",
    ("贵州省", "黔东南"): "黔东南苗族侗族自治州",
    ("贵州省", "黔南"): "黔南布依族苗族自治州",
    ("湖南省", "株州市"): "株洲市",  # typo in the 731 entry ("Zhuzhou" in its 'en' text)
}

# County names the data gives without their "县" (Tibet, area codes 896 and 897); kept as given.
BARE_NAMES: set[tuple[str, str]] = {
    ("西藏", "双湖"),
    ("西藏", "普兰"),
    ("西藏", "札达"),
}

# +86 descriptions that exist only in English; a new one makes the script fail.
EN_ONLY: dict[str, str] = {
    # Simao is the former name (until 2007) of Pu'er, which the enclosing 879 entry names.
    "Simao, Yunnan": "云南省普洱市",
}


def fail(msg: str) -> None:
    sys.exit(f"gen_phone_data: error: {msg}")


def area_code_len(national: str) -> int:
    """Length of the area code a +86 landline number starts with: 2 for Beijing's 10 and the
    2x cities, 3 for everything else (3xx-9xx)."""
    return 2 if national[0] == "2" or national.startswith("10") else 3


def is_mobile(national: str) -> bool:
    return national[0] == "1" and not national.startswith("10")


# --- Time zones ------------------------------------------------------------------------------
def build_tz(tzdata: dict[str, tuple[str, ...]]) -> tuple[list[str], list[tuple[int, int | None]], dict]:
    zones = sorted({z[0] for z in tzdata.values() if len(z) == 1 and z[0] != UNKNOWN_ZONE})
    index = {z: i for i, z in enumerate(zones)}
    rows: list[tuple[int, int | None]] = []
    stats = {"single": 0, "several": 0, "unknown": 0}
    for prefix, tzs in tzdata.items():
        if not prefix.isdigit() or prefix[0] == "0" or len(prefix) > 15:
            fail(f"time zone prefix {prefix!r} is not 1-15 digits without a leading 0")
        if len(tzs) == 1 and tzs[0] != UNKNOWN_ZONE:
            rows.append((int(prefix), index[tzs[0]]))
            stats["single"] += 1
        else:
            rows.append((int(prefix), None))
            stats["unknown" if UNKNOWN_ZONE in tzs else "several"] += 1
    rows.sort()
    if len(zones) >= 0xFFFF:
        fail("more zones than a u16 index holds")
    return zones, rows, stats


# --- +86 regions ----------------------------------------------------------------------------
def split_province(desc: str) -> tuple[str, str, str]:
    """(canonical province, its English name, rest of the description)."""
    best = None
    for canon, _kind, others, en in PROVINCES:
        for spelling in [canon, *others]:
            if desc.startswith(spelling) and (best is None or len(spelling) > len(best[0])):
                best = (spelling, canon, en)
    if best is None:
        fail(f"description {desc!r} starts with no known province")
    spelling, canon, en = best
    return canon, en, desc[len(spelling):]


def split_description(desc: str, used: set) -> tuple[str, str, list[str]]:
    """(province, city, the city names the city part lists) of a Chinese description."""
    province, en, rest = split_province(desc)
    kind = next(k for c, k, _, _ in PROVINCES if c == province)
    if kind == MUNICIPALITY:
        if rest:
            fail(f"description {desc!r}: municipality {province} followed by {rest!r}")
        return province, province, [province]
    if not rest:
        fail(f"description {desc!r} names a province but no city")
    names: list[str] = []
    for raw in rest.split("、"):
        name = CITY_ALIASES.get((province, raw), raw)
        if (province, raw) in CITY_ALIASES:
            used.add((province, raw))
        if (province, name) in BARE_NAMES:
            used.add((province, name))
        elif not name.endswith(CITY_SUFFIXES) or len(name) < 2:
            fail(f"description {desc!r}: cannot tell whether {raw!r} is a city name")
        if any(p in name for p, _, _, _ in PROVINCES if p != province and len(p) > 2):
            fail(f"description {desc!r}: city part {raw!r} contains a province name")
        if name not in names:  # "湖北省襄樊市、襄樊市"
            names.append(name)
    return province, "、".join(names), names


def valid_area_code(code: str) -> bool:
    """Whether libphonenumber's CN metadata takes some fixed-line number with this area code
    (a subscriber number of 7 or 8 digits starting with 2)."""
    import phonenumbers

    for subscriber in ("2345678", "23456789"):
        number = phonenumbers.parse("+86" + code + subscriber)
        if phonenumbers.number_type(number) in (
            phonenumbers.PhoneNumberType.FIXED_LINE,
            phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        ):
            return True
    return False


def landline_area_code(national: str, short: dict[str, str]) -> str:
    """The area code of a landline prefix: its first 2 or 3 digits. A few entries are shorter
    than an area code ("8633" for all of 033x); for those, the one code under the prefix that the
    CN metadata of the same package takes as a fixed-line area code ("335"), or "" if not one."""
    n = area_code_len(national)
    if len(national) >= n:
        return national[:n]
    if national not in short:
        width = n - len(national)
        codes = [
            national + str(i).zfill(width)
            for i in range(10**width)
            if valid_area_code(national + str(i).zfill(width))
        ]
        short[national] = codes[0] if len(codes) == 1 else ""
    return short[national]


def build_cn(geodata: dict[str, dict[str, str]]):
    entries: dict[str, tuple[str, str, list[str]]] = {}
    special: list[str] = []
    used: set = set()
    for key, langs in geodata.items():
        if not key.startswith("86"):
            continue
        national = key[2:]
        if not national.isdigit() or national[0] == "0" or len(national) > 9:
            fail(f"+86 prefix {key!r} is not digits")
        zh = langs.get("zh")
        en = langs.get("en")
        if zh is None:
            if en not in EN_ONLY:
                fail(f"+86 prefix {key!r} has no Chinese description and no translation of {en!r}")
            special.append(f"{key}: English only {en!r}, used as {EN_ONLY[en]!r}")
            zh = EN_ONLY[en]
        province, city, names = split_description(zh, used)
        if en is not None:
            en_province = en.rsplit(", ", 1)[-1]
            expected = next(e for c, _, _, e in PROVINCES if c == province)
            if en_province != expected:
                fail(f"+86 prefix {key!r}: {zh!r} is in {province} but {en!r} says {en_province}")
        entries[national] = (province, city, names)

    for (province, raw), target in CITY_ALIASES.items():
        if (province, raw) not in used:
            fail(f"alias {province}{raw} -> {target} no longer matches any description")
    for bare in BARE_NAMES:
        if bare not in used:
            fail(f"bare name {bare} no longer occurs in the data")
    all_cities = {(p, n) for p, _, names in entries.values() for n in names}
    for (province, raw), target in CITY_ALIASES.items():
        if (province, target) not in all_cities:
            fail(f"alias target {province}{target} is not a city the data names")

    # City -> the area codes of the landline entries naming it (alone or among several).
    city_codes: dict[tuple[str, str], set[str]] = defaultdict(set)
    short: dict[str, str] = {}
    invalid_codes: set[str] = set()
    for national, (province, _city, names) in entries.items():
        if is_mobile(national):
            continue
        code = landline_area_code(national, short)
        if not code:
            continue
        if not valid_area_code(code):
            invalid_codes.add(code)
        for name in names:
            city_codes[(province, name)].add(code)

    def city_code(province: str, name: str) -> str | None:
        codes = city_codes.get((province, name), set())
        return next(iter(codes)) if len(codes) == 1 else None

    rows: list[tuple[int, tuple[str, str, str]]] = []
    for national, (province, city, names) in entries.items():
        if is_mobile(national):
            codes = {city_code(province, n) for n in names}
            code = codes.pop() if len(codes) == 1 else None
            area = code or ""
        else:
            area = landline_area_code(national, short)
        rows.append((int(national), (province, city, area)))
    rows.sort()

    # Drop entries no number can reach (all ten one-digit extensions lead to longer entries);
    # no lookup changes, and every kept entry is the answer for some number (tested in Rust).
    keys = {str(p) for p, _ in rows}
    inner = {k[:i] for k in keys for i in range(1, len(k))}
    dead = {k for k in keys if all(k + d in inner or k + d in keys for d in "0123456789")}
    rows = [r for r in rows if str(r[0]) not in dead]

    regions = sorted({r for _, r in rows})
    index = {r: i for i, r in enumerate(regions)}
    if len(regions) > 0xFFFF or max(p for p, _ in rows) > 0xFFFFFFFF:
        fail("table outgrows u32 prefixes / u16 indexes")

    mobile_cities = {(p, c) for n, (p, c, _) in entries.items() if is_mobile(n)}
    with_code = {(r[0], r[1]) for n, r in rows if is_mobile(str(n)) and r[2]}
    no_code = sorted(f"{p}{c}" for p, c in mobile_cities - with_code)
    stats = {
        "entries": len(entries),
        "kept": len(rows),
        "dead": sorted(dead),
        "mobile": sum(1 for p, _ in rows if is_mobile(str(p))),
        "landline": sum(1 for p, _ in rows if not is_mobile(str(p))),
        "regions": len(regions),
        "special": special,
        "short_landline": sorted(short.items()),
        "invalid_codes": sorted(invalid_codes),
        "mobile_cities_without_code": no_code,
        "ambiguous_cities": sorted(
            f"{p}{c}: {sorted(codes)}" for (p, c), codes in city_codes.items() if len(codes) > 1
        ),
    }
    return regions, [(p, index[r]) for p, r in rows], stats


# --- Output ---------------------------------------------------------------------------------
def header(what: str, version: str) -> str:
    return (
        f"// @generated by scripts/gen_phone_data.py from libphonenumber's {what}\n"
        f"// (Copyright The Libphonenumber Authors, Apache License 2.0), as shipped by the Python\n"
        f"// package phonenumbers {version}. Do not edit by hand: change the script and re-run it.\n"
        f"// See libs/telephony/NOTICE-phonenumber-data.md.\n\n"
    )


def rust_str(s: str) -> str:
    if any(c in s for c in '"\\\n') or not s.isprintable():
        fail(f"unexpected character in {s!r}")
    return f'"{s}"'


def wrap(items: list[str], indent: str = "    ", width: int = 100, sep: str = " ") -> str:
    lines, line = [], indent
    for item in items:
        piece = item + ","
        if len(line) + len(piece) > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += piece + sep
    if line.strip():
        lines.append(line.rstrip())
    return "\n".join(lines)


def render_tz(zones, rows, version: str) -> str:
    out = header("time zone prefix data", version)
    out += (
        "//! E.164 prefixes (digits after '+') and the IANA zone each tells.\n\n"
        "/// Zone names, indexed by [`PREFIXES`].\n"
        "#[rustfmt::skip]\n"
        f"pub(super) static ZONES: [&str; {len(zones)}] = [\n"
        + "\n".join(f"    {rust_str(z)}," for z in zones)
        + "\n];\n\n"
        "/// [`PREFIXES`] value of a prefix that maps to several zones (or to none known).\n"
        "pub(super) const SEVERAL: u16 = u16::MAX;\n\n"
        "/// Digits in the longest prefix.\n"
        f"pub(super) const LONGEST_PREFIX: usize = {max(len(str(p)) for p, _ in rows)};\n\n"
        "/// (prefix, index into [`ZONES`] or [`SEVERAL`]), ascending by prefix.\n"
        "#[rustfmt::skip]\n"
        f"pub(super) static PREFIXES: [(u64, u16); {len(rows)}] = [\n"
        + wrap([f"({p}, {'SEVERAL' if z is None else z})" for p, z in rows])
        + "\n];\n"
    )
    return out


def render_cn(regions, rows, version: str) -> str:
    out = header("+86 geocoding data", version)
    out += (
        "//! Mainland China (+86) number prefixes, as national digits after \"86\", and the region\n"
        "//! each tells.\n\n"
        "use super::Region;\n\n"
        "/// Distinct regions, indexed by [`INDEX`].\n"
        "#[rustfmt::skip]\n"
        f"pub(super) static REGIONS: [Region; {len(regions)}] = [\n"
        + "\n".join(
            f"    Region {{ province: {rust_str(p)}, city: {rust_str(c)}, area_code: {rust_str(a)} }},"
            for p, c, a in regions
        )
        + "\n];\n\n"
        "/// Digits in the longest prefix.\n"
        f"pub(super) const LONGEST_PREFIX: usize = {max(len(str(p)) for p, _ in rows)};\n\n"
        f"/// Prefixes of the national number ({min(len(str(p)) for p, _ in rows)}-"
        f"{max(len(str(p)) for p, _ in rows)} digits), ascending.\n"
        "#[rustfmt::skip]\n"
        f"pub(super) static PREFIXES: [u32; {len(rows)}] = [\n"
        + wrap([str(p) for p, _ in rows], sep="")
        + "\n];\n\n"
        "/// `INDEX[i]`: the [`REGIONS`] entry of `PREFIXES[i]`.\n"
        "#[rustfmt::skip]\n"
        f"pub(super) static INDEX: [u16; {len(rows)}] = [\n"
        + wrap([str(i) for _, i in rows], sep="")
        + "\n];\n"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if the files are not up to date")
    args = ap.parse_args()

    try:
        import phonenumbers
        from phonenumbers.geodata import GEOCODE_DATA
        from phonenumbers.tzdata import TIMEZONE_DATA
    except ImportError:
        fail(f"needs `pip install phonenumbers=={PHONENUMBERS_VERSION}` (see the top of this file)")
    version = phonenumbers.__version__
    if version != PHONENUMBERS_VERSION:
        fail(f"phonenumbers {version} installed, this script is pinned to {PHONENUMBERS_VERSION}; "
             "install that one, or update PHONENUMBERS_VERSION and review the new output")

    zones, tz_rows, tz_stats = build_tz(TIMEZONE_DATA)
    regions, cn_rows, cn_stats = build_cn(GEOCODE_DATA)
    files = {TZ_OUT: render_tz(zones, tz_rows, version), CN_OUT: render_cn(regions, cn_rows, version)}

    stale = [p for p, text in files.items() if not p.exists() or p.read_text("utf-8") != text]
    if args.check:
        if stale:
            fail("out of date: " + ", ".join(str(p.relative_to(REPO)) for p in stale))
    else:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            path.write_text(text, "utf-8")

    say = lambda s: print(s, file=sys.stderr)  # noqa: E731
    say(f"phonenumbers {version}")
    say(f"time zones: {len(tz_rows)} prefixes ({tz_stats['single']} with one zone, "
        f"{tz_stats['several']} with several, {tz_stats['unknown']} {UNKNOWN_ZONE}), "
        f"{len(zones)} zones")
    say(f"+86 regions: {cn_stats['entries']} prefixes in the data, {cn_stats['kept']} kept "
        f"({cn_stats['mobile']} mobile, {cn_stats['landline']} landline), "
        f"{cn_stats['regions']} distinct regions; {len(cn_stats['dead'])} unreachable dropped: "
        f"{cn_stats['dead']}")
    for s in cn_stats["special"]:
        say(f"  special: {s}")
    say(f"  landline prefixes shorter than their area code (-> code from CN metadata): "
        f"{cn_stats['short_landline']}")
    say(f"  area codes of landline entries the CN metadata does not take: "
        f"{cn_stats['invalid_codes']}")
    say(f"  cities with several area codes: {cn_stats['ambiguous_cities']}")
    say(f"  mobile cities without an area code: {cn_stats['mobile_cities_without_code']}")
    for path, text in files.items():
        say(f"{path.relative_to(REPO)}: {len(text.encode('utf-8'))} bytes"
            + (" (unchanged)" if path not in stale else ""))


if __name__ == "__main__":
    main()
