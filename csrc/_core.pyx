# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Bridge from validated NumPy arrays to the C kernels in fbp_kernels.c.

Nothing here checks shapes: the Python layer (``fastbp._engine``) does that before
calling.  Every kernel runs with the GIL released.
"""
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc

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
        const int32_t *indices
        const void *values
        const void *y
    int FBP_OK
    int FBP_NOMEM
    int FBP_PAD
    int64_t fbp_ld(int64_t n)
    int fbp_train_d(const fbp_net *net, const fbp_data *data, const int64_t *order, int64_t n,
                    int64_t batch, double eta, double lmbda, double n_total, int nthreads)
    int fbp_train_f(const fbp_net *net, const fbp_data *data, const int64_t *order, int64_t n,
                    int64_t batch, double eta, double lmbda, double n_total, int nthreads)
    int fbp_forward_d(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                      double *out, int nthreads)
    int fbp_forward_f(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                      float *out, int nthreads)
    int fbp_grad_sum_d(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                       double **gb, double **gwt)
    int fbp_grad_sum_f(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                       float **gb, float **gwt)
    const char *fbp_isa()
    const char *fbp_set_isa(int best)
    int fbp_openmp()

ctypedef fused real:
    float
    double

MAX_LAYERS = 63
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


def openmp():
    """Whether the kernels were compiled with OpenMP (multi-threaded mini-batches)."""
    return bool(fbp_openmp())


cdef class _Net:
    """Raw pointers to one set of parameter arrays (kept alive by this object)."""
    cdef fbp_net net
    cdef void **ptrs
    cdef object keep

    def __cinit__(self, list wt, list b, int64_t[::1] sizes, int activation, int cost):
        cdef Py_ssize_t L = len(wt), l
        self.ptrs = <void **>malloc(2 * max(L, 1) * sizeof(void *))
        if self.ptrs == NULL:
            raise MemoryError()
        self.keep = (wt, b, sizes)
        for l in range(L):
            self.ptrs[l] = _address(wt[l])
            self.ptrs[L + l] = _address(b[l])
        self.net.n_layers = <int>L
        self.net.sizes = &sizes[0]
        self.net.wt = self.ptrs
        self.net.b = self.ptrs + L
        self.net.activation = activation
        self.net.cost = cost

    def __dealloc__(self):
        free(self.ptrs)


cdef void *_address(object a) except NULL:
    cdef size_t p = a.__array_interface__["data"][0]
    return <void *>p


cdef fbp_data _data(int64_t[::1] indptr, int32_t[::1] indices, const void *values,
                   const void *y):
    cdef fbp_data d
    d.indptr = &indptr[0]
    d.indices = &indices[0] if indices.shape[0] > 0 else NULL
    d.values = values
    d.y = y
    return d


cdef inline const void *_first(real[::1] values):
    return <const void *>&values[0] if values.shape[0] > 0 else NULL


def train(_Net net, int64_t[::1] indptr, int32_t[::1] indices, real[::1] values,
          real[:, ::1] y, int64_t[::1] order, int64_t batch, double eta, double lmbda,
          double n_total, int nthreads):
    """Train in place over the rows ``order``, in mini-batches of ``batch``."""
    cdef fbp_data d = _data(indptr, indices, _first(values), &y[0, 0])
    cdef int64_t n = order.shape[0]
    cdef int status
    with nogil:
        if real is double:
            status = fbp_train_d(&net.net, &d, &order[0], n, batch, eta, lmbda, n_total,
                                 nthreads)
        else:
            status = fbp_train_f(&net.net, &d, &order[0], n, batch, eta, lmbda, n_total,
                                 nthreads)
    if status == FBP_NOMEM:
        raise MemoryError("fastbp: out of memory for the mini-batch buffers")


def forward(_Net net, int64_t[::1] indptr, int32_t[::1] indices, real[::1] values,
            real[:, ::1] out, int nthreads):
    """Output activations of every CSR row into ``out`` (rows x output width)."""
    cdef fbp_data d = _data(indptr, indices, _first(values), NULL)
    cdef int64_t count = out.shape[0]
    cdef int status
    with nogil:
        if real is double:
            status = fbp_forward_d(&net.net, &d, 0, count, &out[0, 0], nthreads)
        else:
            status = fbp_forward_f(&net.net, &d, 0, count, &out[0, 0], nthreads)
    if status == FBP_NOMEM:
        raise MemoryError("fastbp: out of memory in forward")


def grad_sum(_Net net, int64_t[::1] indptr, int32_t[::1] indices, real[::1] values,
             real[:, ::1] y, list gb, list gwt):
    """Add the per-sample gradients of every row to ``gb`` and ``gwt`` (W transposed)."""
    cdef fbp_data d = _data(indptr, indices, _first(values), &y[0, 0])
    cdef Py_ssize_t L = len(gb), l
    cdef int64_t count = y.shape[0]
    cdef void **p = <void **>malloc(2 * L * sizeof(void *))
    cdef int status
    if p == NULL:
        raise MemoryError()
    try:
        for l in range(L):
            p[l] = _address(gb[l])
            p[L + l] = _address(gwt[l])
        with nogil:
            if real is double:
                status = fbp_grad_sum_d(&net.net, &d, 0, count, <double **>p,
                                        <double **>(p + L))
            else:
                status = fbp_grad_sum_f(&net.net, &d, 0, count, <float **>p,
                                        <float **>(p + L))
    finally:
        free(p)
    if status == FBP_NOMEM:
        raise MemoryError("fastbp: out of memory in grad_sum")


def csr_rows(real[:, ::1] X):
    """Compress the rows of X to CSR: ``(indptr int64, indices int32, values)``.

    Zeros are skipped, so the first layer never multiplies by a blank pixel.  NaN
    and inf are kept (they are not zero), for the caller's finiteness check.
    """
    import numpy as np

    cdef Py_ssize_t n = X.shape[0], k = X.shape[1], i, j
    cdef int64_t nnz = 0
    with nogil:
        for i in range(n):
            for j in range(k):
                nnz += X[i, j] != 0
    indptr_a = np.empty(n + 1, dtype=np.int64)
    # one spare slot: the fill loop below writes every element and advances on non-zeros
    indices_a = np.empty(nnz + 1, dtype=np.int32)
    values_a = np.empty(nnz + 1, dtype=np.float64 if real is double else np.float32)
    cdef int64_t[::1] indptr = indptr_a
    cdef int32_t[::1] indices = indices_a
    cdef real[::1] values = values_a
    cdef int64_t p = 0
    with nogil:
        indptr[0] = 0
        for i in range(n):
            for j in range(k):
                indices[p] = <int32_t>j
                values[p] = X[i, j]
                p += X[i, j] != 0
            indptr[i + 1] = p
    return indptr_a, indices_a[:nnz], values_a[:nnz]


cdef extern from "Python.h":
    ctypedef struct Py_buffer:
        void *buf
        Py_ssize_t len
        Py_ssize_t itemsize
        char *format
    int PyObject_GetBuffer(object obj, Py_buffer *view, int flags) except -1
    void PyBuffer_Release(Py_buffer *view)
    int PyBUF_C_CONTIGUOUS
    int PyBUF_FORMAT


cdef inline int _kind(Py_buffer *v, Py_ssize_t n) noexcept:
    """1 for float64, 2 for float32, 0 if the buffer is not n native floats."""
    cdef char c = v.format[0]
    cdef char f = v.format[1] if c in b"<=@" else c
    if c in b"<=@" and v.format[2] != 0:
        return 0
    if c not in b"<=@" and v.format[1] != 0:
        return 0
    if f == b"d" and v.itemsize == 8 and v.len == 8 * n:
        return 1
    if f == b"f" and v.itemsize == 4 and v.len == 4 * n:
        return 2
    return 0


cdef extern from "fbp_pack.h" nogil:
    int64_t fbp_count_nonzero_f(const float *x, int64_t n, int *nonfinite)
    int64_t fbp_count_nonzero_d(const double *x, int64_t n, int *nonfinite)
    int64_t fbp_append_nonzero_ff(const float *x, int64_t n, int32_t *idx, float *val, int64_t p)
    int64_t fbp_append_nonzero_fd(const float *x, int64_t n, int32_t *idx, double *val, int64_t p)
    int64_t fbp_append_nonzero_df(const double *x, int64_t n, int32_t *idx, float *val, int64_t p)
    int64_t fbp_append_nonzero_dd(const double *x, int64_t n, int32_t *idx, double *val, int64_t p)


cdef inline int64_t _count(const void *x, char kind, int64_t n, int *bad) noexcept nogil:
    if kind == 1:
        return fbp_count_nonzero_d(<const double *>x, n, bad)
    return fbp_count_nonzero_f(<const float *>x, n, bad)


cdef inline int64_t _fill(const void *x, char kind, int64_t n, int32_t *idx, void *val,
                          bint double, int64_t p) noexcept nogil:
    if kind == 1:
        if double:
            return fbp_append_nonzero_dd(<const double *>x, n, idx, <double *>val, p)
        return fbp_append_nonzero_df(<const double *>x, n, idx, <float *>val, p)
    if double:
        return fbp_append_nonzero_fd(<const float *>x, n, idx, <double *>val, p)
    return fbp_append_nonzero_ff(<const float *>x, n, idx, <float *>val, p)


cdef inline void _fill_dense(const void *y, char kind, int64_t n, void *out,
                             bint double) noexcept nogil:
    cdef int64_t j
    for j in range(n):
        if double:
            (<double *>out)[j] = (<const double *>y)[j] if kind == 1 else (<const float *>y)[j]
        else:
            (<float *>out)[j] = <float>((<const double *>y)[j] if kind == 1 else (<const float *>y)[j])


def pack_pairs(list items, Py_ssize_t n_in, Py_ssize_t n_out, bint targets, bint double):
    """Fast path for packing ``[(x, y), ...]`` straight from each array's buffer.

    Returns ``(indptr, indices, values, Y)`` (Y None without ``targets``), or None when
    some item is not a 2-tuple of contiguous float32/float64 arrays of the right sizes
    (the caller then takes the general, slower NumPy path, which explains errors).
    Raises ValueError naming the first item with a NaN or inf.
    """
    import numpy as np

    cdef Py_ssize_t n = len(items), i, j, nnz = 0, p
    cdef Py_buffer *xb = <Py_buffer *>malloc(max(n, 1) * sizeof(Py_buffer))
    cdef Py_buffer *yb = <Py_buffer *>malloc(max(n, 1) * sizeof(Py_buffer))
    cdef char *xk = <char *>malloc(max(n, 1))
    cdef char *yk = <char *>malloc(max(n, 1))
    cdef Py_ssize_t got_x = 0, got_y = 0
    cdef int nonfinite = 0
    cdef void *vals
    cdef char *ys
    cdef int32_t[::1] idx
    cdef int64_t[::1] ptr
    if xb == NULL or yb == NULL or xk == NULL or yk == NULL:
        free(xb); free(yb); free(xk); free(yk)
        raise MemoryError()
    try:
        for i in range(n):
            item = items[i]
            if type(item) is not tuple or len(<tuple>item) != 2:
                return None
            x = (<tuple>item)[0]
            if not isinstance(x, np.ndarray):
                return None
            try:
                PyObject_GetBuffer(x, &xb[i], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
            except (BufferError, ValueError, TypeError):
                return None
            got_x += 1
            xk[i] = _kind(&xb[i], n_in)
            if xk[i] == 0:
                return None
            if targets:
                y = (<tuple>item)[1]
                if not isinstance(y, np.ndarray):
                    return None
                try:
                    PyObject_GetBuffer(y, &yb[i], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
                except (BufferError, ValueError, TypeError):
                    return None
                got_y += 1
                yk[i] = _kind(&yb[i], n_out)
                if yk[i] == 0:
                    return None
        # pass 1: count non-zeros and find the first non-finite value
        bad = -1
        with nogil:
            for i in range(n):
                nnz += _count(xb[i].buf, xk[i], n_in, &nonfinite)
                if targets and not nonfinite:
                    _count(yb[i].buf, yk[i], n_out, &nonfinite)
                if nonfinite:
                    bad = i
                    break
        if bad >= 0:
            raise ValueError(f"item {bad} contains NaN or inf")
        dt = np.float64 if double else np.float32
        indptr_a = np.empty(n + 1, dtype=np.int64)
        indices_a = np.empty(nnz + 1, dtype=np.int32)  # + 1: _fill writes one past the end
        values_a = np.empty(nnz + 1, dtype=dt)
        Y_a = np.zeros((n, max(n_out, 1)), dtype=dt) if targets else None
        ptr = indptr_a
        idx = indices_a
        vals = _address(values_a)
        ys = <char *>_address(Y_a) if targets else NULL
        # pass 2: fill (targets through the same routine: a zero-skipping copy)
        p = 0
        with nogil:
            ptr[0] = 0
            for i in range(n):
                p = _fill(xb[i].buf, xk[i], n_in, &idx[0], vals, double, p)
                ptr[i + 1] = p
                if targets:
                    _fill_dense(yb[i].buf, yk[i], n_out, ys + i * n_out * (8 if double else 4),
                                double)
        return indptr_a, indices_a[:nnz], values_a[:nnz], Y_a
    finally:
        for i in range(got_x):
            PyBuffer_Release(&xb[i])
        for i in range(got_y):
            PyBuffer_Release(&yb[i])
        free(xb); free(yb); free(xk); free(yk)
