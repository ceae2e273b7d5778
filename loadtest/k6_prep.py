#!/usr/bin/env python3
"""k6_prep.py — content and manifest for the k6 load tests (run_k6.sh, soak.sh).

  k6_prep.py content DIR
      Writes deterministic pseudo-random content under DIR:
        DIR/site/   a small web site: index.html, style.css, app.js, img/*
                    (images, one of them larger than a 1 MiB chunk),
                    about/index.html and gallery/ (300 entries, listed as HTML)
        DIR/files/  whole files for curl-like clients: 256 KiB, 4 MiB, 16 MiB
      and DIR/expected.json: size and SHA-256 of every file, plus Range
      slices (with the SHA-256 of the expected bytes) for each curl file.

  k6_prep.py manifest DIR ROOTS_JSON GATEWAY_URL HINT OUT.json
      Builds the manifest the k6 script reads. ROOTS_JSON is the JSON line a
      Helia provider printed (roots: site, f256k, f4m, f16m). Through a
      throw-away gateway at GATEWAY_URL (its only source: the provider HINT):
        - every site file and curl file is fetched and its SHA-256 compared
          with the bytes we generated; the Etag and Content-Type it carries
          are recorded (single-chunk files: the Etag must also be the raw CID
          we compute ourselves from the bytes);
        - the HTML listings of site/gallery/ and site/img/ are fetched and
          their Etags recorded;
        - the CAR of each root (?format=car) is fetched and every block is
          checked against its CID's sha2-256 digest here, in Python; the
          block count and the blocks' CIDs/digests are recorded, and a
          sample of blocks becomes the ?format=raw targets (expected body
          hash = the CID's digest).
      Exits non-zero if anything does not match.
"""
import base64
import hashlib
import json
import os
import random
import sys
import urllib.request

CHUNK = 1048576  # Helia "modern" layout: 1 MiB chunks, raw leaves, CIDv1


