# tinyedge int8 kernels as @micropython.viper fast paths, the same arithmetic as te_kernels.py.
# Rules that make a PC's results the ESP32's (viper ints are 32-bit there, 64-bit on a PC):
#   every intermediate stays within +-2^31 (the 64-bit requantization product is built from 16-bit pieces);
#   int8 is read through ptr8 and sign-fixed ((v ^ 0x80) - 0x80), never signed data through ptr32;
#   no constant above 0x3FFFFFFF (it would be a heap object on the ESP32, a viper type error for mpy-cross).
# SOFTMAX, MEAN and PAD run once per inference on a few values: they come from the plain module.
import micropython
from te_kernels import mean, pad, softmax  # noqa: F401  (re-exported: the model calls every kernel from here)


@micropython.viper
def _srdhm(a: int, b: int) -> int:
    # round(a * b / 2^31) exactly, from 16-bit halves of |a| and |b|; branch-free and without forming |INT32_MIN|:
    # s = x >> 31 is 0 or -1, x ^ s is |x| + s, and the low half takes the -s back (its carry goes to the high half)
    sa = a >> 31
    sb = b >> 31
    na = a ^ sa
    nb = b ^ sb
    ta = (na & 0xFFFF) - sa
    tb = (nb & 0xFFFF) - sb
    ah = (na >> 16) + (ta >> 16)
    bh = (nb >> 16) + (tb >> 16)
    al = ta & 0xFFFF
    bl = tb & 0xFFFF
    neg = (sa ^ sb) & 1
    if ah == 0x8000 and bh == 0x8000:   # INT32_MIN * INT32_MIN saturates
        big = 0x3FFFFFFF   # a variable: the folded constant 2^31 - 1 would be an object on the ESP32
        return big + big + 1
    c_hi = 16384
    c_lo = 0
    if neg:   # the nudge: 2^30 for a positive product, 2^30 - 1 on the magnitude of a negative one
        c_hi = 16383
        c_lo = 0xFFFF
    x = al * (bl >> 1)
    l0 = ((x & 0x7FFF) << 1) + al * (bl & 1) + c_lo
    p = ah * bl
    q = al * bh
    m1 = (x >> 15) + (l0 >> 16) + c_hi + (p & 0xFFFF) + (q & 0xFFFF)
    h = ah * bh + (p >> 16) + (q >> 16) + (m1 >> 16)
    mag = (h << 1) + ((m1 & 0xFFFF) >> 15)
    if neg:
        return -mag
    return mag


@micropython.viper
def _rdbp(x: int, exponent: int) -> int:
    if exponent <= 0:
        return x
    mask = ((1 << (exponent - 1)) - 1) * 2 + 1
    threshold = mask >> 1
    if x < 0:
        threshold += 1
    if (x & mask) > threshold:
        return (x >> exponent) + 1
    return x >> exponent


@micropython.viper
def _shl32(x: int, left: int) -> int:
    # (int32)((uint32)x << left), the same on 32- and 64-bit viper
    keep = 31 - left
    r = (x & ((1 << keep) - 1)) << left
    if (x >> keep) & 1:
        low = -0x3FFFFFFF - 1   # a variable, not the folded constant -2^31
        r += low + low
    return r


@micropython.viper
def _mbqm(x: int, multiplier: int, shift: int) -> int:
    if shift > 0:
        return int(_srdhm(int(_shl32(x, shift)), multiplier))
    return int(_rdbp(int(_srdhm(x, multiplier)), 0 - shift))


@micropython.viper
def _window(start: int, dilation: int, size: int, taps: int) -> int:
    # the taps [lo, hi) of a kernel row or column starting at `start` that land inside 0..size-1, as lo << 16 | hi
    # (viper returns one int; padding is folded in by never visiting the taps outside)
    lo = 0
    if start < 0:
        lo = (dilation - 1 - start) // dilation
    hi = 0
    if size - start > 0:
        hi = (size - start + dilation - 1) // dilation
    if hi > taps:
        hi = taps
    if lo > hi:
        lo = hi
    return (lo << 16) | hi


@micropython.viper
def _clamp(v: int, lo: int, hi: int) -> int:
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


