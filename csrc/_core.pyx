# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Bridge from validated NumPy arrays to the C kernels in fbp_kernels.c.

Nothing here checks shapes: the Python layer (``fastbp._engine``) does that before
calling.  Every kernel runs with the GIL released, on fastbp's own thread pool
(fbp_pool.h); called from the main thread, a long kernel briefly takes the GIL every
few milliseconds to run Python's signal handlers, and stops (raising, e.g.,
KeyboardInterrupt) if one raises.
"""
import threading

from cpython.exc cimport PyErr_CheckSignals
from cpython.list cimport PyList_GET_ITEM
from cpython.object cimport PyObject
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.math cimport log
from libc.string cimport memcpy, memset

cimport numpy as cnp

cnp.import_array()

cdef extern from "fbp_pool.h" nogil:
    ctypedef struct fbp_interrupt:
        int (*check)(void *ctx) noexcept nogil
        void *ctx
        double next
    int FBP_MAX_THREADS
    int FBP_NOTHREAD
    int fbp_pool_workers()
    int fbp_pool_spinning()

cdef extern from "fbp_kernels.h" nogil:
    ctypedef struct fbp_net:
        int n_layers
        const int64_t *sizes
        void **wt
        void **b
        int activation
        int cost
    ctypedef struct fbp_data:
        const int64_t *indptr
        const void *indices
        const void *values
        const void *y
        const int64_t *split
        int narrow
    int FBP_OK
    int FBP_NOMEM
    int FBP_INTERRUPTED
    int FBP_PAD
    int64_t fbp_ld(int64_t n)
    int fbp_train_d(const fbp_net *net, const fbp_data *data, const int64_t *order, int64_t n,
                    int64_t batch, double eta, double lmbda, double n_total, int nthreads,
                    fbp_interrupt *intr)
    int fbp_train_f(const fbp_net *net, const fbp_data *data, const int64_t *order, int64_t n,
                    int64_t batch, double eta, double lmbda, double n_total, int nthreads,
                    fbp_interrupt *intr)
    int fbp_forward_d(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                      double *out, int nthreads, fbp_interrupt *intr)
    int fbp_forward_f(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                      float *out, int nthreads, fbp_interrupt *intr)
    int fbp_grad_sum_d(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                       double **gb, double **gwt, fbp_interrupt *intr)
    int fbp_grad_sum_f(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                       float **gb, float **gwt, fbp_interrupt *intr)
    int FBP_BADINPUT
    int FBP_NONFINITE
    int fbp_dense_batch_d(const fbp_net *net, const double *w0, int64_t ld0, const void *x,
                          int x_double, int64_t m, const double *y, double scale,
                          double **gb, double **gwt, double *out, double *acts, int nthreads,
                          int64_t *bad)
    int fbp_dense_batch_f(const fbp_net *net, const float *w0, int64_t ld0, const void *x,
                          int x_double, int64_t m, const float *y, double scale,
                          float **gb, float **gwt, float *out, float *acts, int nthreads,
                          int64_t *bad)
    int fbp_forward_dense_d(const fbp_net *net, const double *w0, const void *x, int x_double,
                            int64_t m, double *out, double *acts, int nthreads,
                            fbp_interrupt *intr, int64_t *bad)
    int fbp_forward_dense_f(const fbp_net *net, const float *w0, const void *x, int x_double,
                            int64_t m, float *out, float *acts, int nthreads,
                            fbp_interrupt *intr, int64_t *bad)
    void fbp_activation_d(double *z, int64_t n, int act)
    void fbp_activation_f(float *z, int64_t n, int act)
    const char *fbp_isa()
    const char *fbp_set_isa(int best)

cdef extern from "fbp_pack.h" nogil:
    int64_t fbp_count_nonzero_f(const float *x, int64_t n, int *nonfinite)
    int64_t fbp_count_nonzero_d(const double *x, int64_t n, int *nonfinite)
    int FBP_BAD_OVERFLOW
    int FBP_PACK_NOTHREAD
    int FBP_PACK_NOMEM
    int FBP_PACK_CHANGED
    int FBP_PACK_BADVALUE
    int FBP_PACK_INEXACT
    int64_t FBP_NARROW_MAX_WIDTH
    int64_t fbp_rows_count(int64_t n, const void **x, const char *kind, int64_t width,
                           int64_t *counts, int out_double, int nthreads, int *why,
                           int *inexact, int *not_bytes)
    int fbp_rows_fill(int64_t n, const void **x, const char *kind, int64_t width,
                      const int64_t *indptr, void *idx, void *val, int out_double, int narrow,
                      int64_t col, int64_t *split, int nthreads, uint64_t *fingerprint,
                      int64_t *bad, int *why)
    uint64_t FBP_FINGERPRINT_SEED
    uint64_t fbp_row_term(const void *row, char kind, int64_t width, int64_t i)
    int fbp_fits_float(const double *x, int64_t n)
    uint64_t fbp_rows_fingerprint(int64_t n, const void **x, const char *kind, int64_t width,
                                  int nthreads)


cdef extern from "fbp_shuffle.h" nogil:
    void fbp_mt_shuffle(int64_t *x, int64_t n, uint32_t *mt, int *pos)


ctypedef fused real:
    float
    double

PAD = FBP_PAD


def padded(int64_t n):
    """Row length the kernels use for a layer of width ``n`` (a multiple of PAD)."""
    return fbp_ld(n)


def isa():
    """The SIMD code path the kernels use: ``"avx2"`` or ``"baseline"``."""
    return fbp_isa().decode()


def set_isa(bint best):
    """Use the best code path the CPU supports (True) or the portable baseline (False)."""
    return fbp_set_isa(best).decode()


def max_threads():
    """The most threads one kernel call may use (fastbp's own pthread pool; the Python
    layer clamps to the usable cores first)."""
    return FBP_MAX_THREADS


def pool_spinning():
    """Worker threads of the pool idle but still spinning for the next job."""
    return fbp_pool_spinning()


def pool_workers():
    """Worker threads in this process's pool (0 until first needed, and in a new fork
    child, whose inherited pool is dead)."""
    return fbp_pool_workers()


cdef class _Interrupt:
    """Lets a kernel poll Python's signal handlers; holds what one of them raised."""
    cdef fbp_interrupt c
    cdef object exc

    def __cinit__(self):
        self.c.check = NULL
        self.c.ctx = <void *>self
        self.c.next = 0
        # only the main thread runs signal handlers: elsewhere, do not take the GIL
        if threading.get_ident() == threading.main_thread().ident:
            self.c.check = _check_signals

    cdef raise_status(self, int status, str what):
        if status == FBP_INTERRUPTED:
            raise self.exc
        if status == FBP_NOMEM:
            raise MemoryError(f"fastbp: out of memory in {what}")
        if status == FBP_NOTHREAD:
            raise RuntimeError(f"fastbp: could not start a worker thread for {what} "
                               "(use fewer threads: fastbp.set_num_threads)")


cdef bint _polling = False  # (guarded by the GIL)


def polling_signals():
    """Whether a kernel is polling Python's signal handlers right now (a handler may raise
    there: the kernel stops at the next mini-batch boundary)."""
    return _polling


cdef int _check_signals(void *ctx) noexcept nogil:
    global _polling
    with gil:
        _polling = True
        try:
            PyErr_CheckSignals()
        except BaseException as exc:
            (<_Interrupt>ctx).exc = exc
            return 1
        finally:
            _polling = False
    return 0


cdef class _Net:
    """Raw pointers to one set of parameter arrays (kept alive by this object)."""
    cdef fbp_net net
    cdef void **ptrs
    cdef object keep

    def __cinit__(self, list wt not None, list b not None, int64_t[::1] sizes not None,
                  int activation, int cost):
        cdef Py_ssize_t L = len(wt), l
        if L < 1 or L > 63 or len(b) != L or sizes.shape[0] != L + 1:
            # the kernels keep per-layer pointers in arrays of 64 (layers 0..L)
            raise ValueError(f"a network needs 1 to 63 weight layers with a bias each, got "
                             f"{L} weight arrays, {len(b)} biases, {sizes.shape[0]} sizes")
        self.ptrs = <void **>malloc(2 * max(L, 1) * sizeof(void *))
        if self.ptrs == NULL:
            raise MemoryError()
        cdef tuple wt_t = tuple(wt), b_t = tuple(b)  # ours: the arrays outlive every call
        self.keep = (wt_t, b_t, sizes)
        for l in range(L):
            self.ptrs[l] = _address(wt_t[l])
            self.ptrs[L + l] = _address(b_t[l])
        self.net.n_layers = <int>L
        self.net.sizes = &sizes[0]
        self.net.wt = self.ptrs
        self.net.b = self.ptrs + L
        self.net.activation = activation
        self.net.cost = cost

    def __dealloc__(self):
        free(self.ptrs)


