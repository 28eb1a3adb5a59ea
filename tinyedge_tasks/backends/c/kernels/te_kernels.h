/* tinyedge C backend: int8 kernels with TFLite's integer arithmetic (bit-exact with TFLM's reference kernels).
   Layout NHWC, batch 1; every parameter is precomputed by the generator (tinyedge_tasks/lowering). C99.
   Every kernel but SOFTMAX and PAD is inline (te_conv2d.h, ...): model.c gives each layer its
   parameters as a static const block, so the compiler specialises the kernel to that layer's constants. */
#ifndef TE_KERNELS_H
#define TE_KERNELS_H

#include <stdint.h>

typedef struct {
    int in_h, in_w, in_c, out_h, out_w, out_c, k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    int depth_multiplier;                         /* depthwise only */
    int depth;                                    /* conv: k_h * k_w * in_c rounded up to a multiple of 4 */
    int32_t input_offset, output_offset, act_min, act_max;
    int per_channel;                              /* 0: multipliers[0], shifts[0] for every channel */
    int fast;                                     /* te_output's short path is exact (shifts then hold e - 1) */
    int reverse;                                  /* conv: pixels last to first (its output over its input) */
    int pool_h, pool_w, pool_out_h, pool_out_w;   /* conv: a max pool taken in (window = stride), 0: none */
    int32_t pool_min, pool_max;                   /* its activation range */
    const int8_t *weights;                        /* conv: [out_c][depth] (zero padded from [k_h][k_w][in_c]);
                                                     depthwise: [k_h][k_w][out_c] */
    const int32_t *bias;                          /* bias + input_offset * sum of the channel's weights */
    const int32_t *multipliers, *shifts;
    const int32_t *channels;                      /* conv by te_conv_row3 (one input channel, 3 wide), else NULL:
                                                     per output channel k_h pairs of words ((w0, w2) as int16
                                                     halves, w1), its bias, multiplier and shift */
} te_conv_params;

typedef struct {
    int batches, in_depth, out_depth;
    int32_t output_offset, act_min, act_max;
    int per_channel, fast;
    const int8_t *weights;                        /* [out_depth][in_depth] */
    const int32_t *bias;                          /* bias + input_offset * sum of the row's weights */
    const int32_t *multipliers, *shifts;
} te_fully_connected_params;

typedef struct {
    int in_h, in_w, channels, out_h, out_w, k_h, k_w, stride_h, stride_w, pad_h, pad_w;
    int32_t act_min, act_max;
} te_pool_params;

typedef struct {
    int d0, d1, d2, d3, r0, r1, r2, r3;           /* input dimensions, 1 where reduced */
    int count;
    int32_t input_zp, output_zp, multiplier, shift;
} te_mean_params;

typedef struct {
    int size;
    int32_t input1_offset, input2_offset, output_offset;
    int32_t input1_multiplier, input1_shift, input2_multiplier, input2_shift, output_multiplier, output_shift;
    int left_shift;
    int32_t act_min, act_max;
} te_add_params;

typedef struct {
    int outer, depth;
    int32_t multiplier, left_shift, diff_min;
} te_softmax_params;

typedef struct {
    int d0, d1, d2, d3, before0, before1, before2, before3, after0, after1, after2, after3;
    int8_t value;
} te_pad_params;

void te_softmax(const te_softmax_params *p, const int8_t *input, int8_t *output);
void te_pad(const te_pad_params *p, const int8_t *input, int8_t *output);

#endif