@micropython.viper
def _requant(acc: int, p, channel: int, base: int) -> int:
    # acc requantized to the output, offset and clamped; p[base:] holds out_off, lo, hi, per_channel, bias,
    # mults, shifts (the same order in conv and fully_connected)
    q = channel * int(p[base + 3])
    v = int(_mbqm(acc, int(p[base + 5][q]), int(p[base + 6][q]))) + int(p[base])
    lo = int(p[base + 1])
    if v < lo:
        return lo
    hi = int(p[base + 2])
    if v > hi:
        return hi
    return v


@micropython.viper
def _outside(weights, p, oc: int, window: int) -> int:
    # the weights of output channel oc on the taps outside the window (depthwise << 28 | ky0 << 21 | ky1 << 14 |
    # kx0 << 7 | kx1): what the padding, which is the input's zero point, multiplies (border pixels only)
    in_c = int(p[2])
    out_c = int(p[5])
    k_h = int(p[6])
    k_w = int(p[7])
    ky0 = (window >> 21) & 0x7F
    ky1 = (window >> 14) & 0x7F
    kx0 = (window >> 7) & 0x7F
    kx1 = window & 0x7F
    w = ptr8(weights)
    total = 0
    for ky in range(k_h):
        for kx in range(k_w):
            if ky < ky0 or ky >= ky1 or kx < kx0 or kx >= kx1:
                if (window >> 28) & 1:
                    total += (w[(ky * k_w + kx) * out_c + oc] ^ 0x80) - 0x80
                else:
                    wi = (oc * k_h * k_w + ky * k_w + kx) * in_c
                    for i in range(in_c):
                        total += (w[wi + i] ^ 0x80) - 0x80
    return total


@micropython.viper
def _conv(arena, inp: int, out: int, weights, p, depthwise: int):
    in_w = int(p[1])
    in_c = int(p[2])
    out_w = int(p[4])
    out_c = int(p[5])
    k_h = int(p[6])
    k_w = int(p[7])
    s_h = int(p[8])
    s_w = int(p[9])
    d_h = int(p[10])
    d_w = int(p[11])
    pad_h = int(p[12])
    pad_w = int(p[13])
    out_off = int(p[16])
    lo = int(p[17])
    hi = int(p[18])
    bias = p[20]
    mults = p[21]
    shifts = p[22]
    a = ptr8(arena)
    w = ptr8(weights)
    row = k_w * in_c
    for oy in range(int(p[3])):
        y0 = oy * s_h - pad_h
        rows = int(_window(y0, d_h, int(p[0]), k_h))
        ky0 = rows >> 16
        ky1 = rows & 0xFFFF
        for ox in range(out_w):
            x0 = ox * s_w - pad_w
            cols = int(_window(x0, d_w, in_w, k_w))
            kx0 = cols >> 16
            kx1 = cols & 0xFFFF
            clipped = ky0 | kx0 | (k_h - ky1) | (k_w - kx1)   # not 0 when the padding clips the window
            o = out + (oy * out_w + ox) * out_c
            for oc in range(out_c):
                acc = int(bias[oc])
                if depthwise:
                    ic = oc // int(p[14])
                    for ky in range(ky0, ky1):
                        xr = inp + (y0 + d_h * ky) * in_w * in_c + ic
                        wr = ky * k_w * out_c + oc
                        for kx in range(kx0, kx1):
                            acc += ((w[wr + kx * out_c] ^ 0x80) - 0x80) * ((a[xr + (x0 + d_w * kx) * in_c] ^ 0x80) - 0x80)
                else:
                    f = oc * k_h * row
                    for ky in range(ky0, ky1):
                        y = y0 + d_h * ky
                        for kx in range(kx0, kx1):
                            xi = inp + (y * in_w + x0 + d_w * kx) * in_c
                            wi = f + ky * row + kx * in_c
                            for i in range(in_c):
                                acc += ((w[wi + i] ^ 0x80) - 0x80) * ((a[xi + i] ^ 0x80) - 0x80)
                if clipped:
                    window = (depthwise << 28) | (ky0 << 21) | (ky1 << 14) | (kx0 << 7) | kx1
                    acc -= int(_outside(weights, p, oc, window)) * int(p[15])
                q = oc * int(p[19])
                v = int(_mbqm(acc, int(mults[q]), int(shifts[q]))) + out_off
                v = lo if v < lo else v
                a[o + oc] = (hi if v > hi else v) & 0xFF