cdef void *_address(object a) except NULL:
    if not cnp.PyArray_Check(a):
        raise TypeError("expected a NumPy array")
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef int _data(fbp_data *d, int64_t[::1] indptr, int64_t[::1] split, object indices,
               object values, bint double, const void *y, int64_t rows) except -1:
    """The kernels' view of packed rows, of which the call reads the first ``rows``:
    columns int32 and values of the net's type, or narrow (see fbp_pack.h) columns
    uint16 and values float32, or uint8 k standing for k / 256 (fbp_float_bytes)."""
    if split.shape[0] != indptr.shape[0] - 1 or rows > split.shape[0]:
        raise ValueError(f"{indptr.shape[0] - 1} packed rows ({split.shape[0]} split points),"
                         f" but {rows} rows to read")
    cdef int narrow = _plain(indices, cnp.NPY_UINT16)
    if not (narrow or _plain(indices, cnp.NPY_INT32)):
        raise TypeError("indices must be an aligned, contiguous int32 or uint16 array")
    if narrow and _plain(values, cnp.NPY_UINT8):
        narrow = 2
    elif not _plain(values, cnp.NPY_FLOAT32 if narrow or not double else cnp.NPY_FLOAT64):
        raise TypeError(f"values must be an aligned, contiguous "
                        f"{'float32 or uint8' if narrow else 'float32' if not double else 'float64'}"
                        f" array (for {'uint16' if narrow else 'int32'} indices)")
    cdef cnp.ndarray ia = <cnp.ndarray>indices, va = <cnp.ndarray>values
    if cnp.PyArray_NDIM(ia) != 1 or cnp.PyArray_NDIM(va) != 1 or ia.shape[0] != va.shape[0]:
        raise ValueError(f"indices and values must be 1-d arrays of the same length")
    if indptr.shape[0] == 0 or indptr[indptr.shape[0] - 1] > ia.shape[0]:
        raise ValueError("indptr does not fit the indices")
    d.indptr = &indptr[0]
    d.split = &split[0] if split.shape[0] > 0 else NULL
    d.indices = cnp.PyArray_DATA(ia) if ia.shape[0] > 0 else NULL
    d.values = cnp.PyArray_DATA(va) if va.shape[0] > 0 else NULL
    d.y = y
    d.narrow = narrow
    return 0


def train(_Net net not None, int64_t[::1] indptr not None, int64_t[::1] split not None,
          object indices not None, object values not None, const real[:, ::1] y not None,
          int64_t[::1] order not None, int64_t batch, double eta, double lmbda, double n_total,
          int nthreads):
    """Train in place over the rows ``order``, in mini-batches of ``batch``.  If a signal
    handler raises (Ctrl-C), training stops after the mini-batch in progress, the
    parameters hold that mini-batch's result, and the exception propagates."""
    cdef int64_t rows = indptr.shape[0] - 1, n = order.shape[0], i, lo = 0, hi = 0
    if rows < 0 or split.shape[0] != rows or y.shape[0] != rows:
        raise ValueError(f"train: {rows} packed rows, but {split.shape[0]} split points and "
                         f"{y.shape[0]} target rows")
    with nogil:  # (the order's rows must be packed rows: a stale order read out of bounds)
        for i in range(n):
            lo = order[i] if order[i] < lo else lo
            hi = order[i] if order[i] > hi else hi
    if n and (lo < 0 or hi >= rows):
        raise ValueError(f"train: order holds row {lo if lo < 0 else hi}, outside the "
                         f"{rows} packed rows")
    cdef fbp_data d
    _data(&d, indptr, split, indices, values, real is double, &y[0, 0], rows)
    cdef int status
    cdef _Interrupt intr = _Interrupt()
    with nogil:
        if real is double:
            status = fbp_train_d(&net.net, &d, &order[0], n, batch, eta, lmbda, n_total,
                                 nthreads, &intr.c)
        else:
            status = fbp_train_f(&net.net, &d, &order[0], n, batch, eta, lmbda, n_total,
                                 nthreads, &intr.c)
    intr.raise_status(status, "training")


def forward(_Net net not None, int64_t[::1] indptr not None, int64_t[::1] split not None,
            object indices not None, object values not None, real[:, ::1] out not None,
            int nthreads):
    """Output activations of every CSR row into ``out`` (rows x output width)."""
    cdef fbp_data d
    cdef int64_t count = out.shape[0]
    _data(&d, indptr, split, indices, values, real is double, NULL, count)
    cdef int status
    cdef _Interrupt intr = _Interrupt()
    with nogil:
        if real is double:
            status = fbp_forward_d(&net.net, &d, 0, count, &out[0, 0], nthreads, &intr.c)
        else:
            status = fbp_forward_f(&net.net, &d, 0, count, &out[0, 0], nthreads, &intr.c)
    intr.raise_status(status, "forward")


def grad_sum(_Net net not None, int64_t[::1] indptr not None, int64_t[::1] split not None,
             object indices not None, object values not None,
             const real[:, ::1] y not None, list gb not None, list gwt not None):
    """Add the per-sample gradients of every row to ``gb`` and ``gwt`` (W transposed)."""
    cdef fbp_data d
    cdef int64_t count = y.shape[0]
    _data(&d, indptr, split, indices, values, real is double, &y[0, 0], count)
    _check_grads(net, gb, gwt, real is double)
    cdef Py_ssize_t L = len(gb)
    cdef int status
    cdef _Interrupt intr = _Interrupt()
    cdef tuple keep = (tuple(gb), tuple(gwt))  # our own references for the call
    cdef void **p = _grad_pointers(keep)
    try:
        with nogil:
            if real is double:
                status = fbp_grad_sum_d(&net.net, &d, 0, count, <double **>p,
                                        <double **>(p + L), &intr.c)
            else:
                status = fbp_grad_sum_f(&net.net, &d, 0, count, <float **>p,
                                        <float **>(p + L), &intr.c)
    finally:
        free(p)
    intr.raise_status(status, "grad_sum")


cdef void **_grad_pointers(tuple keep) except NULL:
    """A malloc'd array of the data pointers of ``keep[0]`` (the gb arrays) followed by
    those of ``keep[1]`` (the gwt arrays), as the kernels take them; the caller frees it
    and keeps ``keep`` alive for the call."""
    cdef Py_ssize_t L = len(keep[0]), l
    cdef void **p = <void **>malloc(2 * max(L, 1) * sizeof(void *))
    if p == NULL:
        raise MemoryError()
    try:
        for l in range(L):
            p[l] = _address(keep[0][l])
            p[L + l] = _address(keep[1][l])
    except BaseException:
        free(p)
        raise
    return p


cdef bint _plain(object a, int typenum):
    """``a`` is an aligned, C-contiguous NumPy array of ``typenum`` in native byte order."""
    if not cnp.PyArray_Check(a):
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_ISNOTSWAPPED(arr)
            and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr))


cdef _check_grads(_Net net, list gb, list gwt, bint double, int64_t ld0=0):
    """The kernels write (or add to) gb[l] and gwt[l] through raw pointers, l < n_layers:
    padded(sizes[l + 1]) and sizes[l] * padded(sizes[l + 1]) values of the net's type
    (for gwt[0], sizes[0] * ld0 if ld0; gb[0] stays padded)."""
    cdef int L = net.net.n_layers, l
    cdef int typenum = cnp.NPY_FLOAT64 if double else cnp.NPY_FLOAT32
    cdef int64_t ld, ldw
    if len(gb) != L or len(gwt) != L:
        raise ValueError(f"gb and gwt need {L} arrays each, got {len(gb)} and {len(gwt)}")
    for l in range(L):
        ld = fbp_ld(net.net.sizes[l + 1])
        ldw = ld0 if l == 0 and ld0 else ld
        for a, need, name in ((gb[l], ld, "gb"), (gwt[l], net.net.sizes[l] * ldw, "gwt")):
            if not (_plain(a, typenum) and cnp.PyArray_SIZE(<cnp.ndarray>a) >= need
                    and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a)):
                raise ValueError(f"{name}[{l}] must be a writeable, C-contiguous "
                                 f"{'float64' if double else 'float32'} array of at least "
                                 f"{need} values")


