# tinyedge int8 kernels in plain MicroPython: any port, any integer size (long ints carry the 64-bit products).
# Each mirrors the C backend's kernel (TFLM reference arithmetic, double rounding) line for line, so the outputs
# are TFLM's bit for bit. The arena is a bytearray; int8 values are stored as their two's-complement bytes.
# Every kernel takes (arena, input offset(s), output offset, weights bytes or None, parameter tuple).
from array import array

_MIN = -2147483648
_MAX = 2147483647


def _wrap32(v):
    return ((v - _MIN) & 0xFFFFFFFF) + _MIN


def _srdhm(a, b):
    # round(a * b / 2^31), the one overflow case saturated
    if a == _MIN and b == _MIN:
        return _MAX
    ab = a * b
    if ab >= 0:
        return (ab + 1073741824) >> 31
    return -((1073741823 - ab) >> 31)


def _rdbp(x, exponent):
    # x / 2^exponent rounded to nearest, halves away from zero
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> exponent) + (1 if (x & mask) > threshold else 0)


def _mbqm(x, multiplier, shift):
    if shift > 0:
        return _rdbp(_srdhm(_wrap32(x << shift), multiplier), 0)
    return _rdbp(_srdhm(x, multiplier), -shift)


def _window(origin, dilation, taps, size):
    # the taps [first, last) of a window at origin that fall inside 0 .. size - 1
    a = (-origin + dilation - 1) // dilation if origin < 0 else 0
    b = 0 if size - origin <= 0 else (size - origin + dilation - 1) // dilation
    b = min(b, taps)
    return min(a, b), b


def _signed(arena, start, size):
    return array('b', arena[start:start + size])


def _pixels(p):
    # every output pixel of a convolution: (its offset in the output, y0, x0, the taps inside [ky0, ky1) and
    # [kx0, kx1), whether the window is clipped by the padding)
    in_h, in_w, _, out_h, out_w, out_c, k_h, k_w, s_h, s_w, d_h, d_w, pad_h, pad_w = p[:14]
    for oy in range(out_h):
        y0 = oy * s_h - pad_h
        ky0, ky1 = _window(y0, d_h, k_h, in_h)
        for ox in range(out_w):
            x0 = ox * s_w - pad_w
            kx0, kx1 = _window(x0, d_w, k_w, in_w)
            clipped = ky0 > 0 or ky1 < k_h or kx0 > 0 or kx1 < k_w
            yield (oy * out_w + ox) * out_c, y0, x0, ky0, ky1, kx0, kx1, clipped


def conv2d(arena, inp, out, weights, p):
    in_h, in_w, in_c = p[0:3]
    out_c, k_h, k_w = p[5:8]
    d_h, d_w = p[10:12]
    in_off, out_off, lo, hi, per_channel, bias, mults, shifts = p[15:23]
    x = _signed(arena, inp, in_h * in_w * in_c)
    w = array('b', weights)
    row = k_w * in_c
    taps = k_h * row
    for o, y0, x0, ky0, ky1, kx0, kx1, clipped in _pixels(p):
        for oc in range(out_c):
            f = oc * taps
            acc = bias[oc]
            for ky in range(ky0, ky1):
                y = y0 + d_h * ky
                for kx in range(kx0, kx1):
                    xi = (y * in_w + x0 + d_w * kx) * in_c
                    wi = f + ky * row + kx * in_c
                    for i in range(in_c):
                        acc += w[wi + i] * x[xi + i]
            if clipped:
                outside = 0
                for ky in range(k_h):
                    for kx in range(k_w):
                        if not (ky0 <= ky < ky1 and kx0 <= kx < kx1):
                            wi = f + ky * row + kx * in_c
                            for i in range(in_c):
                                outside += w[wi + i]
                acc -= outside * in_off
            q = oc if per_channel else 0
            arena[out + o + oc] = min(max(_mbqm(acc, mults[q], shifts[q]) + out_off, lo), hi) & 0xFF


