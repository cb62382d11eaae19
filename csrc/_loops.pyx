# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""The compiled-loops tier: ``python/network_loop.py``'s SGD as plain typed loops.

One example at a time, exactly as the book's ``backprop`` and ``update_mini_batch``
(same names, same order of operations), but compiled: every NumPy call of the Python
loop becomes a ``for`` loop over typed memory, with no interpreter, no temporaries and
the GIL released.  Dense input (all 784 pixels are multiplied, zeros too), no SIMD
intrinsics, no threads: the point is to show what compiling the loop alone buys.  The
fused kernels in ``fbp_impl.h`` go further (sparse input, SIMD, two threads).

Layer ``l`` (0-based) maps ``sizes[l]`` inputs to ``sizes[l + 1]`` outputs with
``w[l]`` an (n_out, n_in) row-major matrix and ``b[l]`` an (n_out,) vector, as in
network.py.  ``a[l]`` is the activation vector entering layer ``l`` (``a[0]`` is the
input x), ``delta[l]`` the error of layer ``l``'s outputs.  sigma'(z) is computed as
a (1 - a) from the stored activation, which is exactly network.py's
``sigmoid(z) * (1 - sigmoid(z))``.
"""
from libc.math cimport exp
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport calloc, free, malloc
from cpython.exc cimport PyErr_CheckSignals

ctypedef fused real:
    float
    double

cdef enum:  # the costs (codes as in fastbp._engine)
    C_QUADRATIC = 0
    C_CROSS_ENTROPY = 1

cdef int64_t POLL_EXAMPLES = 256  # examples trained between two checks for Ctrl-C

QUADRATIC = C_QUADRATIC
CROSS_ENTROPY = C_CROSS_ENTROPY


cdef inline real sigmoid(real z) noexcept nogil:
    return 1.0 / (1.0 + exp(-z))


cdef void backprop(int L, const int64_t *sizes, real **w, real **b, real **a,
                   real **delta, real **nabla_b, real **nabla_w, const real *y,
                   int cost) noexcept nogil:
    """Add the gradient of the cost C_x for the example in ``a[0]`` (target ``y``) to
    ``nabla_b`` and ``nabla_w``."""
    cdef int l
    cdef int64_t j, k, n_in, n_out, n_next
    cdef real s
    cdef real *z
    # Forward pass: a_{l+1} = sigmoid(w_l a_l + b_l).  The product is summed input by
    # input, z += a_k w[:, k], so all n_out sums advance together (summing one output
    # at a time is one long chain of dependent additions, 2-3 times slower).
    for l in range(L):
        n_in, n_out = sizes[l], sizes[l + 1]
        z = a[l + 1]
        for j in range(n_out):
            z[j] = 0
        for k in range(n_in):
            for j in range(n_out):
                z[j] += w[l][j * n_in + k] * a[l][k]
        for j in range(n_out):
            z[j] = sigmoid(z[j] + b[l][j])
    # Output error: the cost derivative (a - y), times sigma'(z) for the quadratic cost
    # (the cross-entropy cost's sigma' cancels).
    for j in range(sizes[L]):
        delta[L - 1][j] = a[L][j] - y[j]
        if cost == C_QUADRATIC:
            delta[L - 1][j] *= a[L][j] * (1 - a[L][j])
    # Backward pass: delta_l = (w_{l+1}^T delta_{l+1}) * sigma'(z_l).
    for l in range(L - 2, -1, -1):
        n_out, n_next = sizes[l + 1], sizes[l + 2]
        for k in range(n_out):
            s = 0
            for j in range(n_next):
                s += w[l + 1][j * n_out + k] * delta[l + 1][j]
            delta[l][k] = s * (a[l + 1][k] * (1 - a[l + 1][k]))
    # Gradient: nabla_b_l += delta_l,  nabla_w_l += delta_l a_l^T.
    for l in range(L):
        n_in, n_out = sizes[l], sizes[l + 1]
        for j in range(n_out):
            nabla_b[l][j] += delta[l][j]
            for k in range(n_in):
                nabla_w[l][j * n_in + k] += delta[l][j] * a[l][k]


cdef void update_mini_batch(int L, const int64_t *sizes, real **w, real **b,
                            real **nabla_b, real **nabla_w, int64_t m, double eta,
                            double lmbda, double n_total) noexcept nogil:
    """w <- (1 - eta*lmbda/n) w - (eta/m) nabla_w;  b <- b - (eta/m) nabla_b; then
    clear the gradient sums for the next mini-batch."""
    cdef int l
    cdef int64_t i, size
    cdef real decay = 1 - eta * (lmbda / n_total)
    cdef real step = eta / m
    for l in range(L):
        size = sizes[l + 1] * sizes[l]
        for i in range(size):
            w[l][i] = decay * w[l][i] - step * nabla_w[l][i]
            nabla_w[l][i] = 0
        for i in range(sizes[l + 1]):
            b[l][i] -= step * nabla_b[l][i]
            nabla_b[l][i] = 0


cdef void sgd_steps(int L, const int64_t *sizes, real **w, real **b, real **a,
                    real **delta, real **nabla_b, real **nabla_w,
                    const real *X, const int64_t *indptr, const int32_t *indices,
                    const real *values, const real *Y, const int64_t *order, int64_t n,
                    int64_t batch, double eta, double lmbda, double n_total,
                    int cost) noexcept nogil:
    """One mini-batch step per ``batch`` consecutive entries of ``order``.  An example's
    input is row ``s`` of the dense X, or (when X is NULL) CSR row ``s`` scattered into
    the dense vector ``a[0]``."""
    cdef int64_t k, start, i, s, p, m
    cdef int64_t n_in = sizes[0], n_out = sizes[L]
    for k in range((n + batch - 1) // batch):
        start = k * batch
        m = min(batch, n - start)
        for i in range(start, start + m):
            s = order[i]
            if X != NULL:
                a[0] = <real *>&X[s * n_in]
            else:
                for p in range(n_in):
                    a[0][p] = 0
                for p in range(indptr[s], indptr[s + 1]):
                    a[0][indices[p]] = values[p]
            backprop(L, sizes, w, b, a, delta, nabla_b, nabla_w, &Y[s * n_out], cost)
        update_mini_batch(L, sizes, w, b, nabla_b, nabla_w, m, eta, lmbda, n_total)



cdef bint _polling = False  # (guarded by the GIL)


def polling_signals():
    """Whether this tier is polling Python's signal handlers right now (see _core's)."""
    return _polling


cdef int _poll_signals() except -1:
    global _polling
    _polling = True
    try:
        PyErr_CheckSignals()
    finally:
        _polling = False
    return 0


def train(list weights not None, list biases not None, real[:, ::1] X not None,
          real[:, ::1] Y not None, int64_t[::1] order not None, int64_t batch, double eta,
          double lmbda=0.0, double n_total=1.0, int cost=C_QUADRATIC):
    """Train in place over the samples ``order`` (mini-batches of ``batch``), sigmoid
    units, the quadratic (``QUADRATIC``) or cross-entropy (``CROSS_ENTROPY``) cost.

    ``weights[l]``: C-contiguous (n_out, n_in) arrays, ``biases[l]``: contiguous
    (n_out,) arrays, all of X's dtype; X: (n, n_in) dense inputs, Y: (n, n_out) targets.
    """
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows and Y {Y.shape[0]}")
    _run(weights, biases, Y, X.shape[1], &X[0, 0] if X.shape[0] else NULL, NULL, NULL, NULL,
         order, batch, eta, lmbda, n_total, cost)


def train_csr(list weights not None, list biases not None, int64_t[::1] indptr not None,
              int32_t[::1] indices not None, real[::1] values not None, real[:, ::1] Y not None,
              int64_t[::1] order not None, int64_t batch, double eta, double lmbda=0.0,
              double n_total=1.0, int cost=C_QUADRATIC):
    """``train`` on inputs stored as CSR rows (fastbp's packed data): each example is
    scattered into a dense input vector before the same dense loops run."""
    if indptr.shape[0] != Y.shape[0] + 1:
        raise ValueError(f"indptr has {indptr.shape[0]} entries, expected {Y.shape[0] + 1}")
    if indices.shape[0] != values.shape[0] or indices.shape[0] < indptr[Y.shape[0]]:
        raise ValueError("indices and values must hold indptr[-1] entries")
    _run(weights, biases, Y, -1, NULL, &indptr[0],
         &indices[0] if indices.shape[0] else NULL, &values[0] if values.shape[0] else NULL,
         order, batch, eta, lmbda, n_total, cost)


cdef _run(list weights, list biases, real[:, ::1] Y, int64_t n_in, const real *X,
          const int64_t *indptr, const int32_t *indices, const real *values,
          int64_t[::1] order, int64_t batch, double eta, double lmbda, double n_total,
          int cost):
    """Check shapes, gather the layer pointers, allocate the work vectors, run (inputs:
    the dense X with ``n_in`` columns, else the CSR rows and ``n_in`` -1)."""
    cdef int L = len(weights), l
    cdef int64_t n = order.shape[0], i, total = 0, chunk, start
    cdef real[:, ::1] wl
    cdef real[::1] bl
    if L < 1 or len(biases) != L:
        raise ValueError(f"need one bias vector per weight matrix, got {len(biases)} "
                         f"and {L}")
    if cost != C_QUADRATIC and cost != C_CROSS_ENTROPY:
        raise ValueError(f"cost must be QUADRATIC (0) or CROSS_ENTROPY (1), got {cost}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if n_total <= 0:
        raise ValueError(f"n_total must be positive, got {n_total}")
    cdef int64_t *sizes = <int64_t *>malloc((L + 1) * sizeof(int64_t))
    cdef real **ptrs = <real **>calloc(6 * L + 1, sizeof(real *))
    cdef real *work = NULL
    if sizes == NULL or ptrs == NULL:
        free(sizes)
        free(ptrs)
        raise MemoryError()
    cdef real **w = ptrs
    cdef real **b = ptrs + L
    cdef real **nabla_w = ptrs + 2 * L
    cdef real **nabla_b = ptrs + 3 * L
    cdef real **delta = ptrs + 4 * L
    cdef real **a = ptrs + 5 * L  # L + 1 entries
    try:
        for l in range(L):
            wl = weights[l]
            bl = biases[l]
            if l > 0 and wl.shape[1] != sizes[l]:
                raise ValueError(f"weights[{l}] has {wl.shape[1]} columns, expected {sizes[l]}")
            if bl.shape[0] != wl.shape[0]:
                raise ValueError(f"biases[{l}] has {bl.shape[0]} entries, expected "
                                 f"{wl.shape[0]}")
            sizes[l], sizes[l + 1] = wl.shape[1], wl.shape[0]
            w[l], b[l] = &wl[0, 0], &bl[0]
            total += sizes[l + 1] * sizes[l] + 3 * sizes[l + 1]
        total += sizes[0]  # a[0], for CSR rows
        if Y.shape[1] != sizes[L]:
            raise ValueError(f"Y has {Y.shape[1]} columns, expected {sizes[L]}")
        if n_in >= 0 and n_in != sizes[0]:
            raise ValueError(f"X has {n_in} columns, expected {sizes[0]}")
        if indptr != NULL:  # CSR rows: increasing offsets, column indices in range
            for i in range(Y.shape[0]):
                if indptr[i] > indptr[i + 1] or indptr[0] != 0:
                    raise ValueError(f"indptr is not increasing from 0 at row {i}")
            for i in range(indptr[Y.shape[0]]):
                if indices[i] < 0 or indices[i] >= sizes[0]:
                    raise ValueError(f"indices[{i}] = {indices[i]} is not an input unit")
        for i in range(n):
            if order[i] < 0 or order[i] >= Y.shape[0]:
                raise ValueError(f"order[{i}] = {order[i]} is not a sample index")
        work = <real *>calloc(total, sizeof(real))
        if work == NULL:
            raise MemoryError()
        a[0] = work
        total = sizes[0]
        for l in range(L):  # nabla_w, nabla_b, delta and a[l + 1] for each layer
            nabla_w[l] = work + total
            total += sizes[l + 1] * sizes[l]
            nabla_b[l] = work + total
            delta[l] = work + total + sizes[l + 1]
            a[l + 1] = work + total + 2 * sizes[l + 1]
            total += 3 * sizes[l + 1]
        # a chunk of mini-batches at a time, Ctrl-C checked between chunks (a
        # KeyboardInterrupt then leaves the parameters after the last mini-batch)
        chunk = max(1, POLL_EXAMPLES // batch) * batch
        for start in range(0, n, chunk):
            with nogil:
                sgd_steps(L, sizes, w, b, a, delta, nabla_b, nabla_w, X, indptr, indices,
                          values, &Y[0, 0] if Y.shape[0] else NULL, &order[start],
                          min(chunk, n - start), batch, eta, lmbda, n_total, cost)
            _poll_signals()
    finally:
        free(work)
        free(ptrs)
        free(sizes)