def conv2d(arena, inp, out, weights, p):
    _conv(arena, inp, out, weights, p, 0)


def depthwise_conv2d(arena, inp, out, weights, p):
    _conv(arena, inp, out, weights, p, 1)


@micropython.viper
def fully_connected(arena, inp: int, out: int, weights, p):
    a = ptr8(arena)
    w = ptr8(weights)
    batches = int(p[0])
    depth = int(p[1])
    units = int(p[2])
    bias = p[7]
    for b in range(batches):
        xb = inp + b * depth
        for u in range(units):
            wu = u * depth
            acc = 0
            for d in range(depth):
                acc += ((w[wu + d] ^ 0x80) - 0x80) * ((a[xb + d] ^ 0x80) - 0x80)
            acc += int(bias[u])
            a[out + b * units + u] = int(_requant(acc, p, u, 3)) & 0xFF


@micropython.viper
def _pool(arena, inp: int, out: int, p, average: int):
    in_h = int(p[0])
    in_w = int(p[1])
    ch = int(p[2])
    out_h = int(p[3])
    out_w = int(p[4])
    k_h = int(p[5])
    k_w = int(p[6])
    s_h = int(p[7])
    s_w = int(p[8])
    pad_h = int(p[9])
    pad_w = int(p[10])
    lo = int(p[11])
    hi = int(p[12])
    a = ptr8(arena)
    for oy in range(out_h):
        y0 = oy * s_h - pad_h
        rows = int(_window(y0, 1, in_h, k_h))
        ky0 = rows >> 16
        ky1 = rows & 0xFFFF
        for ox in range(out_w):
            x0 = ox * s_w - pad_w
            cols = int(_window(x0, 1, in_w, k_w))
            kx0 = cols >> 16
            kx1 = cols & 0xFFFF
            for c in range(ch):
                acc = -128
                if average:
                    acc = 0
                count = 0
                for ky in range(ky0, ky1):
                    for kx in range(kx0, kx1):
                        v = (a[inp + ((y0 + ky) * in_w + x0 + kx) * ch + c] ^ 0x80) - 0x80
                        if average:
                            acc += v
                        elif v > acc:
                            acc = v
                        count += 1
                if average and count > 0:
                    half = count >> 1
                    if acc > 0:
                        acc = (acc + half) // count
                    else:
                        acc = 0 - (half - acc) // count
                a[out + (oy * out_w + ox) * ch + c] = int(_clamp(acc, lo, hi)) & 0xFF


def max_pool(arena, inp, out, weights, p):
    _pool(arena, inp, out, p, 0)


def average_pool(arena, inp, out, weights, p):
    _pool(arena, inp, out, p, 1)


@micropython.viper
def _add(arena, in1: int, in2: int, out: int, p):
    a = ptr8(arena)
    size = int(p[0])
    off1 = int(p[1])
    off2 = int(p[2])
    out_off = int(p[3])
    m1 = int(p[4])
    s1 = int(p[5])
    m2 = int(p[6])
    s2 = int(p[7])
    mo = int(p[8])
    so = int(p[9])
    left = int(p[10])
    lo = int(p[11])
    hi = int(p[12])
    for i in range(size):
        x1 = int(_rdbp(int(_srdhm((off1 + (a[in1 + i] ^ 0x80) - 0x80) << left, m1)), 0 - s1))
        x2 = int(_rdbp(int(_srdhm((off2 + (a[in2 + i] ^ 0x80) - 0x80) << left, m2)), 0 - s2))
        v = int(_rdbp(int(_srdhm(x1 + x2, mo)), 0 - so)) + out_off
        a[out + i] = int(_clamp(v, lo, hi)) & 0xFF


def add(arena, inputs, out, weights, p):
    _add(arena, inputs[0], inputs[1], out, p)
