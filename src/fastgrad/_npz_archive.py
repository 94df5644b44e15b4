"""Bounded reading and streaming writing of an uncompressed zip of .npy members (a .npz file).

Reading trusts nothing in the file: before any tensor memory is allocated, every member must
be stored uncompressed, lie inside the file without overlapping another member, and declare in
its zip entry exactly the size its .npy header implies (shape x itemsize), with a dtype from
fastgrad's table. Each member's bytes are read once, straight into the array that is returned,
and checked against the zip CRC-32. So a file can never produce more tensor bytes than it
holds, and damaged bytes are reported rather than returned. Problems raise `Malformed`.
"""
import ast
import io
import math
import struct
import sys
import warnings
import zipfile
import zlib

import numpy as np

from fastgrad import _dtypes

_CHUNK = 16 << 20           # bytes per read/write call: bounds the transient buffers
_MAX_HEADER = 10000         # NumPy's own default limit on an .npy header
_MAX_NDIM = 64              # NumPy's limit on dimensions
_LOCAL_HEADER = struct.Struct("<4s5H3I2H")      # zip local file header, 30 bytes
_NPY_MAGIC = b"\x93NUMPY"
_DATE = (1980, 1, 1, 0, 0, 0)                   # fixed: the same object saves to the same bytes


class Malformed(Exception):
    """The archive is damaged or is not one this module writes; the message says what."""


def _descr_table():
    """'.npy' dtype strings fastgrad accepts -> (native NumPy dtype, bytes need swapping)."""
    table = {}
    for dt in _dtypes.ALL:
        native = dt.np_dtype.newbyteorder("=")
        for order in "<>":
            stored = native.newbyteorder(order)
            table[stored.str] = (native, not stored.isnative)
    return table


_DESCRS = _descr_table()


# ----------------------------------------------------------------------------- writing

def _npy_header(arr):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(arr))
    return buf.getvalue()


def _write_chunk(out, chunk):
    out.write(chunk)


