"""An emulation of CuPy over NumPy, for the ``gpu`` tests on a machine without a GPU.

Not CuPy: a stand-in that behaves like it where the project's GPU path can go wrong on a CPU
(tests/README.md, "The CuPy emulation"). It is imported as ``cupy`` only when asked
(``MFPHYS_FAKE_CUPY=1`` or ``pytest --fake-cupy``; never in place of an installed CuPy otherwise).

What it holds to, as CuPy does:

- its arrays are of type ``cupy.ndarray`` (module ``cupy``), so ``mfphys.backend.namespace_of``
  and ``mfphys.kernels`` take the CuPy path;
- they refuse implicit conversion to NumPy (``numpy.asarray(a)`` raises ``TypeError``), and
  arithmetic or a ``cupy`` function mixing them with NumPy arrays raises ``TypeError``;
- ``cupy.asnumpy``, ``.get()``, ``.item()``, ``.tolist()``, ``bool()``, ``int()``, ``float()`` work but
  are host synchronisations: each is recorded with the file:line of the caller
  (:data:`SYNCS`), and raises inside ``cupyx.allow_synchronize(False)`` as CuPy does;
  host-to-device copies (``cupy.asarray`` of a NumPy array) are recorded in :data:`COPIES`;
- ``ElementwiseKernel``: the kernel's own C body is translated to NumPy and run, after CuPy's
  type check (every ``T`` argument of one dtype); a kernel it cannot translate is an error;
- ``cupy.random.RandomState`` draws from a NumPy generator (same shapes and dtypes as cuRAND,
  not its numbers); ``cuda.Device().mem_info``, ``runtime.memGetInfo``, the memory pool and
  ``Stream.null.synchronize`` answer plausibly (a 16 GiB device).

What it cannot check: real cuRAND numbers, cuSOLVER/cuBLAS results and their speed, kernel
compilation (a C typo that NumPy's translation forgives), asynchronous execution and device
memory exhaustion.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import traceback
import types

import numpy as _np

__version__ = "13.0.0+fake"
_FAKE = True

#: host synchronisations and device-to-host copies: (what, "file:line") in call order
SYNCS: list = []
#: host-to-device copies: (what, "file:line")
COPIES: list = []

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # tests/fake_cupy/
_NUMPY_DIR = os.path.dirname(os.path.abspath(_np.__file__))
_allow_sync = [True]


class DeviceSynchronized(RuntimeError):
    """Raised by a host synchronisation inside ``cupyx.allow_synchronize(False)`` (as CuPy)."""


#: frames looked through to name the caller: the emulation, NumPy, and mfphys's thin wrappers
#: (``Backend.to_numpy``, ``Backend.synchronize``)
_THROUGH = (os.path.join("mfphys", "backend.py"),)


def _caller() -> str:
    for frame in reversed(traceback.extract_stack()[:-1]):
        f = os.path.abspath(frame.filename)
        if not f.startswith((_HERE, _NUMPY_DIR)) and not f.endswith(_THROUGH):
            return f"{os.path.relpath(f)}:{frame.lineno}"
    return "?"


def _sync(what: str) -> None:
    if not _allow_sync[0]:
        raise DeviceSynchronized(f"cannot synchronize inside allow_synchronize(False): {what} at {_caller()}")
    SYNCS.append((what, _caller()))


def reset_counters() -> None:
    SYNCS.clear()
    COPIES.clear()


@contextlib.contextmanager
def count():
    """``with cupy.count() as c:`` -> ``c.syncs``, ``c.copies``: what happened inside the block."""
    rec = types.SimpleNamespace(syncs=[], copies=[])
    s0, c0 = len(SYNCS), len(COPIES)
    try:
        yield rec
    finally:
        rec.syncs[:] = SYNCS[s0:]
        rec.copies[:] = COPIES[c0:]


def _mixed(a) -> TypeError:
    return TypeError(f"Unsupported type {type(a)}")


def _unwrap(x, strict: bool):
    """The NumPy array behind ``x`` (recursively in lists, tuples and dicts); a NumPy array of
    more than 0 dimensions among the arguments is CuPy's TypeError when ``strict``."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, _np.ndarray):
        if strict and x.ndim > 0:
            raise _mixed(x)
        return x
    if isinstance(x, list):
        return [_unwrap(v, strict) for v in x]
    if isinstance(x, tuple):
        return tuple(_unwrap(v, strict) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, strict) for k, v in x.items()}
    return x