# ----------------------------------------------------------------- content
def rand_bytes(rng, n):
    return rng.randbytes(n)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def make_content(top):
    rng = random.Random(20261125)
    site = os.path.join(top, "site")
    files = {}

    def add(rel, data):
        write(os.path.join(site, rel), data)
        files[rel] = data

    imgs = [f"img/thumb-{i:02d}.png" for i in range(12)] + ["img/hero.jpg"]
    body = "".join(f'<img src="{p}" alt="{p}">\n' for p in imgs)
    add("index.html", (
        "<!doctype html>\n<html><head><meta charset=utf-8><title>sluice k6 site</title>\n"
        '<link rel=stylesheet href="style.css"><script src="app.js"></script></head>\n'
        f"<body><h1>k6 test site</h1>\n{body}<a href=gallery/>gallery</a>\n"
        + "<p>" + "lorem ipsum " * 600 + "</p></body></html>\n").encode())
    add("style.css", ("body { margin: 0 }\n" + "".join(
        f".c{i} {{ color: #{rng.randrange(1 << 24):06x}; padding: {i % 17}px }}\n"
        for i in range(900))).encode())
    add("app.js", ("'use strict'\n" + "".join(
        f"function f{i} (x) {{ return x * {rng.randrange(1000)} + {i} }}\n"
        for i in range(1200))).encode())
    for i, p in enumerate(imgs[:-1]):
        add(p, b"\x89PNG\r\n\x1a\n" + rand_bytes(rng, 20_000 + i * 15_000))
    add("img/hero.jpg", b"\xff\xd8\xff\xe0" + rand_bytes(rng, 1_500_000))
    add("about/index.html", b"<!doctype html><title>about</title><p>about page</p>\n")
    for i in range(300):
        add(f"gallery/photo-{i:03d}.jpg", b"\xff\xd8\xff\xe0" + rand_bytes(rng, 1000 + (i * 37) % 6000))

    curl = {}
    for name, size in (("f256k", 262_144), ("f4m", 4 * 1048576), ("f16m", 16 * 1048576)):
        data = rand_bytes(rng, size)
        write(os.path.join(top, "files", name + ".bin"), data)
        ranges = [(0, 1023), (size // 3, size // 3 + 99_999)]
        if size > CHUNK:
            ranges.append((CHUNK - 5000, CHUNK + 5000))  # across a chunk boundary
        ranges_out = [{"header": f"bytes={a}-{b}", "sha256": hashlib.sha256(data[a:b + 1]).hexdigest(),
                       "content_range": f"bytes {a}-{b}/{size}", "length": b - a + 1} for a, b in ranges]
        tail = 5000
        ranges_out.append({"header": f"bytes=-{tail}", "sha256": hashlib.sha256(data[-tail:]).hexdigest(),
                           "content_range": f"bytes {size - tail}-{size - 1}/{size}", "length": tail})
        curl[name] = {"size": size, "sha256": hashlib.sha256(data).hexdigest(), "ranges": ranges_out,
                      "path": os.path.join(top, "files", name + ".bin")}

    expected = {
        "site": {rel: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for rel, d in files.items()},
        "site_dir": site,
        "images": imgs,
        "gallery": sorted(p.split("/", 1)[1] for p in files if p.startswith("gallery/")),
        "img_dir": sorted(p.split("/", 1)[1] for p in files if p.startswith("img/")),
        "curl": curl,
    }
    with open(os.path.join(top, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    total = sum(len(d) for d in files.values()) + sum(c["size"] for c in curl.values())
    print(f"content: {len(files)} site files, {len(curl)} curl files, {total / 1048576:.1f} MiB", file=sys.stderr)


# ----------------------------------------------------------------- CIDs
def varint(buf, pos):
    n = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, pos
        shift += 7


def enc_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def b58decode(s):
    n = 0
    for ch in s:
        n = n * 58 + B58.index(ch)
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(s) - len(s.lstrip("1"))) + raw


def b58encode(b):
    n = int.from_bytes(b, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(b) - len(b.lstrip(b"\0"))) + out


def cid_bytes(s):
    """CID string -> binary CID (CIDv0 base58btc 'Qm...', CIDv1 base32 'b...')."""
    if s.startswith("Qm") and len(s) == 46:
        return b58decode(s)
    if s[0] != "b":
        raise ValueError(f"only base32 CIDv1 supported here: {s}")
    t = s[1:].upper()
    return base64.b32decode(t + "=" * (-len(t) % 8))


def cid_string(b):
    if len(b) == 34 and b[0] == 0x12 and b[1] == 0x20:
        return b58encode(b)
    return "b" + base64.b32encode(b).decode().lower().rstrip("=")


def parse_cid(buf, pos):
    """-> (cid_bytes, codec, mh_code, digest, end_pos)"""
    start = pos
    if buf[pos] == 0x12 and buf[pos + 1] == 0x20:  # CIDv0: bare sha2-256 multihash
        return bytes(buf[pos:pos + 34]), 0x70, 0x12, bytes(buf[pos + 2:pos + 34]), pos + 34
    version, pos = varint(buf, pos)
    if version != 1:
        raise ValueError(f"CID version {version}")
    codec, pos = varint(buf, pos)
    code, pos = varint(buf, pos)
    length, pos = varint(buf, pos)
    digest = bytes(buf[pos:pos + length])
    return bytes(buf[start:pos + length]), codec, code, digest, pos + length


def cid_digest_hex(s):
    _, _, code, digest, _ = parse_cid(cid_bytes(s), 0)
    if code != 0x12:
        raise ValueError(f"{s}: not sha2-256")
    return digest.hex()


def raw_cid(data):
    mh = b"\x12\x20" + hashlib.sha256(data).digest()
    return cid_string(b"\x01" + enc_varint(0x55) + mh)


def verify_car(buf, root):
    """Checks every block of a CAR v1 against its CID; -> list of blocks."""
    hlen, pos = varint(buf, 0)
    pos += hlen
    blocks = []
    while pos < len(buf):
        slen, pos = varint(buf, pos)
        end = pos + slen
        cb, codec, code, digest, p = parse_cid(buf, pos)
        data = bytes(buf[p:end])
        if code == 0x12:
            if hashlib.sha256(data).digest() != digest:
                raise ValueError(f"block {cid_string(cb)} does not match its CID")
        elif code != 0x00:
            raise ValueError(f"unexpected multihash 0x{code:x}")
        blocks.append({"cid": cid_string(cb), "codec": codec, "size": len(data), "digest": digest.hex()})
        pos = end
    if not blocks or blocks[0]["cid"] != root:
        raise ValueError(f"CAR does not start with the root {root}")
    return blocks


# ----------------------------------------------------------------- manifest
def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=300) as r:
        return r.status, dict((k.lower(), v) for k, v in r.headers.items()), r.read()


def make_manifest(top, roots_json, gw, hint, out):
    exp = json.load(open(os.path.join(top, "expected.json")))
    roots = json.loads(roots_json)["roots"]
    site = roots["site"]
    H = {"X-Ipfs-Provider": hint}
    problems = []

    site_files = {}
    for rel, e in sorted(exp["site"].items()):
        st, hd, body = get(f"{gw}/ipfs/{site}/{rel}", H)
        sha = hashlib.sha256(body).hexdigest()
        if st != 200 or sha != e["sha256"]:
            problems.append(f"site/{rel}: status {st}, sha256 {sha[:12]} want {e['sha256'][:12]}")
        etag = hd.get("etag", "")
        if e["size"] <= CHUNK and etag != f'"{raw_cid(body)}"':
            problems.append(f"site/{rel}: Etag {etag} is not the raw CID of its bytes")
        site_files[rel] = {**e, "etag": etag, "content_type": hd.get("content-type", "")}

    listings = {}
    for d, names in (("gallery/", exp["gallery"]), ("img/", exp["img_dir"])):
        st, hd, body = get(f"{gw}/ipfs/{site}/{d}", {**H, "Accept": "text/html"})
        text = body.decode("utf-8", "replace")
        missing = [n for n in names if n not in text]
        if st != 200 or missing or not hd.get("content-type", "").startswith("text/html"):
            problems.append(f"listing {d}: status {st}, {len(missing)} names missing")
        listings[d] = {"etag": hd.get("etag", ""), "names": names}

    curl = {}
    for name, e in exp["curl"].items():
        cid = roots[name]
        st, hd, body = get(f"{gw}/ipfs/{cid}", H)
        if st != 200 or hashlib.sha256(body).hexdigest() != e["sha256"]:
            problems.append(f"{name}: status {st}, wrong bytes")
        if hd.get("etag") != f'"{cid}"':
            problems.append(f"{name}: Etag {hd.get('etag')} != \"{cid}\"")
        curl[name] = {"cid": cid, "size": e["size"], "sha256": e["sha256"], "ranges": e["ranges"],
                      "content_type": hd.get("content-type", "")}

    cars = {}
    all_blocks = {}
    for name in ("site", "f256k", "f4m", "f16m"):
        cid = roots[name]
        st, hd, body = get(f"{gw}/ipfs/{cid}?format=car", H)
        try:
            blocks = verify_car(body, cid)
        except ValueError as err:
            problems.append(f"CAR {name}: {err}")
            continue
        cars[name] = {"cid": cid, "digest": cid_digest_hex(cid), "blocks": len(blocks),
                      "bytes": len(body), "content_type": hd.get("content-type", "")}
        for b in blocks:
            all_blocks[b["cid"]] = b
    rng = random.Random(7)
    blist = sorted(all_blocks.values(), key=lambda b: b["cid"])
    raw = [b for b in blist if b["size"] > 1000000][:6]          # full 1 MiB leaves
    raw += [b for b in blist if b["codec"] == 0x70][:10]         # dag-pb nodes
    small = [b for b in blist if b["size"] <= 1000000 and b["codec"] != 0x70]
    raw += rng.sample(small, min(40, len(small)))
    for r in raw:
        if cid_digest_hex(r["cid"]) != r["digest"]:
            problems.append(f"CID decoder disagrees for {r['cid']}")

    if problems:
        print("manifest: PROBLEMS\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(1)
    manifest = {"site": site, "site_files": site_files, "images": exp["images"],
                "gallery": exp["gallery"], "listings": listings, "curl": curl, "cars": cars,
                "raw": [{"cid": r["cid"], "digest": r["digest"], "size": r["size"]} for r in raw]}
    with open(out, "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"manifest: {len(site_files)} site files, {len(listings)} listings, {len(curl)} curl files, "
          f"{len(cars)} CARs ({sum(c['blocks'] for c in cars.values())} blocks, all verified), "
          f"{len(raw)} raw blocks -> {out}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "content":
        make_content(sys.argv[2])
    elif len(sys.argv) == 7 and sys.argv[1] == "manifest":
        make_manifest(*sys.argv[2:])
    else:
        sys.exit(__doc__)