cdef const void *_dense_rows(_Net net, object X, int64_t m, bint *x_double) except NULL:
    """The data pointer of X after checking it is a C-contiguous (m, sizes[0]) float32 or
    float64 array (the kernel reads exactly that many values)."""
    if not cnp.PyArray_Check(X):
        raise TypeError("X must be a NumPy array")
    cdef cnp.ndarray a = <cnp.ndarray>X
    if a.ndim != 2 or a.shape[0] != m or a.shape[1] != net.net.sizes[0] or m < 1:
        raise ValueError(f"X has shape {X.shape}, expected ({m}, {net.net.sizes[0]})")
    if m >= 2**31:  # sample numbers are held as int32
        raise ValueError(f"a batch of {m} rows is too large for one call")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError("X must be C-contiguous")
    if not cnp.PyArray_ISALIGNED(a) or not cnp.PyArray_ISNOTSWAPPED(a):
        raise ValueError("X must be aligned and in native byte order")
    if a.dtype.num == cnp.NPY_FLOAT64:
        x_double[0] = True
    elif a.dtype.num == cnp.NPY_FLOAT32:
        x_double[0] = False
    else:
        raise TypeError(f"X must be float32 or float64, got {X.dtype}")
    return cnp.PyArray_DATA(a)


cdef const void *_first_weights(_Net net, object w0, bint double, int64_t *ld0) except? NULL:
    """NULL (the net's own first layer) for w0 None; else w0's data pointer after checking
    it is a C-contiguous (sizes[0], sizes[1]) array of the net's type (ld0 = sizes[1])."""
    ld0[0] = 0
    if w0 is None:
        return NULL
    cdef int64_t n_in = net.net.sizes[0], n_out = net.net.sizes[1]
    if not (_plain(w0, cnp.NPY_FLOAT64 if double else cnp.NPY_FLOAT32)
            and cnp.PyArray_NDIM(<cnp.ndarray>w0) == 2
            and cnp.PyArray_DIM(<cnp.ndarray>w0, 0) == n_in
            and cnp.PyArray_DIM(<cnp.ndarray>w0, 1) == n_out):
        raise ValueError(f"w0 must be a C-contiguous ({n_in}, {n_out}) "
                         f"{'float64' if double else 'float32'} array")
    ld0[0] = n_out
    return cnp.PyArray_DATA(<cnp.ndarray>w0)


cdef _dense_status(int status, int64_t bad):
    if status == FBP_BADINPUT:
        raise ValueError(f"item {bad} contains NaN or inf")
    if status == FBP_NOMEM:
        raise MemoryError("fastbp: out of memory for the batch")
    if status == FBP_NOTHREAD:
        raise RuntimeError("fastbp: could not start a worker thread (use fewer threads: "
                           "fastbp.set_num_threads)")


cdef real *_acts_buffer(_Net net, int64_t m, real[::1] acts) except? NULL:
    """The pointer to ``acts`` (None: NULL), checked to hold every layer's activations
    of m rows: m * (sum of the padded layer widths) values."""
    if acts is None:
        return NULL
    cdef int64_t units = 0
    cdef int l
    for l in range(1, net.net.n_layers + 1):
        units += fbp_ld(net.net.sizes[l])
    if acts.shape[0] != m * units:
        raise ValueError(f"acts has {acts.shape[0]} values, expected {m * units} "
                         f"({m} rows of {units})")
    return &acts[0] if m * units else NULL


def dense_grad(_Net net not None, object X, const real[:, ::1] y not None, double scale,
               list gb not None, list gwt not None, int nthreads=1, object w0=None,
               real[:, ::1] out=None, real[::1] acts=None):
    """Write ``scale`` times the gradient of the summed cost of the rows of X (dense,
    (m, n_in) float32 or float64) for targets y to ``gb`` and ``gwt`` (W transposed;
    every element, padding included, is overwritten).  ``w0``: the first layer's W
    transposed, unpadded (n_in, n_out), in place of the net's own; ``gwt[0]`` is then
    unpadded too.  ``out`` (m, n_out), if given, receives the output activations of the
    forward pass, and ``acts`` every layer's (as ``dense_forward`` gives them).  Returns
    False if a gradient value is NaN or inf (everything is written all the same), else
    True."""
    cdef int64_t m = y.shape[0], bad = -1, ld0 = 0
    cdef bint x_double = False
    cdef const void *xp = _dense_rows(net, X, m, &x_double)
    cdef int64_t n_out = net.net.sizes[net.net.n_layers]
    if y.shape[1] != n_out:
        raise ValueError(f"y has {y.shape[1]} columns, expected {n_out}")
    cdef real *outp = NULL
    if out is not None:
        if out.shape[0] != m or out.shape[1] != n_out:
            raise ValueError(f"out has shape {(out.shape[0], out.shape[1])}, expected "
                             f"{(m, n_out)}")
        outp = &out[0, 0]
    cdef real *actp = _acts_buffer(net, m, acts)
    cdef const void *w0p = _first_weights(net, w0, real is double, &ld0)
    _check_grads(net, gb, gwt, real is double, ld0)
    cdef Py_ssize_t L = len(gb)
    cdef int status
    cdef tuple keep = (tuple(gb), tuple(gwt), X, w0, out, acts)  # our own references
    cdef void **p = _grad_pointers(keep)
    try:
        with nogil:
            if real is double:
                status = fbp_dense_batch_d(&net.net, <const double *>w0p, ld0, xp, x_double,
                                           m, &y[0, 0], scale, <double **>p,
                                           <double **>(p + L), outp, actp, nthreads, &bad)
            else:
                status = fbp_dense_batch_f(&net.net, <const float *>w0p, ld0, xp, x_double,
                                           m, &y[0, 0], scale, <float **>p,
                                           <float **>(p + L), outp, actp, nthreads, &bad)
    finally:
        free(p)
    if status == FBP_NONFINITE:
        return False
    _dense_status(status, bad)
    return True


def dense_forward(_Net net not None, object X, real[:, ::1] out not None, int nthreads=1,
                  object w0=None, real[::1] acts=None):
    """The output activations of the rows of X (dense, (m, n_in) float32 or float64)
    into ``out`` (m, n_out): equal to ``forward`` on the same rows packed.  ``w0`` as in
    ``dense_grad``.  ``acts``, if given, receives every layer's activations: layer 1's m
    rows (padded to ``padded(n_1)``), then layer 2's, and so on."""
    cdef int64_t m = out.shape[0], bad = -1, ld0 = 0
    cdef bint x_double = False
    cdef const void *xp = _dense_rows(net, X, m, &x_double)
    if out.shape[1] != net.net.sizes[net.net.n_layers]:
        raise ValueError(f"out has {out.shape[1]} columns, expected "
                         f"{net.net.sizes[net.net.n_layers]}")
    cdef const void *w0p = _first_weights(net, w0, real is double, &ld0)
    cdef real *actp = _acts_buffer(net, m, acts)
    cdef int status
    cdef tuple keep = (X, w0, acts)
    with nogil:
        if real is double:
            status = fbp_dense_batch_d(&net.net, <const double *>w0p, ld0, xp, x_double, m,
                                       NULL, 0, NULL, NULL, &out[0, 0], actp, nthreads, &bad)
        else:
            status = fbp_dense_batch_f(&net.net, <const float *>w0p, ld0, xp, x_double, m,
                                       NULL, 0, NULL, NULL, &out[0, 0], actp, nthreads, &bad)
    _dense_status(status, bad)


def activation(real[::1] z not None, int act):
    """Apply activation ``act`` (0 sigmoid, 1 tanh, 2 ReLU) to z in place, exactly as the
    kernels do (for tests of their arithmetic)."""
    if act not in (0, 1, 2):
        raise ValueError(f"unknown activation {act}")
    if z.shape[0] == 0:
        return
    if real is double:
        fbp_activation_d(&z[0], z.shape[0], act)
    else:
        fbp_activation_f(&z[0], z.shape[0], act)


def forward_rows(_Net net not None, object X, real[:, ::1] out not None, int nthreads=1,
                 real[::1] acts=None, object w0=None):
    """The output activations of the rows of X (dense, (m, n_in) float32 or float64)
    into ``out`` (m, n_out), row by row, each row's non-zeros found as it is taken: equal
    to ``forward`` on the same rows packed, with no packed copy (for many rows).  ``acts``
    and ``w0`` as in ``dense_forward``."""
    cdef int64_t m = out.shape[0], bad = -1, ld0 = 0
    cdef bint x_double = False
    cdef const void *xp = _dense_rows(net, X, m, &x_double)
    if out.shape[1] != net.net.sizes[net.net.n_layers]:
        raise ValueError(f"out has {out.shape[1]} columns, expected "
                         f"{net.net.sizes[net.net.n_layers]}")
    cdef real *actp = _acts_buffer(net, m, acts)
    cdef const void *w0p = _first_weights(net, w0, real is double, &ld0)
    cdef int status
    cdef tuple keep = (X, acts, w0)
    cdef _Interrupt intr = _Interrupt()
    with nogil:
        if real is double:
            status = fbp_forward_dense_d(&net.net, <const double *>w0p, xp, x_double, m,
                                         &out[0, 0], actp, nthreads, &intr.c, &bad)
        else:
            status = fbp_forward_dense_f(&net.net, <const float *>w0p, xp, x_double, m,
                                         &out[0, 0], actp, nthreads, &intr.c, &bad)
    if intr.exc is not None:  # Ctrl-C first, even when a bad row stopped a thread too
        status = FBP_INTERRUPTED
    if status == FBP_BADINPUT:
        _dense_status(status, bad)
    intr.raise_status(status, "forward_rows")