def write(fh, members):
    """Write `members` (name -> C-contiguous ndarray) as '<name>.npy' entries to `fh`."""
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in members.items():
            header = _npy_header(arr)
            info = zipfile.ZipInfo(name + ".npy", date_time=_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16              # rw-r--r-- when unzipped
            info.file_size = len(header) + arr.nbytes      # lets zipfile pick zip64 up front
            with zf.open(info, "w") as out:
                out.write(header)
                data = memoryview(arr.reshape(-1).view(np.uint8))
                for start in range(0, len(data), _CHUNK):
                    _write_chunk(out, data[start:start + _CHUNK])


# ----------------------------------------------------------------------------- reading

class _Member:
    __slots__ = ("name", "info", "start", "end", "header", "data_pos", "shape", "dtype", "swap")


def _read_at(fh, pos, size):
    fh.seek(pos)
    data = fh.read(size)
    if len(data) != size:
        raise Malformed(f"the file ends inside a member ({len(data)} of {size} bytes at "
                        f"offset {pos})")
    return data


def _local_data_start(fh, info):
    """Offset of a member's first byte, from its local header (which must match the directory)."""
    (sig, _, _, _, _, _, _, _, _, name_len, extra_len) = _LOCAL_HEADER.unpack(
        _read_at(fh, info.header_offset, _LOCAL_HEADER.size))
    if sig != b"PK\x03\x04":
        raise Malformed(f"member {info.filename!r} has no local header at offset "
                        f"{info.header_offset}")
    raw = _read_at(fh, info.header_offset + _LOCAL_HEADER.size, name_len)
    encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
    if raw.decode(encoding, "replace") != info.orig_filename:
        raise Malformed(f"member {info.filename!r}: its local header names "
                        f"{raw.decode(encoding, 'replace')!r}")
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len


def _parse_npy_header(m, fh):
    """Shape and dtype from the member's .npy header; its size must match the zip entry's."""
    size = m.info.file_size
    prelude = _read_at(fh, m.start, min(size, 12))
    if len(prelude) < 10 or prelude[:6] != _NPY_MAGIC:
        raise Malformed(f"member {m.name!r} is not a .npy array")
    version = prelude[6:8]
    if version == b"\x01\x00":
        head_len, text_at, encoding = struct.unpack("<H", prelude[8:10])[0], 10, "latin1"
    elif version in (b"\x02\x00", b"\x03\x00") and len(prelude) == 12:
        head_len, text_at = struct.unpack("<I", prelude[8:12])[0], 12
        encoding = "latin1" if version == b"\x02\x00" else "utf-8"
    else:
        raise Malformed(f"member {m.name!r}: unknown .npy version {tuple(version)}")
    if head_len > _MAX_HEADER or text_at + head_len > size:
        raise Malformed(f"member {m.name!r}: .npy header of {head_len} bytes does not fit")
    m.header = prelude[:text_at] + _read_at(fh, m.start + text_at, head_len)
    m.data_pos = m.start + text_at + head_len
    try:
        with warnings.catch_warnings():     # e.g. a damaged escape sequence in the header text
            warnings.simplefilter("ignore")
            d = ast.literal_eval(m.header[text_at:].decode(encoding))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise Malformed(f"member {m.name!r}: unreadable .npy header") from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise Malformed(f"member {m.name!r}: .npy header is not "
                        f"{{'descr', 'fortran_order', 'shape'}}")
    descr, fortran, shape = d["descr"], d["fortran_order"], d["shape"]
    if not isinstance(descr, str) or descr not in _DESCRS:
        raise Malformed(f"member {m.name!r}: dtype {descr!r} is not one of fastgrad's dtypes")
    if fortran is not False:
        raise Malformed(f"member {m.name!r}: fortran_order={fortran!r}; fastgrad.save stores "
                        f"C-ordered arrays only (not Fortran order)")
    if (not isinstance(shape, tuple) or len(shape) > _MAX_NDIM
            or not all(type(n) is int and 0 <= n < 2 ** 63 for n in shape)):
        raise Malformed(f"member {m.name!r}: invalid shape {shape!r}")
    m.dtype, m.swap = _DESCRS[descr]
    m.shape = shape
    if math.prod(max(n, 1) for n in shape) * m.dtype.itemsize > sys.maxsize:
        raise Malformed(f"member {m.name!r}: shape {shape} is too large for any array")
    nbytes = math.prod(shape) * m.dtype.itemsize
    if m.data_pos + nbytes != m.end:
        raise Malformed(f"member {m.name!r}: shape {shape} of {descr} needs {nbytes} bytes but "
                        f"the entry holds {m.end - m.data_pos}")


class Reader:
    """The members of an archive, checked for layout and size; `array(name)` reads one."""

    def __init__(self, fh):
        self._fh = fh
        try:
            zf = zipfile.ZipFile(fh)
        except Exception as e:      # any failure to parse untrusted bytes means: not an archive
            if fh.seek(0, io.SEEK_END) == 0:
                raise Malformed("the file is empty") from None
            raise Malformed(f"not a zip archive ({type(e).__name__}: {e})") from None
        infos = zf.infolist()
        zf.close()                  # leaves `fh` open: the directory has been read
        limit = getattr(zf, "start_dir", None)
        if limit is None:
            limit = fh.seek(0, io.SEEK_END)
        self.members = {}
        for info in infos:
            name = info.filename
            if name == "data.pkl" or name.endswith("/data.pkl"):
                raise Malformed(f"it is a PyTorch checkpoint (member {name!r}: torch.save's "
                                f"pickled data), which fastgrad does not unpickle")
            if not name.endswith(".npy"):
                raise Malformed(f"member {name!r} is not a .npy array")
            if name[:-4] in self.members:
                raise Malformed(f"member {name!r} appears more than once")
            if info.flag_bits & 0x1:
                raise Malformed(f"member {name!r} is encrypted")
            if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                raise Malformed(f"member {name!r} is compressed (method {info.compress_type}); "
                                f"fastgrad.save stores members uncompressed")
            if info.header_offset < 0:
                raise Malformed(f"member {name!r} starts before the archive")
            m = _Member()
            m.name, m.info = name, info
            m.start = _local_data_start(fh, info)
            m.end = m.start + info.file_size
            self.members[name[:-4]] = m
        spans = sorted((m.info.header_offset, m.end, m.name) for m in self.members.values())
        for (_, end, name), (next_start, _, _) in zip(spans, spans[1:] + [(limit, 0, "")]):
            if end > next_start:
                raise Malformed(f"member {name!r} overlaps the next entry or runs past the end "
                                f"of the archive")
        for m in self.members.values():
            _parse_npy_header(m, fh)

    def header(self, key):
        """(native NumPy dtype, shape) of member `key`, known before its data is read."""
        m = self.members[key]
        return m.dtype, m.shape

    def array(self, key):
        """Member `key` as a new native-byte-order ndarray, read once and CRC-checked."""
        m = self.members[key]
        arr = np.empty(m.shape, dtype=m.dtype)
        buf = memoryview(arr.reshape(-1).view(np.uint8))
        crc = zlib.crc32(m.header)
        fh = self._fh
        fh.seek(m.data_pos)
        readinto = getattr(fh, "readinto", None)
        for start in range(0, len(buf), _CHUNK):
            chunk = buf[start:start + _CHUNK]
            got = 0
            while got < len(chunk):
                if readinto is not None:
                    n = readinto(chunk[got:])
                else:
                    data = fh.read(len(chunk) - got)
                    n = len(data)
                    chunk[got:got + n] = data
                if not n:
                    raise Malformed(f"the file ends inside member {m.name!r}")
                got += n
            crc = zlib.crc32(chunk, crc)
        if crc != m.info.CRC:
            raise Malformed(f"member {m.name!r} fails its CRC-32 check (its bytes were changed)")
        if m.swap:
            arr.byteswap(inplace=True)
        if arr.dtype == np.bool_ and arr.size and int(np.max(buf)) > 1:
            raise Malformed(f"member {m.name!r}: bool array holds bytes other than 0 and 1")
        return arr