def _wrap(x):
    if isinstance(x, _np.ndarray):
        return ndarray(x)
    if isinstance(x, _np.generic) and not isinstance(x, _np.dtype):
        return ndarray(_np.asarray(x))  # CuPy reductions return 0-d arrays, not scalars
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _call(fn, args, kwargs, strict=True):
    out = kwargs.get("out")
    res = fn(*_unwrap(args, strict), **_unwrap(kwargs, strict))
    if isinstance(out, ndarray):
        return out
    return _wrap(res)


def _binop(name):
    op = getattr(_np.ndarray, name)

    def method(self, other):
        if isinstance(other, _np.ndarray) and not isinstance(other, ndarray) and other.ndim > 0:
            raise _mixed(other)
        res = op(self._a, _unwrap(other, True))
        if res is NotImplemented:
            return res
        if name.startswith("__i"):
            return self
        return _wrap(res)

    method.__name__ = name
    return method


class ndarray:
    """A device array: a NumPy array that CuPy's rules guard."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100

    def __init__(self, a):
        self._a = a if isinstance(a, _np.ndarray) else _np.asarray(a)

    # -- what CuPy refuses or counts --------------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None):
        _sync("ndarray.get")
        return self._a.copy()

    def item(self):
        _sync("ndarray.item")
        return self._a.item()

    def tolist(self):
        _sync("ndarray.tolist")
        return self._a.tolist()

    def __bool__(self):
        _sync("bool(ndarray)")
        return bool(self._a)

    def __int__(self):
        _sync("int(ndarray)")
        return int(self._a)

    def __float__(self):
        _sync("float(ndarray)")
        return float(self._a)

    def __index__(self):
        _sync("ndarray.__index__")
        return self._a.__index__()

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (ndarray(v) if isinstance(v, _np.ndarray) else ndarray(_np.asarray(v)) for v in self._a)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = getattr(ufunc, method)
        return _call(fn, inputs, kwargs)

    def __array_function__(self, func, types_, args, kwargs):
        # CuPy dispatches NumPy functions to its own: the result stays on the device
        return _call(func, args, kwargs)

    # -- array protocol ---------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray(self._a.T))
    real = property(lambda self: ndarray(self._a.real))
    imag = property(lambda self: ndarray(self._a.imag))
    device = property(lambda self: cuda.Device(0))
    data = property(lambda self: types.SimpleNamespace(ptr=self._a.__array_interface__["data"][0]))

    def __len__(self):
        return len(self._a)

    def __repr__(self):
        return "cupy." + repr(self._a)

    __str__ = __repr__

    def __getitem__(self, key):
        if _has_mask(key):  # CuPy counts the selected elements on the host to size the result
            _sync("boolean mask indexing")
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key, value):
        if isinstance(value, _np.ndarray) and not isinstance(value, ndarray) and value.ndim > 0:
            COPIES.append(("setitem from host", _caller()))
        self._a[_index(key)] = _unwrap(value, False)

    def __getattr__(self, name):
        if name == "_a" or name.startswith("__"):  # no __array_interface__ & co: NumPy must not see through
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            return _call(attr, args, kwargs)

        return method

    def __matmul__(self, other):
        return _binop("__matmul__")(self, other)

    def __neg__(self):
        return ndarray(-self._a)

    def __pos__(self):
        return ndarray(+self._a)

    def __abs__(self):
        return ndarray(abs(self._a))

    def __invert__(self):
        return ndarray(~self._a)

    __hash__ = None


for _n in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor", "lshift",
           "rshift"):
    for _p in ("__{}__", "__r{}__", "__i{}__"):
        setattr(ndarray, _p.format(_n), _binop(_p.format(_n)))
for _n in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(ndarray, f"__{_n}__", _binop(f"__{_n}__"))


def _has_mask(key) -> bool:
    keys = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, ndarray) and k.dtype == bool and k.ndim > 0 for k in keys)


def _index(key):
    """An index: device arrays unwrapped; host integer/bool arrays are copied to the device, as CuPy does."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, (_np.ndarray, list)) and _np.asarray(key).ndim > 0:
        COPIES.append(("index from host", _caller()))
    return key


# -- creation and transfers ---------------------------------------------------------------------------------


def asarray(a, dtype=None, order=None, *, blocking=False):
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == _np.dtype(dtype) else ndarray(a._a.astype(dtype))
    if isinstance(a, _np.ndarray) and a.ndim > 0:
        COPIES.append(("asarray", _caller()))
    return ndarray(_np.array(a, dtype=dtype, order=order if order in ("C", "F") else "K", copy=True))