def csr_rows(const real[:, ::1] X not None, int nthreads=1, bint wide=False,
             bint narrow=False):
    """Compress the rows of X to CSR: ``(indptr, split, indices, values)`` (split: each
    row's first stored position with column >= n_in // 2; see fbp_data).  Values keep
    X's dtype, or are float64 with ``wide`` (float32 widened exactly, in the same pass).
    With ``narrow``, the narrow packing where it is exact (see fbp_pack.h): uint16
    indices and float32 values, or byte values k for k / 256 where every value is one.

    Zeros are skipped, so the first layer never multiplies by a blank pixel.  Raises
    ValueError naming the first row with a NaN or inf.
    """
    import numpy as np

    cdef Py_ssize_t n = X.shape[0], k = X.shape[1], i
    cdef const void **rows = <const void **>malloc(max(n, 1) * sizeof(void *))
    cdef char *kinds = <char *>malloc(max(n, 1))
    cdef int64_t bad
    cdef int why = 0, filled = 0, inexact = 0, not_bytes = 1
    cdef bint out_double = real is double or wide
    cdef int *check = &inexact if narrow and real is double else NULL
    cdef int *bytes_check = &not_bytes if narrow else NULL
    cdef int level
    cdef int64_t[::1] ptr
    cdef int64_t[::1] sp
    if rows == NULL or kinds == NULL:
        free(rows); free(kinds)
        raise MemoryError()
    try:
        if n > 0 and k > 0 and <size_t>&X[0, 0] % sizeof(real) != 0:
            raise ValueError("X must be aligned")
        for i in range(n):
            rows[i] = &X[i, 0] if k > 0 else NULL
            kinds[i] = 1 if real is double else 2
        indptr_a = np.empty(n + 1, dtype=np.int64)
        ptr = indptr_a
        with nogil:
            bad = fbp_rows_count(n, rows, kinds, k, &ptr[1], out_double, nthreads, &why,
                                 check, bytes_check)
            ptr[0] = 0
            if bad == -1:  # (after a bad row the counts are not all written)
                for i in range(n):
                    ptr[i + 1] += ptr[i]
        _check_rows(bad, why)
        level = (1 + (not not_bytes)) if narrow and k <= FBP_NARROW_MAX_WIDTH and not inexact \
            else 0
        split_a = np.empty(n, dtype=np.int64)
        sp = split_a
        bad = -1
        indices_a, values_a, filled = _fill(n, rows, kinds, k, ptr, sp, out_double, level,
                                            nthreads, NULL, &bad, &why)
        _check_rows(bad, why)  # (a NaN, inf or overflow written since the count pass)
        _check_rows(-1 if filled in (0, FBP_PACK_BADVALUE) else filled)
        return indptr_a, split_a, indices_a, values_a
    finally:
        free(rows); free(kinds)


cdef tuple _fill(Py_ssize_t n, const void **xs, const char *kinds, Py_ssize_t width,
                 int64_t[::1] ptr, int64_t[::1] sp, bint out_double, int narrow,
                 int nthreads, uint64_t *fingerprint, int64_t *bad, int *why):
    """fbp_rows_fill's pass into new arrays: ``(indices, values, status)``, as narrow as
    asked (2: byte values, 1: float32 values, 0: wide; see fbp_pack.h), or one step
    wider if it cannot be (a value written since the count pass is no longer a byte or a
    float32: packed again)."""
    import numpy as np

    cdef void *idx
    cdef void *vals
    cdef int filled
    while True:
        indices_a = np.empty(ptr[n], dtype=np.uint16 if narrow else np.int32)
        values_a = np.empty(ptr[n], dtype=np.uint8 if narrow == 2 else np.float32 if narrow
                            else np.float64 if out_double else np.float32)
        idx = _address(indices_a) if ptr[n] > 0 else NULL
        vals = _address(values_a) if ptr[n] > 0 else NULL
        with nogil:
            filled = fbp_rows_fill(n, xs, kinds, width, &ptr[0], idx, vals, out_double,
                                   narrow, width // 2, &sp[0] if n > 0 else NULL, nthreads,
                                   fingerprint, bad, why)
        if filled != FBP_PACK_INEXACT:
            return indices_a, values_a, filled
        narrow -= 1


cdef _check_rows(int64_t bad, int why=0):
    """Raise for fbp_rows_count's / fbp_rows_fill's result (see fbp_pack.h)."""
    if bad == FBP_PACK_NOMEM:
        raise MemoryError("fastbp: out of memory while packing the inputs")
    if bad == FBP_PACK_NOTHREAD:
        raise RuntimeError("fastbp: could not start a worker thread for packing "
                           "(use fewer threads: fastbp.set_num_threads)")
    if bad >= 0 and why == FBP_BAD_OVERFLOW:
        raise ValueError(f"item {bad} has a value beyond float32 range (about 3.4e38) "
                         "for a float32 network")
    if bad >= 0:
        raise ValueError(f"item {bad} contains NaN or inf")


cdef extern from *:
    """
    /* _kind on a borrowed reference (no reference counts touched: the gather below then
       reads each object's lines and writes none) */
    static inline char fbp_kind(PyObject *a, Py_ssize_t n, int exact)
    {
        if (!(exact ? PyArray_CheckExact(a) : PyArray_Check(a))) return 0;
        PyArrayObject *arr = (PyArrayObject *)a;
        if (PyArray_NDIM(arr) != 2 || PyArray_DIMS(arr)[1] != 1 || PyArray_DIMS(arr)[0] != n)
            return 0;
        if (!PyArray_ISCARRAY_RO(arr) || !PyArray_ISNOTSWAPPED(arr)) return 0;
        const int t = PyArray_TYPE(arr);
        return t == NPY_DOUBLE ? 1 : t == NPY_FLOAT ? 2 : 0;
    }

    /* Rows._gather's loop over the list: 1 if every item is a 2-tuple of arrays of the
       kinds _kind accepts (filling xp/xk, and yp/yk with targets), else 0.  Runs no
       Python code and holds the GIL (its caller's). */
    static inline int fbp_gather_one(PyObject *items, Py_ssize_t i, Py_ssize_t n_in,
                                     Py_ssize_t n_out, int targets, const void **xp, char *xk,
                                     const void **yp, char *yk)
    {
        PyObject *item = PyList_GET_ITEM(items, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) return 0;
        PyObject *x = PyTuple_GET_ITEM(item, 0);
        if (!(xk[i] = fbp_kind(x, n_in, 0))) return 0;
        xp[i] = PyArray_DATA((PyArrayObject *)x);
        if (targets) {
            PyObject *y = PyTuple_GET_ITEM(item, 1);
            if (!(yk[i] = fbp_kind(y, n_out, 1))) return 0;  /* (see _packing for subclasses) */
            yp[i] = PyArray_DATA((PyArrayObject *)y);
        }
        return 1;
    }

    static int fbp_gather(PyObject *items, Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out,
                          int targets, const void **xp, char *xk, const void **yp, char *yk)
    {
        for (Py_ssize_t i = 0; i < n; ++i)
            if (!fbp_gather_one(items, i, n_in, n_out, targets, xp, xk, yp, yk)) return 0;
        return 1;
    }

    /* fbp_gather and Rows.fingerprint in one pass, the items split between threads: each
       thread gathers its items and hashes each row as it goes, so that the pointer
       chasing of the gather overlaps the streaming of the rows.  The caller holds the
       GIL throughout (it is not released), so no other thread changes an object read
       here; the worker threads only read. */
    typedef struct {
        PyObject *items;
        Py_ssize_t n, n_in, n_out;
        int targets;
        const void **xp, **yp;
        char *xk, *yk;
        int nt;  /* the threads the pool ran it on (fewer when another call holds it) */
        int ok[FBP_PACK_MAX_THREADS];
        uint64_t hx[FBP_PACK_MAX_THREADS], hy[FBP_PACK_MAX_THREADS];
    } fbp_gfp_job;

    static void fbp_gfp_part(void *arg, int t, int nt)
    {
        fbp_gfp_job *j = (fbp_gfp_job *)arg;
        const Py_ssize_t lo = j->n * t / nt, hi = j->n * (t + 1) / nt;
        uint64_t hx = 0, hy = 0;
        if (t == 0) j->nt = nt;
        j->ok[t] = 0;
        if (lo < hi && !fbp_gather_one(j->items, lo, j->n_in, j->n_out, j->targets, j->xp,
                                       j->xk, j->yp, j->yk))
            return;
        for (Py_ssize_t i = lo; i < hi; ++i) {
            if (i + 1 < hi) {  /* the next item's rows asked for while this one's are hashed */
                if (!fbp_gather_one(j->items, i + 1, j->n_in, j->n_out, j->targets, j->xp,
                                    j->xk, j->yp, j->yk))
                    return;
                const char *next = (const char *)j->xp[i + 1];
                const Py_ssize_t bytes = j->n_in * (j->xk[i + 1] == 1 ? 8 : 4);
                for (Py_ssize_t o = 0; o < bytes; o += 64) __builtin_prefetch(next + o);
                if (j->targets) __builtin_prefetch(j->yp[i + 1]);
            }
            hx += fbp_row_term(j->xp[i], j->xk[i], j->n_in, i);
            if (j->targets) hy += fbp_row_term(j->yp[i], j->yk[i], j->n_out, i);
        }
        j->hx[t] = hx;
        j->hy[t] = hy;
        j->ok[t] = 1;
    }

    /* 1 and *fingerprint (Rows.fingerprint's value) if every item can be gathered, else 0. */
    static int fbp_gather_fingerprint(PyObject *items, Py_ssize_t n, Py_ssize_t n_in,
                                      Py_ssize_t n_out, int targets, const void **xp, char *xk,
                                      const void **yp, char *yk, int nthreads,
                                      uint64_t *fingerprint)
    {
        fbp_gfp_job j = {items, n, n_in, n_out, targets, xp, yp, xk, yk};
        if (nthreads < 1) nthreads = 1;
        if (nthreads > FBP_PACK_MAX_THREADS) nthreads = FBP_PACK_MAX_THREADS;
        if (fbp_pool_run(fbp_gfp_part, &j, nthreads) != 0)
            fbp_gfp_part(&j, 0, 1);  /* no worker: the same on this thread */
        uint64_t hx = FBP_FINGERPRINT_SEED, hy = FBP_FINGERPRINT_SEED;
        for (int t = 0; t < j.nt; ++t) {
            if (!j.ok[t]) return 0;
            hx += j.hx[t];
            hy += j.hy[t];
        }
        *fingerprint = targets ? hx ^ (hy * 31) : hx;
        return 1;
    }
    """
    int fbp_gather(object items, Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out, int targets,
                   const void **xp, char *xk, const void **yp, char *yk)
    int fbp_gather_fingerprint(object items, Py_ssize_t n, Py_ssize_t n_in, Py_ssize_t n_out,
                               int targets, const void **xp, char *xk, const void **yp,
                               char *yk, int nthreads, uint64_t *fingerprint)


