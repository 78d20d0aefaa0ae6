"""Test cases for the C `.pth` reader (src/io/pth*.c), run by /usr/bin/python3 with torch 1.13.

  pth_cases.py write DIR   writes every case (zip and magic-number files by torch.save, tar
                           files by the writer below) and manifest.json; checks that torch.load
                           reads each tar file back bit for bit (an independent check of the
                           writer)
  pth_cases.py check DIR   for each case, DIR/<case>.safetensors (made by `ssd convert`) must
                           hold every tensor of torch.load(DIR/<case>.pth) (or of the manifest's
                           `expected` file), same names in the same order, same dtype and
                           shape, bit for bit
  pth_cases.py seeds DIR   the small committed fuzz seeds (tests/fuzz/corpus): one file per
                           container and pickle flavour, deterministic contents

The tar container (PyTorch <= 0.1.10, spec/torch-checkpoint-format.md section 1) cannot be
written by torch 1.13, so `write_tar` builds it from the spec: a PAX tar (tarfile.add of temp
files, like the old writer) with members sys_info, pickle, tensors, storages. Its pickles come
either from Python 3's pickle module (protocol 2) or, with py2=True, from `Py2Pickler`, which
emits what Python 2.7's pickler wrote for the same objects: SHORT_BINSTRING/BINSTRING for str,
OrderedDict as GLOBAL + a list of [key, value] lists + REDUCE, memoised globals (BINGET).
With views=True, tensors at a storage offset > 0 point at storage views (the list that ends the
storages member), views of views included.

Two more containers torch 1.13 cannot write: `write_legacy_views` (the magic-number layout as
torch <= 0.3 wrote it: _rebuild_tensor and view metadata in the storage persistent ids; read
back by torch.load) and `write_zip_big_endian` (a torch-saved zip rewritten with a `byteorder`
= `big` record and byte-swapped storages; torch 1.13 ignores the record, so its torch.load
must give every element byte-swapped, and the expected values come from the little-endian
original).
"""
import collections
import importlib
import json
import os
import pickle
import struct
import sys
import tarfile
import tempfile

import torch

_TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_TOOLS, "torchref"))
import st  # noqa: E402  (tools/torchref/st.py: the project's stdlib safetensors reader)

# ---------------------------------------------------------------- state_dicts


def resnet34_state_dict(seed, with_counters):
    """torchvision ResNet-34 keys, shapes and dtypes (spec section 6), random values."""
    g = torch.Generator().manual_seed(seed)
    sd = collections.OrderedDict()

    def bn(prefix, c):
        sd[prefix + ".weight"] = torch.rand(c, generator=g) + 0.5
        sd[prefix + ".bias"] = torch.randn(c, generator=g) * 0.1
        sd[prefix + ".running_mean"] = torch.randn(c, generator=g) * 0.1
        sd[prefix + ".running_var"] = torch.rand(c, generator=g) + 0.5
        if with_counters:
            sd[prefix + ".num_batches_tracked"] = torch.randint(0, 10**9, (), generator=g)

    def conv(name, k, c, r):
        sd[name] = torch.randn(k, c, r, r, generator=g) * (2.0 / (k * r * r)) ** 0.5

    conv("conv1.weight", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for li, (c, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for b in range(blocks):
            p = "layer%d.%d" % (li, b)
            conv(p + ".conv1.weight", c, cin if b == 0 else c, 3)
            bn(p + ".bn1", c)
            conv(p + ".conv2.weight", c, c, 3)
            bn(p + ".bn2", c)
            if b == 0 and li > 1:
                conv(p + ".downsample.0.weight", c, cin, 1)
                bn(p + ".downsample.1", c)
        cin = c
    sd["fc.weight"] = torch.randn(1000, 512, generator=g) * 0.01
    sd["fc.bias"] = torch.randn(1000, generator=g) * 0.01
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("bn1", {"version": 2})])
    return sd


