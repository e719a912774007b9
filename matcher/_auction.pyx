# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython core of the double auction: an LSD radix sort of both sides of the book and the
linear match walk. Everything here is int64 arithmetic on typed memoryviews, without the GIL.

Order of the book (the tie rule): bids by price descending, offers by price ascending, and
among equal prices the lower input index first. Both sorts are stable radix sorts on the
price alone, so the index order of the input is the tie-breaker.
"""
import numpy as np
cimport numpy as cnp
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memset

cnp.import_array()

cdef extern from *:
    # 128-bit accumulator for welfare (price * Wh can pass 2**63 at 1e15 Wh orders).
    ctypedef long long int128 "__int128"

DEF RADIX_BITS = 11
DEF RADIX_SIZE = 2048          # 1 << RADIX_BITS: 16 KiB of counters stays in L1
DEF RADIX_MASK = 2047
cdef int64_t INT64_MAX = 0x7FFFFFFFFFFFFFFF


cdef int _bit_length(uint64_t v) noexcept nogil:
    cdef int n = 0
    while v:
        n += 1
        v >>= 1
    return n


cdef void _radix_packed(uint64_t[::1] a, uint64_t[::1] tmp, int lo_bit, int hi_bit) noexcept nogil:
    """Stable LSD sort of packed (key << lo_bit | index) words on bits [lo_bit, hi_bit)."""
    cdef Py_ssize_t n = a.shape[0], i
    cdef size_t counts[RADIX_SIZE]
    cdef size_t total, c
    cdef int shift = lo_bit
    cdef uint64_t d
    cdef uint64_t *src = &a[0]
    cdef uint64_t *dst = &tmp[0]
    cdef uint64_t *swap
    cdef bint in_tmp = False
    while shift < hi_bit:
        memset(counts, 0, sizeof(counts))
        for i in range(n):
            counts[(src[i] >> shift) & RADIX_MASK] += 1
        # A digit that is the same for every word cannot reorder anything: skip the pass.
        if counts[(src[0] >> shift) & RADIX_MASK] != <size_t>n:
            total = 0
            for d in range(RADIX_SIZE):
                c = counts[d]
                counts[d] = total
                total += c
            for i in range(n):
                d = (src[i] >> shift) & RADIX_MASK
                dst[counts[d]] = src[i]
                counts[d] += 1
            swap = src
            src = dst
            dst = swap
            in_tmp = not in_tmp
        shift += RADIX_BITS
    if in_tmp:
        for i in range(n):
            dst[i] = src[i]


cdef void _radix_pairs(uint64_t[::1] key, int64_t[::1] idx, uint64_t[::1] tkey, int64_t[::1] tidx,
                       int nbits) noexcept nogil:
    """Stable LSD sort of idx by key, for key ranges too wide to pack beside the index."""
    cdef Py_ssize_t n = key.shape[0], i
    cdef size_t counts[RADIX_SIZE]
    cdef size_t total, c, pos
    cdef int shift = 0
    cdef uint64_t d
    cdef uint64_t *ks = &key[0]
    cdef uint64_t *kd = &tkey[0]
    cdef int64_t *is_ = &idx[0]
    cdef int64_t *id_ = &tidx[0]
    cdef uint64_t *kswap
    cdef int64_t *iswap
    cdef bint in_tmp = False
    while shift < nbits:
        memset(counts, 0, sizeof(counts))
        for i in range(n):
            counts[(ks[i] >> shift) & RADIX_MASK] += 1
        if counts[(ks[0] >> shift) & RADIX_MASK] != <size_t>n:
            total = 0
            for d in range(RADIX_SIZE):
                c = counts[d]
                counts[d] = total
                total += c
            for i in range(n):
                d = (ks[i] >> shift) & RADIX_MASK
                pos = counts[d]
                kd[pos] = ks[i]
                id_[pos] = is_[i]
                counts[d] = pos + 1
            kswap = ks; ks = kd; kd = kswap
            iswap = is_; is_ = id_; id_ = iswap
            in_tmp = not in_tmp
        shift += RADIX_BITS
    if in_tmp:
        for i in range(n):
            id_[i] = is_[i]


def merit_order(const int64_t[::1] price, bint descending):
    """Indices of the orders in merit order: price (descending for bids), then index."""
    cdef Py_ssize_t n = price.shape[0], i
    cdef cnp.ndarray[int64_t, ndim=1] order = np.empty(n, dtype=np.int64)
    if n == 0:
        return order
    cdef int64_t[::1] out = order
    cdef int64_t lo = price[0], hi = price[0], p
    for i in range(n):
        p = price[i]
        if p < lo:
            lo = p
        if p > hi:
            hi = p
    cdef uint64_t span = <uint64_t>hi - <uint64_t>lo
    cdef int key_bits = _bit_length(span)
    cdef int index_bits = _bit_length(<uint64_t>(n - 1))
    cdef uint64_t[::1] packed, tmp, keys, tkeys
    cdef int64_t[::1] tidx
    if key_bits == 0:
        for i in range(n):
            out[i] = i
    elif key_bits + index_bits <= 64:
        packed = np.empty(n, dtype=np.uint64)
        tmp = np.empty(n, dtype=np.uint64)
        with nogil:
            for i in range(n):
                if descending:
                    packed[i] = ((<uint64_t>hi - <uint64_t>price[i]) << index_bits) | <uint64_t>i
                else:
                    packed[i] = ((<uint64_t>price[i] - <uint64_t>lo) << index_bits) | <uint64_t>i
            _radix_packed(packed, tmp, index_bits, index_bits + key_bits)
            for i in range(n):
                out[i] = <int64_t>(packed[i] & ((<uint64_t>1 << index_bits) - 1)) if index_bits else 0
    else:
        keys = np.empty(n, dtype=np.uint64)
        tkeys = np.empty(n, dtype=np.uint64)
        tidx = np.empty(n, dtype=np.int64)
        with nogil:
            for i in range(n):
                out[i] = i
                if descending:
                    keys[i] = <uint64_t>hi - <uint64_t>price[i]
                else:
                    keys[i] = <uint64_t>price[i] - <uint64_t>lo
            _radix_pairs(keys, out, tkeys, tidx, key_bits)
    return order


cdef int64_t _checked_total(const int64_t[::1] qty) except -1:
    cdef Py_ssize_t i
    cdef int64_t s = 0
    for i in range(qty.shape[0]):
        if s > INT64_MAX - qty[i]:
            raise OverflowError("total quantity of one side exceeds 2**63-1 Wh")
        s += qty[i]
    return s


def walk(const int64_t[::1] bid_price, const int64_t[::1] bid_qty,
         const int64_t[::1] offer_price, const int64_t[::1] offer_qty):
    """Match the book in merit order. Returns (bid_index, offer_index, quantity_wh, state),
    where state = (volume_wh, welfare, last matched bid, last matched offer,
    best unfilled bid or -1, best unfilled offer or -1), all as input indices.
    Inputs must already be validated (positive quantities, non-negative prices)."""
    cdef Py_ssize_t nb = bid_price.shape[0], no = offer_price.shape[0]
    _checked_total(bid_qty)
    _checked_total(offer_qty)
    cdef int64_t[::1] border = merit_order(bid_price, True)
    cdef int64_t[::1] oorder = merit_order(offer_price, False)
    # A walk makes at most one match per step and every step exhausts a bid or an offer.
    cdef Py_ssize_t cap = nb + no
    bid_index_a = np.empty(cap, dtype=np.int64)
    offer_index_a = np.empty(cap, dtype=np.int64)
    quantity_a = np.empty(cap, dtype=np.int64)
    cdef int64_t[::1] mb = bid_index_a, mo = offer_index_a, mq = quantity_a
    cdef Py_ssize_t i = 0, j = 0, m = 0
    cdef int64_t b = -1, o = -1, rb = 0, ro = 0, q, volume = 0
    cdef int64_t last_b = -1, last_o = -1
    cdef int128 welfare = 0
    with nogil:
        if nb > 0:
            rb = bid_qty[border[0]]
        if no > 0:
            ro = offer_qty[oorder[0]]
        while i < nb and j < no:
            b = border[i]
            o = oorder[j]
            if bid_price[b] < offer_price[o]:
                break
            q = rb if rb < ro else ro
            mb[m] = b
            mo[m] = o
            mq[m] = q
            m += 1
            volume += q
            welfare += <int128>(bid_price[b] - offer_price[o]) * q
            last_b = b
            last_o = o
            rb -= q
            ro -= q
            if rb == 0:
                i += 1
                if i < nb:
                    rb = bid_qty[border[i]]
            if ro == 0:
                j += 1
                if j < no:
                    ro = offer_qty[oorder[j]]
    # The walk stops at the first bid and offer with quantity left: they are the best unfilled.
    cdef int64_t best_b = border[i] if i < nb else -1
    cdef int64_t best_o = oorder[j] if j < no else -1
    cdef uint64_t w_lo = <uint64_t>(welfare & <int128>0xFFFFFFFFFFFFFFFF)
    cdef int64_t w_hi = <int64_t>(welfare >> 64)
    py_welfare = (int(w_hi) << 64) + int(w_lo)
    state = (int(volume), py_welfare, int(last_b), int(last_o), int(best_b), int(best_o))
    return bid_index_a[:m], offer_index_a[:m], quantity_a[:m], state