cdef inline int64_t _count(const void *x, char kind, int64_t n, int *bad) noexcept nogil:
    if kind == 1:
        return fbp_count_nonzero_d(<const double *>x, n, bad)
    return fbp_count_nonzero_f(<const float *>x, n, bad)


cdef inline int _target_why(const void *y, char kind, int64_t n, bint double) noexcept nogil:
    """-1 if the target row y can be packed; else the reason _check_rows reports (0: a
    NaN or inf; FBP_BAD_OVERFLOW: beyond float32 range for a float32 network)."""
    cdef int nonfinite = 0
    _count(y, kind, n, &nonfinite)
    if nonfinite:
        return 0
    if kind == 1 and not double and not fbp_fits_float(<const double *>y, n):
        return FBP_BAD_OVERFLOW
    return -1


cdef inline void _fill_dense(const void *y, char kind, int64_t n, void *out,
                             bint double) noexcept nogil:
    cdef int64_t j
    for j in range(n):
        if double:
            (<double *>out)[j] = (<const double *>y)[j] if kind == 1 else (<const float *>y)[j]
        else:
            (<float *>out)[j] = <float>((<const double *>y)[j] if kind == 1 else (<const float *>y)[j])


cdef class Rows:
    """Raw pointers to the x (and y) buffers of a list of ``(x, y)`` pairs, taken in one
    pass with the NumPy C-API.  ``items`` is this object's own copy of the list: the
    tuples in it hold every array that the kernels read without the GIL, whatever
    another thread does to the caller's list meanwhile."""
    cdef const void **xp
    cdef const void **yp
    cdef char *xk
    cdef char *yk
    cdef readonly Py_ssize_t n, n_in, n_out
    cdef readonly bint targets
    cdef readonly object items
    cdef bint ready  # the pointers are filled in (by _gather; gather_pairs makes sure)

    def __cinit__(self, list items not None, Py_ssize_t n_in, Py_ssize_t n_out, bint targets,
                  bint snapshot=True):
        if snapshot:  # one C-level copy under the GIL: a consistent snapshot
            items = list(items)
        cdef Py_ssize_t n = len(items)
        self.items, self.n, self.n_in, self.n_out, self.targets = items, n, n_in, n_out, targets
        self.xp = <const void **>malloc(max(n, 1) * sizeof(void *))
        self.yp = <const void **>malloc(max(n, 1) * sizeof(void *))
        self.xk = <char *>malloc(max(n, 1))
        self.yk = <char *>malloc(max(n, 1))
        if self.xp == NULL or self.yp == NULL or self.xk == NULL or self.yk == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.xp); free(self.yp); free(self.xk); free(self.yk)

    cdef bint _gather(self):
        self.ready = False
        if len(self.items) != self.n:  # (its own list: never)
            return False
        self.ready = fbp_gather(self.items, self.n, self.n_in, self.n_out, self.targets,
                                self.xp, self.xk, self.yp, self.yk) == 1
        return self.ready

    cdef _check_ready(self):
        if not self.ready:
            raise RuntimeError("Rows must come from gather_pairs (its arrays were not read)")

    def gather_fingerprint(self, int nthreads=1):
        """``fingerprint(nthreads)`` of the pairs, gathered in the same pass (the GIL held
        throughout, so that the worker threads read objects nothing changes meanwhile), or
        None if they cannot be gathered (as ``gather_pairs`` would return)."""
        cdef uint64_t h = 0
        self.ready = False
        if len(self.items) != self.n:  # (its own list: never)
            return None
        if not fbp_gather_fingerprint(self.items, self.n, self.n_in, self.n_out, self.targets,
                                      self.xp, self.xk, self.yp, self.yk, nthreads, &h):
            return None
        self.ready = True
        return h

    def fingerprint(self, int nthreads=1):
        """A 64-bit fingerprint of every x (and y) value, to notice in-place edits."""
        cdef uint64_t h
        self._check_ready()
        with nogil:
            h = fbp_rows_fingerprint(self.n, self.xp, self.xk, self.n_in, nthreads)
            if self.targets:
                h ^= fbp_rows_fingerprint(self.n, self.yp, self.yk, self.n_out, nthreads) * 31
        return h

    def pack(self, bint double, int nthreads=1, bint fingerprint=True, bint narrow=False):
        """``(indptr, split, indices, values, Y, fingerprint)``: the x's as CSR rows (see
        ``csr_rows``, also for ``narrow``), the y's (if ``targets``) as an (n, n_out)
        matrix, and the ``fingerprint()`` of the very values packed (each array read once
        for both, so that a write by another thread meanwhile cannot leave a packing that
        differs from the data its fingerprint stands for; 0 without ``fingerprint``).
        Raises ValueError naming the first item
        with a NaN or inf, or (for float32) a value beyond float32 range."""
        import numpy as np

        self._check_ready()
        cdef Py_ssize_t n = self.n, n_in = self.n_in, n_out = self.n_out, i, nnz
        cdef int64_t bad
        cdef int why = 0, filled = 0, inexact = 0, not_bytes = 1
        cdef int *check = &inexact if narrow and double else NULL
        cdef int *bytes_check = &not_bytes if narrow else NULL
        cdef int level
        cdef char *ys
        cdef uint64_t xh = 0, yh = FBP_FINGERPRINT_SEED
        cdef double *ycopy = NULL
        cdef int64_t[::1] ptr, sp
        cdef bint targets = self.targets
        # pass 1: count non-zeros per row and find the first non-finite value
        indptr_a = np.empty(n + 1, dtype=np.int64)
        ptr = indptr_a
        with nogil:
            bad = fbp_rows_count(n, self.xp, self.xk, n_in, &ptr[1], double, nthreads, &why,
                                 check, bytes_check)
            if bad == -1 and targets:
                for i in range(n):
                    why = _target_why(self.yp[i], self.yk[i], n_out, double)
                    if why >= 0:
                        bad = i
                        break
            ptr[0] = 0
            if bad == -1:  # (after a bad row the counts are not all written)
                for i in range(n):
                    ptr[i + 1] += ptr[i]
        _check_rows(bad, why)
        nnz = ptr[n]
        level = (1 + (not not_bytes)) if narrow and n_in <= FBP_NARROW_MAX_WIDTH \
            and not inexact else 0
        dt = np.float64 if double else np.float32
        Y_a = np.zeros((n, max(n_out, 1)), dtype=dt) if targets else None
        ys = <char *>_address(Y_a) if targets else NULL
        # pass 2: fill
        split_a = np.empty(n, dtype=np.int64)
        sp = split_a
        bad = -1
        indices_a, values_a, filled = _fill(n, self.xp, self.xk, n_in, ptr, sp, double, level,
                                            nthreads, &xh if fingerprint else NULL, &bad, &why)
        if targets and fingerprint:
            ycopy = <double *>malloc(max(n_out, 1) * sizeof(double))
            if ycopy == NULL:
                raise MemoryError("fastbp: out of memory while packing the targets")
        with nogil:
            if targets and fingerprint and bad < 0:  # (each y read once too, into ycopy,
                for i in range(n):                   # and checked there)
                    memcpy(ycopy, self.yp[i], n_out * (8 if self.yk[i] == 1 else 4))
                    why = _target_why(ycopy, self.yk[i], n_out, double)
                    if why >= 0:
                        bad = i
                        break
                    yh += fbp_row_term(ycopy, self.yk[i], n_out, i)
                    _fill_dense(ycopy, self.yk[i], n_out,
                                ys + i * n_out * (8 if double else 4), double)
            elif targets and bad < 0:
                for i in range(n):
                    _fill_dense(self.yp[i], self.yk[i], n_out,
                                ys + i * n_out * (8 if double else 4), double)
        free(ycopy)
        _check_rows(bad, why)  # (a NaN, inf or overflow written since the count pass)
        _check_rows(-1 if filled in (0, FBP_PACK_CHANGED, FBP_PACK_BADVALUE) else filled)
        if targets and fingerprint:
            xh ^= yh * 31  # (as fingerprint() combines them)
        # a row's count changed since the count pass: another thread wrote the data, so
        # the packing is no snapshot of it: no fingerprint, and no cache entry
        fp = (None if filled == FBP_PACK_CHANGED else xh) if fingerprint else 0
        return indptr_a, split_a, indices_a, values_a, Y_a, fp