def depthwise_conv2d(arena, inp, out, weights, p):
    in_h, in_w, in_c = p[0:3]
    out_c, k_h, k_w = p[5:8]
    d_h, d_w = p[10:12]
    mult, in_off, out_off, lo, hi, per_channel, bias, mults, shifts = p[14:23]
    x = _signed(arena, inp, in_h * in_w * in_c)
    w = array('b', weights)
    for o, y0, x0, ky0, ky1, kx0, kx1, clipped in _pixels(p):
        for oc in range(out_c):
            ic = oc // mult
            acc = bias[oc]
            for ky in range(ky0, ky1):
                xr = (y0 + d_h * ky) * in_w * in_c + ic
                wr = ky * k_w * out_c + oc
                for kx in range(kx0, kx1):
                    acc += w[wr + kx * out_c] * x[xr + (x0 + d_w * kx) * in_c]
            if clipped:
                outside = 0
                for ky in range(k_h):
                    for kx in range(k_w):
                        if not (ky0 <= ky < ky1 and kx0 <= kx < kx1):
                            outside += w[(ky * k_w + kx) * out_c + oc]
                acc -= outside * in_off
            q = oc if per_channel else 0
            arena[out + o + oc] = min(max(_mbqm(acc, mults[q], shifts[q]) + out_off, lo), hi) & 0xFF


def fully_connected(arena, inp, out, weights, p):
    batches, depth, units, out_off, lo, hi, per_channel, bias, mults, shifts = p
    x = _signed(arena, inp, batches * depth)
    w = array('b', weights)
    for b in range(batches):
        xb = b * depth
        for u in range(units):
            wu = u * depth
            acc = 0
            for d in range(depth):
                acc += w[wu + d] * x[xb + d]
            q = u if per_channel else 0
            arena[out + b * units + u] = min(max(_mbqm(acc + bias[u], mults[q], shifts[q]) + out_off, lo), hi) & 0xFF


def _rounded_mean(values):
    # the mean rounded half away from zero, as TFLM's average pool (0 for an empty window)
    count, total = len(values), sum(values)
    if not count:
        return 0
    half = count // 2
    return (total + half) // count if total > 0 else -((half - total) // count)


def _pool(arena, inp, out, p, average):
    in_h, in_w, ch, out_h, out_w, k_h, k_w, s_h, s_w, pad_h, pad_w, lo, hi = p
    x = _signed(arena, inp, in_h * in_w * ch)
    for oy in range(out_h):
        y0 = oy * s_h - pad_h
        ky0 = -y0 if y0 < 0 else 0
        ky1 = min(in_h - y0, k_h)
        for ox in range(out_w):
            x0 = ox * s_w - pad_w
            kx0 = -x0 if x0 < 0 else 0
            kx1 = min(in_w - x0, k_w)
            for c in range(ch):
                window = [x[((y0 + ky) * in_w + x0 + kx) * ch + c] for ky in range(ky0, ky1) for kx in range(kx0, kx1)]
                acc = _rounded_mean(window) if average else max(window + [-128])
                arena[out + (oy * out_w + ox) * ch + c] = min(max(acc, lo), hi) & 0xFF


def max_pool(arena, inp, out, weights, p):
    _pool(arena, inp, out, p, False)


def average_pool(arena, inp, out, weights, p):
    _pool(arena, inp, out, p, True)


def mean(arena, inp, out, weights, p):
    d0, d1, d2, d3, r0, r1, r2, r3, count, in_zp, out_zp, multiplier, shift = p
    x = _signed(arena, inp, d0 * d1 * d2 * d3)
    n = (1 if r0 else d0, 1 if r1 else d1, 1 if r2 else d2, 1 if r3 else d3)
    m = (d0 if r0 else 1, d1 if r1 else 1, d2 if r2 else 1, d3 if r3 else 1)
    o = out
    for i0 in range(n[0]):
        for i1 in range(n[1]):
            for i2 in range(n[2]):
                for i3 in range(n[3]):
                    total = 0
                    for j0 in range(m[0]):
                        for j1 in range(m[1]):
                            for j2 in range(m[2]):
                                for j3 in range(m[3]):
                                    total += x[(((i0 + j0) * d1 + i1 + j1) * d2 + i2 + j2) * d3 + i3 + j3]
                    v = _mbqm(total - in_zp * count, multiplier, shift) + out_zp
                    arena[o] = min(max(v, -128), 127) & 0xFF
                    o += 1