def array(a, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(a, ndarray):
        return ndarray(_np.array(a._a, dtype=dtype, copy=True, order=order, ndmin=ndmin))
    if isinstance(a, _np.ndarray) and a.ndim > 0:
        COPIES.append(("array", _caller()))
    return ndarray(_np.array(a, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    if isinstance(a, ndarray):
        _sync("asnumpy")
        return a._a.copy()
    return _np.asarray(a)


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else _np


def ascontiguousarray(a, dtype=None):
    return ndarray(_np.ascontiguousarray(_unwrap(a, True), dtype=dtype))


# the rest of the namespace: NumPy's functions over device arrays (host arrays refused)
_PASS = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
         "bool_", "complex64", "complex128", "dtype", "newaxis", "pi", "e", "inf", "nan", "finfo", "iinfo",
         "result_type", "can_cast", "promote_types", "intp", "integer", "floating", "number", "generic", "euler_gamma"}


#: functions whose result size depends on the data: CuPy reads a count back to the host
_SIZING = {"nonzero", "flatnonzero", "argwhere", "unique", "compress", "extract"}


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    target = getattr(_np, name)
    if name in _PASS or isinstance(target, type) or not callable(target):
        return target
    if isinstance(target, _np.ufunc):
        fn = _Ufunc(target)
    else:
        def fn(*args, **kwargs):
            if name in _SIZING or (name == "where" and len(args) == 1):
                _sync(f"cupy.{name}")
            return _call(target, args, kwargs)
        fn.__name__ = name
    globals()[name] = fn
    return fn


class _Ufunc:
    def __init__(self, uf):
        self._uf = uf
        self.__name__ = uf.__name__

    def __call__(self, *args, **kwargs):
        return _call(self._uf, args, kwargs)

    def __getattr__(self, name):
        attr = getattr(self._uf, name)
        if not callable(attr):
            return attr
        return lambda *a, **k: _call(attr, a, k)


# -- ElementwiseKernel: the kernel's C body translated to NumPy -----------------------------------------------

_TERNARY = re.compile(r"^(?P<lhs>[^=]+?)=(?P<cond>[^?]+)\?(?P<a>[^:]+):(?P<b>.+)$")


def _c_to_python(stmt: str, type_names: set) -> str:
    stmt = stmt.strip()
    for t in type_names:
        stmt = re.sub(rf"\({t}\)\s*", "", stmt)  # casts: (T)0 -> 0, typed by the result below
        stmt = re.sub(rf"^{t}\s+(?=\w+\s*=)", "", stmt)  # declarations: T q = ... -> q = ...
    m = _TERNARY.match(stmt)
    if m:
        stmt = f"{m['lhs'].strip()} = where({m['cond'].strip()}, {m['a'].strip()}, {m['b'].strip()})"
    return stmt


class ElementwiseKernel:
    """``cupy.ElementwiseKernel(in_params, out_params, operation, name)``: the C body run through NumPy.

    CuPy's checks kept: the number of arguments, one dtype for every argument typed by one type
    placeholder (the arrays and the scalars), outputs given in that dtype; the inputs broadcast.
    """

    def __init__(self, in_params: str, out_params: str, operation: str, name: str = "kernel", **kwargs):
        self.name = name
        self.ins = [p.split() for p in in_params.split(",")]
        self.outs = [p.split() for p in out_params.split(",")]
        for p in self.ins + self.outs:
            if len(p) != 2:
                raise ValueError(f"{name}: cannot read the parameter {' '.join(p)!r}")
        self.types = {t for t, _ in self.ins + self.outs if not hasattr(_np, t)}
        stmts = [s for s in operation.split(";") if s.strip()]
        self.code = compile("\n".join(_c_to_python(s, self.types) for s in stmts), f"<kernel {name}>", "exec")

    def __call__(self, *args):
        n_in, n_out = len(self.ins), len(self.outs)
        if len(args) not in (n_in, n_in + n_out):
            raise TypeError(f"{self.name}: wrong number of arguments ({len(args)} for {n_in} inputs, {n_out} outputs)")
        bound: dict = {}
        env: dict = {}
        for (t, name), a in zip(self.ins + self.outs, args):
            if isinstance(a, _np.ndarray) and not isinstance(a, ndarray):
                raise _mixed(a)
            if isinstance(a, (ndarray, _np.generic)):
                dt = a.dtype
            else:
                dt = None  # a Python scalar: CuPy casts it to the placeholder's type
            if t in self.types and dt is not None:
                if t in bound and bound[t] != dt:
                    raise TypeError(f"{self.name}: Type is mismatched. {name} is {dt}, {t} is {bound[t]}")
                bound[t] = dt
            env[name] = a._a if isinstance(a, ndarray) else a
        shape = _np.broadcast_shapes(*(_np.shape(env[n]) for _, n in self.ins))
        scope = {"sqrt": _np.sqrt, "exp": _np.exp, "log": _np.log, "where": _np.where, "min": _np.minimum,
                 "max": _np.maximum, "fabs": _np.abs, "abs": _np.abs, "tanh": _np.tanh}
        local = {n: (_np.broadcast_to(env[n], shape) if isinstance(env[n], _np.ndarray) else env[n])
                 for _, n in self.ins}
        for _, n in self.outs:
            if n in env:  # an output given: updated in place
                local[n] = env[n].copy()
        with _np.errstate(all="ignore"):
            exec(self.code, scope, local)
        results = []
        for t, n in self.outs:
            dt = bound.get(t, _np.dtype(t) if hasattr(_np, t) else None)
            val = _np.broadcast_to(_np.asarray(local[n]), shape)
            if n in env:
                env[n][...] = val  # casts to the output's dtype, as the kernel's store does
                results.append(args[[m for _, m in self.ins + self.outs].index(n)])
            else:
                results.append(ndarray(_np.array(val, dtype=dt)))
        return results[0] if len(results) == 1 else tuple(results)


class RawKernel:
    """Compiling CUDA C is beyond the emulation: creating one is allowed, calling it is an error."""

    def __init__(self, code: str, name: str, **kwargs):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise NotImplementedError(f"the CuPy emulation cannot run the raw kernel {self.name!r}")


def fuse(*args, **kwargs):
    def deco(f):
        return f
    return deco(args[0]) if args and callable(args[0]) else deco


# -- submodules ---------------------------------------------------------------------------------------------


def _submodule(name: str) -> types.ModuleType:
    mod = types.ModuleType(f"{__name__}.{name}")
    sys.modules[mod.__name__] = mod
    return mod


linalg = _submodule("linalg")


def _linalg(name):
    target = getattr(_np.linalg, name)

    def fn(*args, **kwargs):
        return _call(target, args, kwargs)

    return fn


for _n in ("svd", "norm", "qr", "eigh", "solve", "inv", "cholesky", "det", "slogdet", "matrix_norm"):
    if hasattr(_np.linalg, _n):
        setattr(linalg, _n, _linalg(_n))

random = _submodule("random")


class RandomState:
    """cuRAND's generator stand-in: NumPy's PCG64 seeded with ``seed``, same shapes and dtypes."""

    def __init__(self, seed=None):
        self._g = _np.random.default_rng(seed)

    def standard_normal(self, size=None, dtype=float):
        dtype = _np.dtype(dtype)
        if dtype.kind != "f" or dtype.itemsize not in (4, 8):
            raise TypeError(f"Unsupported dtype {dtype}")
        return ndarray(_np.asarray(self._g.standard_normal(size, dtype=dtype)))

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        return ndarray(_np.asarray(self._g.normal(loc, scale, size).astype(dtype)))

    def random_sample(self, size=None, dtype=float):
        return ndarray(_np.asarray(self._g.random(size, dtype=_np.dtype(dtype))))

    rand = random_sample

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return ndarray(_np.asarray(self._g.uniform(low, high, size).astype(dtype)))


random.RandomState = RandomState
_default_rs = [RandomState()]


def _seed(seed=None):
    _default_rs[0] = RandomState(seed)


random.seed = _seed
random.standard_normal = lambda size=None, dtype=float: _default_rs[0].standard_normal(size, dtype)
random.random = lambda size=None, dtype=float: _default_rs[0].random_sample(size, dtype)
random.default_rng = lambda seed=None: types.SimpleNamespace(
    standard_normal=RandomState(seed).standard_normal, random=RandomState(seed).random_sample)

cuda = _submodule("cuda")
_TOTAL = 16 << 30


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDeviceProperties(i):
        return {"name": b"CuPy emulation (NumPy on the CPU)", "totalGlobalMem": _TOTAL}

    @staticmethod
    def memGetInfo():
        return _TOTAL - (1 << 30), _TOTAL

    @staticmethod
    def deviceSynchronize():
        _sync("deviceSynchronize")


cuda.runtime = _Runtime()


class Device:
    def __init__(self, device=0):
        self.id = int(device)

    @property
    def mem_info(self):
        return cuda.runtime.memGetInfo()

    def synchronize(self):
        _sync("Device.synchronize")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Stream:
    def synchronize(self):
        _sync("Stream.synchronize")


class Stream(_Stream):
    null = _Stream()

    def __init__(self, non_blocking=False):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


cuda.Device = Device
cuda.Stream = Stream


class _MemoryPool:
    def free_bytes(self):
        return 0

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass

    def set_limit(self, size=None, fraction=None):
        pass

    def get_limit(self):
        return 0


_POOL, _PINNED = _MemoryPool(), _MemoryPool()


def get_default_memory_pool():
    return _POOL


def get_default_pinned_memory_pool():
    return _PINNED


cuda.MemoryPool = _MemoryPool

del _n, _p