def gather_pairs(list items not None, Py_ssize_t n_in, Py_ssize_t n_out, bint targets,
                 bint snapshot=True):
    """``Rows`` for ``[(x, y), ...]`` if every item is a 2-tuple of aligned, C-contiguous
    float32/float64 arrays of n_in (and, with ``targets``, n_out) values shaped (n, 1);
    else None (the caller then takes the general NumPy path, which also explains what is
    wrong).  ``snapshot=False`` keeps ``items`` itself rather than a copy, only for a list
    that nothing changes (as the packing cache's own, which ``Rows(..., False)`` and
    ``gather_fingerprint`` check): a copy writes, and later releases, a reference to
    every pair (about 1 ms for 50,000 pairs just read from memory)."""
    rows = Rows(items, n_in, n_out, targets, snapshot)
    return rows if rows._gather() else None


def address(cnp.ndarray a not None):
    """The address of ``a``'s first element."""
    return <size_t>cnp.PyArray_DATA(a)


cdef enum:
    _FP_WORDS = 1024  # a fingerprint's "row": 4 KiB of the buffer


def array_fingerprint(object A, int nthreads=1):
    """A fingerprint of the memory of ``A`` (a contiguous array, C or Fortran order, any
    dtype), to notice in-place edits: ``(hash of its 4 KiB blocks, hash of the rest,
    its last bytes)``, the hashes as ``Rows.fingerprint`` takes them."""
    if not cnp.PyArray_Check(A):
        raise TypeError("A must be an array")
    cdef cnp.ndarray arr = <cnp.ndarray>A
    if not (cnp.PyArray_IS_C_CONTIGUOUS(arr) or cnp.PyArray_IS_F_CONTIGUOUS(arr)):
        raise ValueError("A must be a contiguous array")
    cdef const char *base = <const char *>cnp.PyArray_DATA(arr)
    cdef Py_ssize_t nbytes = cnp.PyArray_NBYTES(arr), words = nbytes // 4, i
    cdef Py_ssize_t n = words // _FP_WORDS, rest = words % _FP_WORDS
    cdef const void **rows = <const void **>malloc((n + 1) * sizeof(void *))
    cdef char *kinds = <char *>malloc(n + 1)
    if rows == NULL or kinds == NULL:
        free(rows); free(kinds)
        raise MemoryError()
    for i in range(n + 1):
        rows[i] = base + i * _FP_WORDS * 4
        kinds[i] = 2  # (one 32-bit word per "element")
    cdef uint64_t blocks = 0, tail = 0
    with nogil:
        if n:
            blocks = fbp_rows_fingerprint(n, rows, kinds, _FP_WORDS, nthreads)
        if rest:
            tail = fbp_rows_fingerprint(1, rows + n, kinds, rest, 1)
    free(rows); free(kinds)
    return blocks, tail, bytes(base[words * 4:nbytes])


def same_objects(list a not None, list b not None):
    """Whether ``a`` and ``b`` hold the very same objects at every position (``is``):
    ``all(map(operator.is_, a, b))`` without a Python call per item (50,000 in 0.03 ms
    instead of about 3 ms).  Holds the GIL: no other thread changes the lists meanwhile."""
    cdef Py_ssize_t i, n = len(a)
    if len(b) != n:
        return False
    for i in range(n):
        if PyList_GET_ITEM(a, i) != PyList_GET_ITEM(b, i):
            return False
    return True


cdef extern from *:
    """
    typedef struct { size_t key; Py_ssize_t pos; } fbp_slot;
    #define FBP_PREFETCH(p) __builtin_prefetch(p)
    """
    ctypedef struct fbp_slot:
        size_t key
        Py_ssize_t pos
    void FBP_PREFETCH(const void *p) nogil


cdef inline Py_ssize_t _slot_of(size_t key, int shift) noexcept nogil:
    return <Py_ssize_t>((key * <size_t>0x9E3779B97F4A7C15) >> shift)


cdef class Positions:
    """The position of every object of a list, by address: ``order_of(b)`` maps a
    reordering ``b`` of the list to positions in it.  Built once (about 1 ms for 50,000
    objects) for a list looked up again and again, the packing cache's; a lookup then
    takes a fraction of a millisecond.  Keeps its own tuple of the objects, so they stay
    alive (their addresses theirs alone) and the table never goes stale."""

    cdef tuple objects
    cdef fbp_slot *slots  # key 0: an empty slot (no object is there)
    cdef Py_ssize_t n, cap
    cdef int shift  # a slot = the top bits of a multiplicative hash: 64 - log2(cap)
    cdef bint unique

    def __cinit__(self, list a not None):
        cdef Py_ssize_t i, h
        cdef size_t key
        self.objects = tuple(a)
        self.n = len(self.objects)
        self.cap = 16
        self.shift = 60
        while self.cap < 2 * self.n:
            self.cap *= 2
            self.shift -= 1
        self.slots = <fbp_slot *>calloc(self.cap, sizeof(fbp_slot))
        if self.slots == NULL:
            raise MemoryError()
        self.unique = True
        for i in range(self.n):
            key = <size_t><void *>self.objects[i]
            h = _slot_of(key, self.shift)
            while self.slots[h].key != 0 and self.slots[h].key != key:
                h = (h + 1) & (self.cap - 1)
            if self.slots[h].key == key:  # an object twice: no single reordering
                self.unique = False
                break
            self.slots[h].key = key
            self.slots[h].pos = i

    def __dealloc__(self):
        free(self.slots)

    def order_of(self, list b not None):
        """``order`` with ``b[i] is a[order[i]]`` for every i, if ``b`` holds each object
        of ``a`` exactly once; else None.  Holds the GIL."""
        import numpy as np

        cdef Py_ssize_t n = self.n, i, h, k
        cdef int shift = self.shift
        cdef size_t key, mask = <size_t>self.cap - 1
        cdef const fbp_slot *slots = self.slots
        if len(b) != n or not self.unique:
            return None
        order = np.empty(n, dtype=np.int64)
        cdef int64_t[::1] ov = order
        cdef unsigned char[::1] seen = np.zeros(n, dtype=np.uint8)
        # (a __del__ run by those allocations may have changed b; from here on no
        # Python code runs)
        if len(b) != n:
            return None
        for i in range(n):
            if i + 16 < n:  # the slots are at random places: ask for one 16 items ahead
                FBP_PREFETCH(&slots[_slot_of(<size_t>PyList_GET_ITEM(b, i + 16), shift)])
            key = <size_t>PyList_GET_ITEM(b, i)
            h = _slot_of(key, shift)
            while slots[h].key != 0 and slots[h].key != key:
                h = (h + 1) & mask
            if slots[h].key != key:
                return None
            k = slots[h].pos
            if seen[k]:
                return None
            seen[k] = 1
            ov[i] = k
        return order


