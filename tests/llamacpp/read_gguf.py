"""A GGUF v3 reader for the tests, written from the format's description (ggml's
gguf.cpp / docs/gguf.md), independent of the C writer. Prints one JSON object:
  {"version", "alignment", "data_offset", "size", "kv": {key: value},
   "tensors": [{"name", "ne", "type", "offset", "nbytes", "sha256", "values"?}]}
Arrays of strings come back as lists of str (bytes decoded as UTF-8 with surrogateescape
so any bytes survive), numeric arrays as lists. With --values NAME, that tensor's
elements are decoded (F32, F16, Q8_0, IQ4_NL, IQ4_XS) and included."""
import hashlib
import json
import struct
import sys

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
BLOCKS = {0: (1, 4), 1: (1, 2), 8: (32, 34), 20: (32, 18), 23: (256, 136)}


class Reader:
    def __init__(self, data):
        self.d, self.at = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.at)[0]
        self.at += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.d[self.at:self.at + n]
        self.at += n
        return s.decode("utf-8", "surrogateescape")

    def value(self, t):
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("<I"), self.take("<Q")
            return [self.value(et) for _ in range(n)]
        return self.take(SCALARS[t])


def decode(t, raw, n):
    if t == 0:
        return list(struct.unpack("<%df" % n, raw))
    if t == 1:
        return list(struct.unpack("<%de" % n, raw))
    if t == 8:
        out = []
        for b in range(n // 32):
            blk = raw[34 * b:34 * b + 34]
            d = struct.unpack("<e", blk[:2])[0]
            out += [d * q for q in struct.unpack("<32b", blk[2:])]
        return out
    if t == 20:  # IQ4_NL: {fp16 d; 16 bytes}, low nibbles elements 0..15, high 16..31
        out = []
        for b in range(n // 32):
            blk = raw[18 * b:18 * b + 18]
            d = struct.unpack("<e", blk[:2])[0]
            out += iq4_values(d, blk[2:18])
        return out
    if t == 23:  # IQ4_XS: {fp16 D; u16 scales_h; u8 scales_l[4]; 128 bytes} per 256
        out = []
        for b in range(n // 256):
            blk = raw[136 * b:136 * b + 136]
            D = struct.unpack("<e", blk[:2])[0]
            scales_h = struct.unpack("<H", blk[2:4])[0]
            for ib in range(8):
                ls = ((blk[4 + ib // 2] >> 4 * (ib % 2)) & 15) | (((scales_h >> 2 * ib) & 3) << 4)
                out += iq4_values(f32(D * (ls - 32)), blk[8 + 16 * ib:24 + 16 * ib])
        return out
    raise ValueError("type %d not decoded" % t)


# llama.cpp's kvalues_iq4nl, from ggml's format definition
IQ4_GRID = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]


def f32(x):
    """x rounded to float32, as llama.cpp's float arithmetic rounds each product"""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def iq4_values(d, qs):
    return [f32(d * IQ4_GRID[q & 15]) for q in qs] + [f32(d * IQ4_GRID[q >> 4]) for q in qs]


def read(path, values=()):
    data = open(path, "rb").read()
    r = Reader(data)
    assert data[:4] == b"GGUF", "magic"
    r.at = 4
    version, n_t, n_kv = r.take("<I"), r.take("<Q"), r.take("<Q")
    kv = {}
    for _ in range(n_kv):
        k = r.string()
        kv[k] = r.value(r.take("<I"))
    align = kv.get("general.alignment", 32)
    infos = []
    for _ in range(n_t):
        name = r.string()
        nd = r.take("<I")
        ne = [r.take("<Q") for _ in range(nd)]
        infos.append({"name": name, "ne": ne, "type": r.take("<I"), "offset": r.take("<Q")})
    data_off = (r.at + align - 1) // align * align
    for t in infos:
        bs, bb = BLOCKS[t["type"]]
        n = 1
        for x in ne_rows(t["ne"]):
            n *= x
        t["nbytes"] = n * (t["ne"][0] // bs) * bb
        raw = data[data_off + t["offset"]:data_off + t["offset"] + t["nbytes"]]
        assert len(raw) == t["nbytes"], t["name"] + ": truncated"
        t["sha256"] = hashlib.sha256(raw).hexdigest()
        if t["name"] in values:
            t["values"] = decode(t["type"], raw, n * t["ne"][0])
    return {"version": version, "alignment": align, "data_offset": data_off, "size": len(data), "kv": kv,
            "tensors": infos}


def ne_rows(ne):
    return ne[1:]


if __name__ == "__main__":
    args = sys.argv[1:]
    vals = []
    while "--values" in args:
        i = args.index("--values")
        vals.append(args[i + 1])
        del args[i:i + 2]
    json.dump(read(args[0], vals), sys.stdout, ensure_ascii=False)