def edge_state_dict(seed, nested=True):
    """Views with offsets and strides, shared storages, every dtype the reader promises
    bit-exactly, empty and 0-d tensors, an expanded (stride 0) view, a Parameter."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(6, 7, generator=g)
    sd = collections.OrderedDict()
    sd["arange"] = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    sd["transposed"] = base.t()                      # strides (1, 7)
    sd["row_slice"] = base[2:5]                      # offset 14, shares base's storage
    sd["col_step"] = base[:, 1::3]                   # offset 1, strides (7, 3)
    sd["shared_again"] = base                        # same storage, offset 0
    sd["expanded"] = torch.arange(3.0).expand(4, 3)  # stride (0, 1)
    sd["f64"] = torch.randn(3, 2, generator=g, dtype=torch.float64)
    sd["f16"] = (torch.randn(5, generator=g) * 100).half()
    sd["f16_special"] = torch.tensor([0.0, -0.0, 65504.0, 6e-8, float("inf")], dtype=torch.half)
    sd["bf16"] = torch.randn(2, 2, 2, generator=g).bfloat16()
    sd["i64"] = torch.tensor([-(2**62), -1, 0, 1, 2**62 + 12345], dtype=torch.int64)
    sd["i64_scalar"] = torch.tensor(1234567890123, dtype=torch.int64)
    sd["f32_scalar"] = torch.tensor(-0.5)
    sd["empty"] = torch.zeros(0)
    sd["empty_2d"] = torch.zeros(2, 0, 3)
    sd["param"] = torch.nn.Parameter(torch.randn(4, generator=g))
    sd["nan_payload"] = torch.tensor([float("nan"), 1.0]).view(torch.int32).add(7).view(torch.float32)
    if nested:
        sd["sub"] = collections.OrderedDict([("w", base[1]), ("deeper", {"b": torch.ones(2)})])
        sd["epoch"] = 7  # not a tensor: skipped by the reader
    return sd


def views_state_dict(seed):
    """edge_state_dict without nesting, plus slices at storage offsets > 0 of every promised
    dtype (for the writers that express them through storage views): two tensors at the same
    offset of one storage, a strided slice, a slice that ends at its storage's end."""
    g = torch.Generator().manual_seed(seed)
    sd = edge_state_dict(seed, nested=False)
    big = torch.randn(100, generator=g)
    sd["v_head"] = big[:10]
    sd["v_mid"] = big[10:30].view(4, 5)
    sd["v_mid_t"] = big[10:30].view(4, 5).t()
    sd["v_tail"] = big[90:]
    sd["v_step"] = big[41:80:3]
    sd["v_f64"] = torch.randn(50, generator=g, dtype=torch.float64)[7:19].view(3, 4)
    sd["v_f16"] = (torch.randn(40, generator=g) * 10).half()[5:17]
    sd["v_i64"] = (torch.arange(30, dtype=torch.int64) * (2**40 + 3) - 2**45)[11:29:2]
    sd["v_bf16"] = torch.randn(24, generator=g).bfloat16()[3:].view(3, 7)
    return sd


def flatten(obj, prefix=""):
    """The reader's view of a (nested) dict: name -> tensor in order, non-tensors dropped."""
    out = collections.OrderedDict()
    for k, v in obj.items():
        name = prefix + "." + k if prefix else k
        if torch.is_tensor(v):
            out[name] = v
        elif isinstance(v, dict):
            out.update(flatten(v, name))
    return out


# ---------------------------------------------------------------- the tar container


class Global:
    def __init__(self, module, name):
        self.module, self.name = module, name


class PersId:
    def __init__(self, pid):
        self.pid = pid


class Reduce:
    """callable(*args) as GLOBAL, args tuple, REDUCE (e.g. torch._utils._rebuild_tensor)."""

    def __init__(self, func, args):
        self.func, self.args = func, args


