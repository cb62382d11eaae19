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