def add(arena, inputs, out, weights, p):
    size, off1, off2, out_off, m1, s1, m2, s2, mo, so, left, lo, hi = p
    a = _signed(arena, inputs[0], size)
    b = _signed(arena, inputs[1], size)
    for i in range(size):
        x1 = _rdbp(_srdhm((off1 + a[i]) << left, m1), -s1)
        x2 = _rdbp(_srdhm((off2 + b[i]) << left, m2), -s2)
        v = _rdbp(_srdhm(x1 + x2, mo), -so) + out_off
        arena[out + i] = min(max(v, lo), hi) & 0xFF


def _shl_saturating(x, exponent):
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return _MAX
    if x < -threshold:
        return _MIN
    return _wrap32(x << exponent)


def _exp_quarter(a):
    # exp(a) for a in [-1/4, 0), Q0.31: Taylor series around -1/8
    constant_term = 1895147668
    x = a + (1 << 28)
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    poly = _rdbp(_srdhm(_rdbp(x4, 2) + x3, 715827883) + x2, 1)
    return constant_term + _srdhm(constant_term, x + poly)


_FACTORS = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)


def _exp_on_negative_values(a):
    # exp(a) for a <= 0 in Q5.26, result in Q0.31 (gemmlowp)
    quarter = 1 << 24
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_quarter(_shl_saturating(a_mod, 5))
    remainder = a_mod - a
    for k in range(7):
        if remainder & (1 << (24 + k)):
            result = _srdhm(result, _FACTORS[k])
    return _MAX if a == 0 else result


def _one_over_one_plus_x(a):
    total = a + _MAX
    half = (total + 1) // 2 if total >= 0 else -((1 - total) // 2)
    x = 1515870810 + _srdhm(half, -1010580540)
    for _ in range(3):
        x = x + _shl_saturating(_srdhm(x, (1 << 29) - _srdhm(half, x)), 2)
    return _shl_saturating(x, 1)


def softmax(arena, inp, out, weights, p):
    outer, depth, multiplier, left_shift, diff_min = p
    x = _signed(arena, inp, outer * depth)
    for row in range(outer):
        base = row * depth
        top = max(x[base:base + depth])
        scaled = []
        total = 0
        for c in range(depth):
            diff = x[base + c] - top
            e = None
            if diff >= diff_min:
                e = _exp_on_negative_values(_srdhm(_wrap32(diff << left_shift), multiplier))
                total += _rdbp(e, 12)
            scaled.append(e)
        headroom = 32 - len(bin(total)) + 2 if total > 0 else 32
        shifted = _one_over_one_plus_x(_wrap32((total << headroom) - (1 << 31)))
        exponent = 12 - headroom + 31 - 8
        for c in range(depth):
            v = -128
            if scaled[c] is not None:
                v = _rdbp(_srdhm(shifted, scaled[c]), exponent) - 128
            arena[out + base + c] = min(max(v, -128), 127) & 0xFF


def pad(arena, inp, out, weights, p):
    d0, d1, d2, d3, b0, b1, b2, b3, a0, a1, a2, a3, value = p
    o0, o1, o2, o3 = b0 + d0 + a0, b1 + d1 + a1, b2 + d2 + a2, b3 + d3 + a3
    src = bytes(arena[inp:inp + d0 * d1 * d2 * d3])
    fill = value & 0xFF
    for i in range(o0 * o1 * o2 * o3):
        arena[out + i] = fill
    k = 0
    for i0 in range(d0):
        for i1 in range(d1):
            for i2 in range(d2):
                to = out + (((i0 + b0) * o1 + i1 + b1) * o2 + i2 + b2) * o3 + b3
                arena[to:to + d3] = src[k:k + d3]
                k += d3