def permutation(list a not None, list b not None):
    """``order`` with ``b[i] is a[order[i]]`` for every i, if ``b`` holds each object of
    ``a`` exactly once (a reordering of it); else None: ``Positions(a).order_of(b)``."""
    if len(b) != len(a):
        return None
    return Positions(a).order_of(b)


def scatter(list items not None, const int64_t[::1] order not None):
    """``out`` with ``out[order[i]] is items[i]`` for every i: ``items`` rearranged by
    the permutation ``order`` (ValueError unless it is one of ``len(items)``).  Holds
    the GIL and runs no Python code: 50,000 items in about 0.3 ms, not 5."""
    import numpy as np

    cdef Py_ssize_t n = len(items), i, k
    if order.shape[0] != n:
        raise ValueError(f"order has {order.shape[0]} entries for {n} items")
    cdef unsigned char[::1] seen = np.zeros(n, dtype=np.uint8)
    out = [None] * n
    if len(items) != n:  # (a __del__ run by those allocations changed the list)
        raise ValueError("items changed while they were rearranged")
    for i in range(n):
        k = order[i]
        if not 0 <= k < n or seen[k]:
            raise ValueError(f"order is not a permutation of range({n}): order[{i}] = {k}")
        seen[k] = 1
        out[k] = items[i]
    return out


cdef extern from *:
    """
    #define FBP_LIST_ITEMS(l) (((PyListObject *)(l))->ob_item)
    """
    PyObject **FBP_LIST_ITEMS(object l)


cdef bint _is_permutation(const int64_t[::1] p, unsigned char *seen) noexcept:
    cdef Py_ssize_t i, n = p.shape[0]
    cdef int64_t k
    memset(seen, 0, <size_t>n)
    for i in range(n):
        k = p[i]
        if k < 0 or k >= n or seen[k]:
            return False
        seen[k] = 1
    return True


def permute_list(list target not None, list base not None, const int64_t[::1] old not None,
                 const int64_t[::1] new not None):
    """``target[i] = base[new[i]]`` for every i < n = len(base), in place, if ``target[i]
    is base[old[i]]`` for every i < n and ``old`` and ``new`` are permutations of
    range(n); returns whether it did (else ``target`` is untouched).  The objects stay
    the same, only their places change, so no reference count changes and no object is
    touched: 50,000 items in about 0.1 ms, where ``target[:n] = [...]`` took 1.4 ms
    (a cache miss on each scattered object, twice).  Holds the GIL and runs no Python
    code from the check to the last write."""
    cdef Py_ssize_t i, n = len(base)
    if target is base or len(target) < n or old.shape[0] != n or new.shape[0] != n:
        return False
    if n == 0:
        return True
    cdef unsigned char *seen = <unsigned char *>malloc(<size_t>n)
    if seen == NULL:
        raise MemoryError()
    cdef bint ok = _is_permutation(old, seen) and _is_permutation(new, seen)
    free(seen)
    if not ok or len(target) < n or len(base) != n:
        return False
    cdef PyObject **t = FBP_LIST_ITEMS(target)
    cdef PyObject **b = FBP_LIST_ITEMS(base)
    for i in range(n):
        if t[i] != b[old[i]]:
            return False
    for i in range(n):
        t[i] = b[new[i]]
    return True


def mt_shuffle(int64_t[::1] x not None, uint32_t[::1] mt not None, int pos):
    """``random.shuffle`` of ``x`` in place, driven by the MT19937 state ``mt`` (624
    words) at index ``pos``; returns the new index (see fbp_shuffle.h)."""
    if mt.shape[0] != 624 or not 0 <= pos <= 624 or x.shape[0] > 2**32:
        raise ValueError("mt_shuffle needs a 624-word state, 0 <= pos <= 624, len <= 2**32")
    if x.shape[0] > 1:
        with nogil:
            fbp_mt_shuffle(&x[0], x.shape[0], &mt[0], &pos)
    return pos


def mt_shuffle_random(int64_t[::1] x not None, object inst):
    """``random.shuffle``'s permutation of ``x`` in place, drawn from the MT19937 state of
    ``inst`` (a ``random.Random``), which is left exactly as ``random.shuffle`` would
    leave it.  Atomic for Python threads: the GIL is held throughout and no Python code
    runs in between, so no other thread can draw from ``inst`` half-way."""
    import _random

    cdef tuple state = _random.Random.getstate(inst)
    cdef uint32_t[624] mt
    cdef int pos, i
    if len(state) != 625:
        raise ValueError("unexpected random.Random state")
    for i in range(624):
        mt[i] = state[i]
    pos = state[624]
    if not 0 <= pos <= 624:
        raise ValueError("unexpected random.Random state")
    if x.shape[0] > 1:
        fbp_mt_shuffle(&x[0], x.shape[0], mt, &pos)
    _random.Random.setstate(inst, tuple([mt[i] for i in range(624)] + [pos]))


cdef extern from "fbp_pack.h" nogil:
    int fbp_all_finite_d(const double *x, int64_t n)
    int fbp_all_finite_f(const float *x, int64_t n)
    int fbp_all_modest_d(const double *x, int64_t n)


def all_finite(list arrays not None):
    """Whether no C-contiguous float32/float64 array in ``arrays`` holds a NaN or inf."""
    cdef cnp.ndarray a
    cdef int ok = 1
    for obj in arrays:
        a = <cnp.ndarray?>obj
        if not cnp.PyArray_IS_C_CONTIGUOUS(a):
            raise ValueError("all_finite needs C-contiguous arrays")
        if cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE:
            ok = fbp_all_finite_d(<const double *>cnp.PyArray_DATA(a), cnp.PyArray_SIZE(a))
        elif cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT:
            ok = fbp_all_finite_f(<const float *>cnp.PyArray_DATA(a), cnp.PyArray_SIZE(a))
        else:
            raise TypeError("all_finite needs float32 or float64 arrays")
        if not ok:
            return False
    return True


cdef inline bint _plain_f64(cnp.ndarray a, int ndim):
    """``a`` is a C-contiguous, aligned, native-order float64 array of ``ndim`` dims."""
    return (cnp.PyArray_NDIM(a) == ndim and cnp.PyArray_TYPE(a) == cnp.NPY_DOUBLE
            and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a)
            and cnp.PyArray_ISNOTSWAPPED(a))


def row_argmax(object t):
    """``np.argmax(t, axis=1)`` (each row's first largest entry) as int64, for a
    C-contiguous native float64 (n, k) array ``t`` with k >= 1, or None if a value of
    ``t`` is NaN or inf (the caller names it).  One pass, for one-hot targets."""
    cdef cnp.ndarray a = <cnp.ndarray?>t
    if not _plain_f64(a, 2) or cnp.PyArray_DIM(a, 1) < 1:
        raise ValueError("row_argmax needs a C-contiguous float64 (n, k) array, k >= 1")
    cdef cnp.npy_intp n = cnp.PyArray_DIM(a, 0), k = cnp.PyArray_DIM(a, 1), i, j
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &n, cnp.NPY_INT64, 0)
    cdef const double *p = <const double *>cnp.PyArray_DATA(a)
    cdef int64_t *o = <int64_t *>cnp.PyArray_DATA(out)
    cdef double best, v, check = 0
    cdef int64_t arg
    with nogil:
        for i in range(n):
            best = p[i * k]
            arg = 0
            for j in range(k):
                v = p[i * k + j]
                check += v * 0  # NaN once a value is NaN or inf
                if v > best:
                    best = v
                    arg = j
            o[i] = arg
    return out if check == 0 else None


def picked_log_loss(object y, object labels, double eps):
    """The book's cross-entropy error of softmax rows ``y`` (C-contiguous native float64
    (n, k), n >= 1) at integer ``labels`` (int64 (n,), each checked to be in 0..k-1):
    ``-sum_i log(y[i, labels[i]] + eps) / n``."""
    cdef cnp.ndarray ya = <cnp.ndarray?>y
    cdef cnp.ndarray la = <cnp.ndarray?>labels
    if (not _plain_f64(ya, 2) or cnp.PyArray_NDIM(la) != 1
            or cnp.PyArray_TYPE(la) != cnp.NPY_INT64
            or not cnp.PyArray_IS_C_CONTIGUOUS(la) or not cnp.PyArray_ISALIGNED(la)
            or not cnp.PyArray_ISNOTSWAPPED(la)
            or cnp.PyArray_DIM(la, 0) != cnp.PyArray_DIM(ya, 0)
            or cnp.PyArray_DIM(ya, 0) < 1):
        raise ValueError("picked_log_loss needs float64 rows y (n, k), n >= 1, and int64 "
                         "labels (n,)")
    cdef cnp.npy_intp n = cnp.PyArray_DIM(ya, 0), k = cnp.PyArray_DIM(ya, 1), i
    cdef const double *p = <const double *>cnp.PyArray_DATA(ya)
    cdef const int64_t *lab = <const int64_t *>cnp.PyArray_DATA(la)
    cdef double s = 0
    cdef int64_t bad = -1, c = 0
    with nogil:
        for i in range(n):
            c = lab[i]
            if c < 0 or c >= k:
                bad = i
                break
            s += log(p[i * k + c] + eps)
    if bad >= 0:  # (c: the label as read, whatever another thread wrote since)
        raise ValueError(f"label {c} of row {bad} is outside 0..{k - 1}")
    return -s / <double>n