class Py2Pickler:
    """Protocol-2 pickles as Python 2.7 wrote them (str -> SHORT_BINSTRING/BINSTRING)."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.n = 0
        self.globals = {}

    def _put(self):
        self.out += (b"q" + struct.pack("<B", self.n)) if self.n < 256 else (b"r" + struct.pack("<I", self.n))
        self.n += 1
        return self.n - 1

    def _get(self, i):
        self.out += (b"h" + struct.pack("<B", i)) if i < 256 else (b"j" + struct.pack("<I", i))

    def obj(self, v):
        o = self.out
        if v is None:
            o += b"N"
        elif v is True or v is False:
            o += b"\x88" if v else b"\x89"
        elif isinstance(v, int):
            if 0 <= v < 256:
                o += b"K" + struct.pack("<B", v)
            elif 0 <= v < 65536:
                o += b"M" + struct.pack("<H", v)
            elif -2**31 <= v < 2**31:
                o += b"J" + struct.pack("<i", v)
            else:
                b = v.to_bytes(9, "little", signed=True).rstrip(b"\x00") or b"\x00"
                if b[-1] & 0x80 and v > 0:
                    b += b"\x00"
                o += b"\x8a" + struct.pack("<B", len(b)) + b
        elif isinstance(v, str):
            b = v.encode("latin-1")
            o += (b"U" + struct.pack("<B", len(b))) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)))
            o += b
            self._put()
        elif isinstance(v, Global):
            key = (v.module, v.name)
            if key in self.globals:
                self._get(self.globals[key])
            else:
                o += b"c" + v.module.encode() + b"\n" + v.name.encode() + b"\n"
                self.globals[key] = self._put()
        elif isinstance(v, PersId):
            self.obj(v.pid)
            o += b"Q"
        elif isinstance(v, Reduce):
            self.obj(v.func)
            self.obj(v.args)
            o += b"R"
            self._put()
        elif isinstance(v, tuple):
            if len(v) == 0:
                o += b")"
            elif len(v) <= 3:
                for x in v:
                    self.obj(x)
                o += bytes([0x84 + len(v)])
            else:
                o += b"("
                for x in v:
                    self.obj(x)
                o += b"t"
            self._put()
        elif isinstance(v, list):
            o += b"]"
            self._put()
            if v:
                o += b"("
                for x in v:
                    self.obj(x)
                o += b"e"
        elif isinstance(v, collections.OrderedDict):
            self.obj(Global("collections", "OrderedDict"))
            self.obj(([[k, x] for k, x in v.items()],))
            o += b"R"
            self._put()
        elif isinstance(v, dict):
            o += b"}"
            self._put()
            if v:
                o += b"("
                for k, x in v.items():
                    self.obj(k)
                    self.obj(x)
                o += b"u"
        else:
            raise TypeError(type(v))
        return self

    def dumps(self):
        return bytes(self.out + b".")


_STORAGE = {torch.float32: "FloatStorage", torch.float64: "DoubleStorage", torch.float16: "HalfStorage",
            torch.bfloat16: "BFloat16Storage", torch.int64: "LongStorage", torch.int32: "IntStorage"}
_TENSOR = {k: v.replace("Storage", "Tensor") for k, v in _STORAGE.items()}


class _Py3Pickler(pickle.Pickler):
    def __init__(self, f, pids):
        super().__init__(f, protocol=2)
        self.pids = pids

    def persistent_id(self, obj):
        if isinstance(obj, PersId):
            return obj.pid
        return self.pids.get(id(obj))

    def reducer_override(self, obj):
        if isinstance(obj, Reduce):
            return obj.func, obj.args
        return NotImplemented


def _dump(obj, py2, pids=None):
    if py2:
        return Py2Pickler().obj(obj).dumps()
    import io
    buf = io.BytesIO()

    def conv(v):  # Global placeholders -> the real objects for Python 3's pickler
        if isinstance(v, Global):
            return getattr(importlib.import_module(v.module), v.name)
        if isinstance(v, tuple):
            return tuple(conv(x) for x in v)
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return type(v)((k, conv(x)) for k, x in v.items())
        if isinstance(v, PersId):
            return PersId(conv(v.pid))
        if isinstance(v, Reduce):
            return Reduce(conv(v.func), conv(v.args))
        return v
    _Py3Pickler(buf, pids or {}).dump(conv(obj))
    return buf.getvalue()


def _storage_bytes(s, dt):
    return torch.tensor([], dtype=dt).set_(s).view(torch.uint8).numpy().tobytes() if s.size() else b""


def _view_plan(sd, root_of, nested, new_key):
    """Storage views for the tensors of sd that start at a storage offset > 0.

    root_of(name) -> (root key, root numel). Returns (views, where): views = OrderedDict view
    key -> (parent key, offset in the parent, numel), parents first; where = name -> (key of the
    storage the tensor is written against, its offset in that storage). Tensors take turns:
    a view that starts at the tensor and ends at the last element it reaches; a view from half
    its offset to the root's end (the tensor at an offset inside the view); with nested, a view
    inside a view (from a third of the offset to the end) that starts at the tensor. A later
    tensor at the same root and offset that fits shares the earlier tensor's view."""
    views, where, seen, turn = collections.OrderedDict(), {}, {}, 0
    for name, t in sd.items():
        rk, rn = root_of(name)
        off = t.storage_offset()
        if t.numel() == 0 or off == 0:
            where[name] = (rk, off)
            continue
        end = off + 1 + sum((n - 1) * st for n, st in zip(t.shape, t.stride()))
        if (rk, off) in seen and end <= seen[(rk, off)][2]:
            vk, vstart, _ = seen[(rk, off)]
            where[name] = (vk, off - vstart)
            continue
        mode, turn = turn % (3 if nested else 2), turn + 1
        vk = new_key()
        if mode == 0:
            views[vk] = (rk, off, end - off)
            seen[(rk, off)] = (vk, off, end)
        elif mode == 1:
            views[vk] = (rk, off // 2, rn - off // 2)
            seen[(rk, off)] = (vk, off // 2, rn)
        else:
            pk, p = vk, off // 3
            views[pk] = (rk, p, rn - p)
            vk = new_key()
            views[vk] = (pk, off - p, end - off)
            seen[(rk, off)] = (vk, off, end)
        where[name] = (vk, off - seen[(rk, off)][1])
    return views, where


def write_tar(path, sd, py2, key_base=139872413091840, views=False):
    """sd: OrderedDict name -> tensor (one level; the tar era had no nesting here).

    views=True: each tensor at a storage offset > 0 is written against a storage view (the
    list that ends the storages member, spec section 1) planned by _view_plan, views of views
    included; its offset in the tensors member then counts from the view."""
    storages = collections.OrderedDict()  # (data_ptr, dtype) -> (key, storage)
    root_of = {}
    for name, t in sd.items():
        s = t.detach().storage()
        sid = (s.data_ptr(), t.dtype)
        if sid not in storages:
            storages[sid] = (key_base + 16 * len(storages), s)
        root_of[name] = (storages[sid][0], s.size())
    view_keys = iter(range(key_base + 500000, key_base + 1000000, 16))
    if views:
        vlist, where = _view_plan(sd, root_of.get, True, lambda: next(view_keys))
    else:
        vlist, where = {}, {n: (root_of[n][0], t.storage_offset()) for n, t in sd.items()}
    names = list(sd.keys())
    tkeys = [key_base + 1000000 + 16 * i for i in range(len(names))]
    main = collections.OrderedDict((n, PersId(str(k))) for n, k in zip(names, tkeys))
    sys_info = dict(protocol_version=1000, little_endian=True, type_sizes=dict(short=2, int=4, long=8))
    if not py2:  # Python 3's pickler: persistent ids through persistent_id()
        objs = collections.OrderedDict((n, sd[n].detach()) for n in names)
        pids = {id(objs[n]): str(k) for n, k in zip(names, tkeys)}
        pickle_bytes = _dump(objs, False, pids)
    else:
        pickle_bytes = _dump(main, True)
    tens = bytearray(_dump(len(names), py2))
    for k, n in zip(tkeys, names):
        t = sd[n].detach()
        skey, off = where[n]
        tens += _dump((k, skey, Global("torch", _TENSOR[t.dtype])), py2)
        tens += struct.pack("<i4x", t.dim())
        tens += struct.pack("<%dq" % t.dim(), *t.shape) + struct.pack("<%dq" % t.dim(), *t.stride())
        tens += struct.pack("<q", off)
    stor = bytearray(_dump(len(storages), py2))
    for (ptr, dt), (k, s) in storages.items():
        stor += _dump((k, "cpu", Global("torch", _STORAGE[dt])), py2)
        stor += struct.pack("<q", s.size()) + _storage_bytes(s, dt)
    stor += _dump([(vk, pk, off, n) for vk, (pk, off, n) in vlist.items()], py2)
    tmpdir = tempfile.mkdtemp(dir=os.path.dirname(os.path.abspath(path)))
    tmp = path + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in [("sys_info", _dump(sys_info, py2)), ("pickle", pickle_bytes),
                             ("tensors", bytes(tens)), ("storages", bytes(stor))]:
            fn = os.path.join(tmpdir, member)
            with open(fn, "wb") as f:
                f.write(data)
            tar.add(fn, arcname=member)
            os.remove(fn)
    os.rmdir(tmpdir)
    os.replace(tmp, path)


# ---------------------------------------------------------------- legacy views, big-endian zip

_MAGIC = 0x1950a86a20f9469cfc6c


def write_legacy_views(path, sd, py2, key_base=94571423703040):
    """The magic-number container as torch <= 0.3 wrote it (spec section 2), which torch 1.13
    cannot write: tensors pickled as _rebuild_tensor(storage, offset, size, stride); a tensor at
    a storage offset > 0 written against a storage view (_view_plan, no views of views), i.e.
    persistent id ('storage', type, root key, 'cpu', root numel, (view key, offset, view
    numel)) with the tensor's offset counted from the view; roots get view_metadata None. Then
    the root keys sorted as strings and, per key, int64 count + raw little-endian bytes."""
    roots = collections.OrderedDict()  # (data_ptr, dtype) -> (key, storage)
    root_of = {}
    for name, t in sd.items():
        s = t.detach().storage()
        sid = (s.data_ptr(), t.dtype)
        if sid not in roots:
            roots[sid] = (str(key_base + 16 * len(roots)), s)
        root_of[name] = roots[sid]
    view_keys = iter(range(key_base + 500000, key_base + 1000000, 16))
    views, where = _view_plan(sd, lambda n: (root_of[n][0], root_of[n][1].size()), False,
                              lambda: str(next(view_keys)))
    main = collections.OrderedDict()
    for name, t in sd.items():
        rk, s = root_of[name]
        skey, off = where[name]
        vm = None if skey == rk else (skey, views[skey][1], views[skey][2])
        pid = ("storage", Global("torch", _STORAGE[t.dtype]), rk, "cpu", s.size(), vm)
        main[name] = Reduce(Global("torch._utils", "_rebuild_tensor"),
                            (PersId(pid), off, tuple(t.shape), tuple(t.stride())))
    sys_info = dict(protocol_version=1001, little_endian=True, type_sizes=dict(short=2, int=4, long=8))
    keys = sorted(k for k, _ in roots.values())
    by_key = {k: (s, dt) for (ptr, dt), (k, s) in roots.items()}
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(pickle.dumps(_MAGIC, protocol=2) + _dump(1001, py2) + _dump(sys_info, py2))
        f.write(_dump(main, py2) + _dump(keys, py2))
        for k in keys:
            s, dt = by_key[k]
            f.write(struct.pack("<q", s.size()) + _storage_bytes(s, dt))
    os.replace(tmp, path)


def write_zip_big_endian(path, sd, le_path):
    """The zip container as torch >= 2.1 writes it on a big-endian machine: a `byteorder`
    record `big` right after data.pkl, every data/<key> record's elements byte-swapped. torch
    1.13 cannot write it: torch.save(sd, le_path), then copy its records with Python's zipfile
    under the top folder of `path`, stored, data 64-byte aligned by an 'FB' extra field of 'Z's
    as torch pads, swapping each data/<key> by the element size of its storage type (from
    data.pkl's persistent ids, read with an Unpickler that builds no tensors)."""
    import io
    import numpy as np
    import zipfile
    torch.save(sd, le_path)
    esize = {}

    class Types(pickle.Unpickler):
        def find_class(self, module, name):
            if module == "torch._utils":
                return lambda *args: None
            return super().find_class(module, name)

        def persistent_load(self, pid):  # ('storage', type, key, location, numel)
            esize[pid[2]] = torch._utils._element_size(pid[1].dtype)

    tmp = path + ".tmp"
    top = os.path.splitext(os.path.basename(path))[0]
    with zipfile.ZipFile(le_path) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zout:
        names = zin.namelist()
        src = names[0].split("/")[0] + "/"
        Types(io.BytesIO(zin.read(src + "data.pkl"))).load()

        def put(rel, data):
            zi = zipfile.ZipInfo(top + "/" + rel, date_time=(1980, 1, 1, 0, 0, 0))
            start = zout.fp.tell() + 30 + len(zi.filename.encode()) + 4
            pad = -start % 64
            zi.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            zout.writestr(zi, data)
        for name in names:
            rel = name[len(src):]
            data = zin.read(name)
            if rel.startswith("data/"):
                es = esize.pop(rel[5:])
                if es > 1:
                    data = np.frombuffer(data, dtype="<u%d" % es).byteswap().tobytes()
            put(rel, data)
            if rel == "data.pkl":
                put("byteorder", b"big")
        assert not esize, "storages without a record: %s" % sorted(esize)
    os.replace(tmp, path)


# ---------------------------------------------------------------- comparison


def same_bits(a, b):
    if a.dtype == torch.bfloat16 and b.dtype == torch.float32:  # st.read widens BF16 (exactly)
        a = a.float()
    if a.dtype != b.dtype or tuple(a.shape) != tuple(b.shape):
        return False
    a, b = a.contiguous(), b.contiguous()
    if a.dtype in (torch.bfloat16, torch.float16):
        a, b = a.view(torch.int16), b.view(torch.int16)
    return a.numpy().tobytes() == b.numpy().tobytes()


def compare(expected, got, what):
    """expected/got: OrderedDict name -> tensor; returns a list of problems."""
    bad = []
    if list(expected.keys()) != list(got.keys()):
        bad.append("%s: names differ: %s vs %s" % (what, list(expected)[:5], list(got)[:5]))
    for n, t in expected.items():
        if n in got and not same_bits(t.detach(), got[n].detach()):
            bad.append("%s: tensor %s differs (%s %s vs %s %s)" % (what, n, t.dtype, tuple(t.shape),
                                                                   got[n].dtype, tuple(got[n].shape)))
    return bad


def cases():
    """(file name, container, state_dict maker, saver, torch_load).

    The saver may return the name of a file whose torch.load gives the expected tensors
    (when torch 1.13 cannot read the case's own file right). torch_load says how `write`
    checks torch 1.13's torch.load of the file against the state_dict: None (torch wrote the
    file), "same" (bit for bit: an independent check of our writers), "swapped" (torch 1.13
    ignores the byteorder record, so it must give every element byte-swapped)."""
    def zip_save(p4=False):
        return lambda sd, path: torch.save(sd, path, pickle_protocol=4 if p4 else 2)

    def legacy_save(sd, path):
        torch.save(sd, path, _use_new_zipfile_serialization=False)

    def big_endian(sd, path):
        le = os.path.splitext(path)[0] + ".le.pth"
        write_zip_big_endian(path, sd, le)
        return os.path.basename(le)
    return [
        ("resnet34_zip", "zip", lambda: resnet34_state_dict(34, True), zip_save(), None),
        ("resnet34_legacy", "legacy", lambda: resnet34_state_dict(34, True), legacy_save, None),
        ("resnet34_tar", "tar", lambda: resnet34_state_dict(34, False), lambda sd, p: write_tar(p, sd, True),
         "same"),
        ("edge_zip", "zip", lambda: edge_state_dict(1), zip_save(), None),
        ("edge_zip_p4", "zip", lambda: edge_state_dict(2), zip_save(True), None),
        ("edge_legacy", "legacy", lambda: edge_state_dict(3), legacy_save, None),
        ("edge_tar_py2", "tar", lambda: edge_state_dict(4, False), lambda sd, p: write_tar(p, sd, True), "same"),
        ("edge_tar_py3", "tar", lambda: edge_state_dict(5, False), lambda sd, p: write_tar(p, sd, False),
         "same"),
        ("edge_zip_big_endian", "zip", lambda: edge_state_dict(6), big_endian, "swapped"),
        ("views_tar_py2", "tar", lambda: views_state_dict(7), lambda sd, p: write_tar(p, sd, True, views=True),
         "same"),
        ("views_tar_py3", "tar", lambda: views_state_dict(8), lambda sd, p: write_tar(p, sd, False, views=True),
         "same"),
        ("views_legacy_py2", "legacy", lambda: views_state_dict(9), lambda sd, p: write_legacy_views(p, sd, True),
         "same"),
        ("views_legacy_py3", "legacy", lambda: views_state_dict(10),
         lambda sd, p: write_legacy_views(p, sd, False), "same"),
    ]


def byteswapped(t):
    """t with the bytes of every element reversed."""
    import numpy as np
    t = t.detach().contiguous()
    es = t.element_size()
    if es == 1 or t.numel() == 0:
        return t.clone()
    u = t.reshape(-1).view(torch.uint8).numpy().reshape(-1, es)[:, ::-1].copy()
    return torch.from_numpy(u.reshape(-1)).view(t.dtype).reshape(t.shape)


def cmd_write(d):
    os.makedirs(d, exist_ok=True)
    manifest, bad = [], []
    for name, container, make, save, torch_load in cases():
        sd = make()
        path = os.path.join(d, name + ".pth")
        expected = save(sd, path)
        flat = flatten(sd)
        if torch_load == "same":  # torch's own reader must agree with our writer
            bad += compare(flat, flatten(torch.load(path)), "torch.load(%s)" % path)
        elif torch_load == "swapped":
            bad += compare(collections.OrderedDict((n, byteswapped(t)) for n, t in flat.items()),
                           flatten(torch.load(path)), "torch.load(%s), byte-swapped" % path)
        manifest.append(dict(name=name, container=container, tensors=len(flat),
                             bytes=os.path.getsize(path)))
        if expected:
            manifest[-1]["expected"] = expected
    # for --pretrained-backbone's refusals (not converted): one wrong shape, one tensor missing
    sd = collections.OrderedDict((k, v) for k, v in resnet34_state_dict(7, False).items()
                                 if not k.startswith(("layer4.", "fc.")))
    sd["layer2.1.conv1.weight"] = torch.zeros(128, 128, 1, 1)
    torch.save(sd, os.path.join(d, "bad_shape.pth"))
    sd = collections.OrderedDict((k, v) for k, v in resnet34_state_dict(7, False).items()
                                 if k != "layer3.5.bn2.running_var")
    torch.save(sd, os.path.join(d, "missing_tensor.pth"))
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    for m in manifest:
        print("%-19s %-6s %4d tensors %10d bytes" % (m["name"], m["container"], m["tensors"], m["bytes"]))
    for b in bad:
        print("FAIL", b)
    return 1 if bad else 0


def cmd_check(d):
    with open(os.path.join(d, "manifest.json")) as f:
        manifest = json.load(f)
    bad = []
    for m in manifest:
        expected = flatten(torch.load(os.path.join(d, m.get("expected", m["name"] + ".pth"))))
        got, meta = st.read(os.path.join(d, m["name"] + ".safetensors"))
        bad += compare(expected, got, m["name"])
        if meta.get("container") != m["container"]:
            bad.append("%s: container %r, expected %r" % (m["name"], meta.get("container"), m["container"]))
        print("%-19s %4d tensors: %s" % (m["name"], len(expected), "ok" if not bad else "see below"))
    for b in bad:
        print("FAIL", b)
    return 1 if bad else 0


def cmd_seeds(d):
    os.makedirs(d, exist_ok=True)
    small = collections.OrderedDict()
    small["w"] = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()  # [[0,3],[1,4],[2,5]]
    small["n"] = torch.tensor(42, dtype=torch.int64)
    small["h"] = torch.tensor([1.0, -2.0], dtype=torch.half)
    small["v"] = torch.arange(10, dtype=torch.float64)[3:7]               # 3,4,5,6
    torch.save(small, os.path.join(d, "small_zip.pth"))
    torch.save(small, os.path.join(d, "small_zip_p4.pth"), pickle_protocol=4)
    torch.save(small, os.path.join(d, "small_legacy.pth"), _use_new_zipfile_serialization=False)
    write_tar(os.path.join(d, "small_tar_py2.pth"), small, True)
    write_tar(os.path.join(d, "small_tar_py3.pth"), small, False)
    return 0


if __name__ == "__main__":
    cmds = {"write": cmd_write, "check": cmd_check, "seeds": cmd_seeds}
    if len(sys.argv) != 3 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    sys.exit(cmds[sys.argv[1]](sys.argv[2]))