def copy_plain(object dest, object src):
    """``dest[...] = src`` for float64 arrays of the same 1-D or 2-D shape, ``src``
    C-contiguous and ``dest`` C-contiguous rows at any row stride (a view into a padded
    buffer), both aligned and in native byte order, their memory apart; returns False
    (nothing copied) for any other pair, which the caller copies with ``np.copyto``."""
    cdef cnp.ndarray d_arr = <cnp.ndarray?>dest
    cdef cnp.ndarray s_arr = <cnp.ndarray?>src
    cdef int nd = cnp.PyArray_NDIM(s_arr)
    if (nd < 1 or nd > 2 or not _plain_f64(s_arr, nd) or cnp.PyArray_NDIM(d_arr) != nd
            or cnp.PyArray_TYPE(d_arr) != cnp.NPY_DOUBLE or not cnp.PyArray_ISALIGNED(d_arr)
            or not cnp.PyArray_ISNOTSWAPPED(d_arr) or not cnp.PyArray_ISWRITEABLE(d_arr)):
        return False
    cdef cnp.npy_intp rows = cnp.PyArray_DIM(s_arr, 0) if nd == 2 else 1
    cdef cnp.npy_intp cols = cnp.PyArray_DIM(s_arr, nd - 1), r
    cdef cnp.npy_intp step = cnp.PyArray_STRIDE(d_arr, 0) if nd == 2 else 0
    if (cnp.PyArray_DIM(d_arr, 0) != cnp.PyArray_DIM(s_arr, 0)
            or (nd == 2 and cnp.PyArray_DIM(d_arr, 1) != cols)
            or cnp.PyArray_STRIDE(d_arr, nd - 1) != sizeof(double)
            or (nd == 2 and rows > 1 and step < cols * <cnp.npy_intp>sizeof(double))):
        return False
    cdef char *d = <char *>cnp.PyArray_DATA(d_arr)
    cdef const char *p = <const char *>cnp.PyArray_DATA(s_arr)
    cdef cnp.npy_intp row_bytes = cols * <cnp.npy_intp>sizeof(double)
    cdef cnp.npy_intp d_end = (rows - 1) * step + row_bytes if rows else 0
    if rows and row_bytes and d < p + rows * row_bytes and p < d + d_end:
        return False  # overlapping memory: np.copyto copies it right
    with nogil:
        for r in range(rows):
            memcpy(d + r * step, p + r * cols * sizeof(double), cols * sizeof(double))
    return True


def sum_of_squares_is_finite(object obj):
    """Whether ``np.sum(a ** 2)`` is surely finite for the array ``a``: True if it is a
    C-contiguous float64 array of at most 2^23 values, all below 2^500 in magnitude;
    False otherwise (then compute it to know)."""
    if not isinstance(obj, cnp.ndarray):
        return False
    cdef cnp.ndarray a = obj
    if (not cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_TYPE(a) != cnp.NPY_DOUBLE
            or not cnp.PyArray_ISNOTSWAPPED(a) or not cnp.PyArray_ISALIGNED(a)
            or cnp.PyArray_SIZE(a) > 2 ** 23):
        return False
    return fbp_all_modest_d(<const double *>cnp.PyArray_DATA(a), cnp.PyArray_SIZE(a)) != 0


from libc.math cimport exp, isfinite, tanh


def bias_activate(real[:, ::1] z not None, const real[:, ::1] b, int activation,
                  bint softmax):
    """``z <- f(z + b)`` in place, for one column ``z`` (n, 1) and biases ``b`` (n, 1)
    (None: no biases): f is the sigmoid (0), tanh (1) or relu (2), or the softmax of the
    column.  Returns False if a NaN or inf went in (the caller raises)."""
    cdef Py_ssize_t n = z.shape[0], j
    cdef double v, m, s
    cdef bint ok = True
    cdef bint has_b = b is not None
    if z.shape[1] != 1 or (has_b and (b.shape[0] != n or b.shape[1] != 1)):
        raise ValueError("bias_activate needs a column z (n, 1) and biases b (n, 1)")
    with nogil:
        for j in range(n):
            if has_b:
                v = <double>z[j, 0] + <double>b[j, 0] if real is double else <real>(z[j, 0] + b[j, 0])
            else:
                v = z[j, 0]
            if not isfinite(v):
                ok = False
            z[j, 0] = <real>v
        if softmax:
            m = z[0, 0]
            for j in range(1, n):
                if z[j, 0] > m:
                    m = z[j, 0]
            s = 0
            for j in range(n):
                z[j, 0] = <real>exp(<double>(z[j, 0] - <real>m))
                s += z[j, 0]
            for j in range(n):
                z[j, 0] = <real>(z[j, 0] / <real>s)
        elif activation == 0:
            for j in range(n):
                z[j, 0] = <real>(<real>1 / (<real>1 + <real>exp(-<double>z[j, 0])))
        elif activation == 1:
            for j in range(n):
                z[j, 0] = <real>tanh(<double>z[j, 0])
        else:
            for j in range(n):
                if not z[j, 0] > 0:
                    z[j, 0] = 0
    return ok


def times_prime(real[:, ::1] delta not None, const real[:, ::1] a not None, int activation):
    """``delta *= f'(z)`` in place, with f' computed from the activation ``a = f(z)``:
    a(1 - a) for the sigmoid (0), 1 - a^2 for tanh (1), [a > 0] for relu (2)."""
    cdef Py_ssize_t n = delta.shape[0], j
    if delta.shape[1] != 1 or a.shape[0] != n or a.shape[1] != 1:
        raise ValueError("times_prime needs two columns (n, 1)")
    with nogil:
        for j in range(n):
            if activation == 0:
                delta[j, 0] = delta[j, 0] * (a[j, 0] * (1 - a[j, 0]))
            elif activation == 1:
                delta[j, 0] = delta[j, 0] * (1 - a[j, 0] * a[j, 0])
            elif not a[j, 0] > 0:
                delta[j, 0] = 0


# ---- machine-limit probes (csrc/fbp_probe.c), for the benchmark report's bounds ----

cdef extern from "fbp_probe.h" nogil:
    double fbp_probe(int what, int nthreads, int64_t reps, const int32_t *rows, int64_t nrows)
    int FBP_PROBE_BAD

PROBES = ("fma", "fma_scalar", "l1_load", "l1_store", "l2_load", "l2_store", "gather", "update")
PROBE_SHAPE = (784, 32)


def probe(str what, int nthreads=1, int64_t reps=0, int32_t[::1] rows=None):
    """Measure one limit of this machine (see csrc/fbp_probe.h): the best rate of a
    tiny kernel-shaped loop on ``nthreads`` threads, summed over them.  ``what`` is one
    of PROBES: "fma" and "fma_scalar" give multiply-adds/s; "l1_load", "l1_store",
    "l2_load", "l2_store" bytes/s; "gather" (z += x_k W[k]) and "update" (W[k] += c x_k
    delta) multiply-adds/s over the rows ``rows`` (int32, in [0, 784)) of a
    PROBE_SHAPE float64 matrix.  ``reps`` <= 0: about 20 ms per timed run."""
    if what not in PROBES:
        raise ValueError(f"probe: what must be one of {PROBES}, not {what!r}")
    cdef int code = PROBES.index(what)
    cdef const int32_t *p = NULL
    cdef int64_t n = 0
    if rows is not None:
        p, n = &rows[0] if rows.shape[0] else NULL, rows.shape[0]
    if code >= 6 and n == 0:
        raise ValueError(f"probe {what!r} needs a non-empty int32 array of rows")
    cdef double r
    with nogil:
        r = fbp_probe(code, nthreads, reps, p, n)
    if r == FBP_PROBE_BAD:
        raise ValueError("probe: bad arguments (threads < 1, or a row outside [0, 784))")
    if r == FBP_NOTHREAD:
        raise RuntimeError("probe: a worker thread could not be started")
    if r < 0:
        raise MemoryError("probe: out of memory")
    return r
