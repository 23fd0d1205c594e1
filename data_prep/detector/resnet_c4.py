"""ResNet in the layout of the Caffe/MSRA weights the bottom-up-attention
model was trained from, with detectron2's parameter names.

``paddle.vision.models.resnet101`` does not fit these weights: it puts the
stride in the 3x3 conv (the weights expect it in the first 1x1), uses
trainable batch norm with other parameter names, pads the stem max-pool, and
has no dilated res5. The blocks here are small enough to own.

Parameter names match detectron2's state dict, so converting weights is a
matter of transposing the linear layers (see ``weights.py``):
``stem.conv1.weight``, ``stem.conv1.norm.{weight,bias,running_mean,running_var}``,
``res2.0.conv1.weight``, ``res2.0.shortcut.norm.weight``, ...
"""
import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


class FrozenBatchNorm(nn.Layer):
    """Batch norm with fixed statistics and affine parameters (buffers, as in
    detectron2's ``FrozenBatchNorm2d``): ``(x - mean) / sqrt(var + eps) * weight + bias``."""

    def __init__(self, channels, eps=1e-5, init_scale=1.0):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", paddle.full([channels], init_scale, "float32"))
        self.register_buffer("bias", paddle.zeros([channels], "float32"))
        self.register_buffer("running_mean", paddle.zeros([channels], "float32"))
        # 1 - eps makes the layer an exact identity at init (detectron2 does the same)
        self.register_buffer("running_var", paddle.full([channels], 1.0 - eps, "float32"))

    def scale_shift(self):
        scale = self.weight * paddle.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale


class ConvNorm(nn.Layer):
    """A bias-free conv followed by frozen batch norm. ``fuse()`` folds the
    norm into the conv (one conv with bias instead of conv + two element-wise
    passes, which are slow on CPU); call it again after loading weights."""

    def __init__(self, cin, cout, kernel, stride=1, padding=0, dilation=1, eps=1e-5, init_scale=1.0):
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation
        fan_out = cout * kernel * kernel  # detectron2's c2_msra_fill: He init on fan-out
        self.weight = self.create_parameter(
            [cout, cin, kernel, kernel], default_initializer=nn.initializer.Normal(0.0, math.sqrt(2.0 / fan_out)))
        self.norm = FrozenBatchNorm(cout, eps, init_scale)
        self._fused = None

    def fuse(self):
        scale, shift = self.norm.scale_shift()
        self._fused = (self.weight * scale.reshape([-1, 1, 1, 1]), shift)

    def unfuse(self):
        self._fused = None

    def forward(self, x):
        if self._fused is not None:
            w, b = self._fused
            if w.shape[2] == 1 and w.shape[3] == 1 and self.padding == 0:
                return pointwise_conv(x, w, b, self.stride)
            return F.conv2d(x, w, b, self.stride, self.padding, self.dilation)
        scale, shift = self.norm.scale_shift()
        y = F.conv2d(x, self.weight, None, self.stride, self.padding, self.dilation)
        return y * scale.reshape([1, -1, 1, 1]) + shift.reshape([1, -1, 1, 1])


def pointwise_conv(x, weight, bias, stride=1):
    """A 1x1 convolution as one batched matmul ``W [Cout, Cin] @ x [N, Cin, H*W]``.

    Same products and sums as ``F.conv2d`` (bit-identical outputs here), but
    Paddle's CPU conv kernel runs a separate GEMM per image and adds the bias
    in another pass, while the batched matmul keeps MKL busy across the whole
    batch: res5 on RoI batches (N = 100 RoIs of 14x14) ran ~15-20 % faster.
    A stride is a subsampling of the input first (a 1x1 kernel without
    padding reads exactly the pixels at multiples of the stride)."""
    if stride != 1:
        x = x[:, :, ::stride, ::stride]
    n, c, h, w = x.shape
    y = paddle.matmul(weight.reshape([weight.shape[0], c]), x.reshape([n, c, h * w]))
    if bias is not None:
        y = y + bias.reshape([-1, 1])
    return y.reshape([n, -1, h, w])


class Bottleneck(nn.Layer):
    def __init__(self, cin, cout, width, stride=1, dilation=1, stride_in_1x1=True, eps=1e-5):
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.shortcut = ConvNorm(cin, cout, 1, stride, eps=eps) if cin != cout else None
        self.conv1 = ConvNorm(cin, width, 1, s1, eps=eps)
        self.conv2 = ConvNorm(width, width, 3, s3, padding=dilation, dilation=dilation, eps=eps)
        # A random network (tests, benchmarks) must not blow up over 30 blocks:
        # the last norm of each residual branch starts small. Loaded weights
        # replace it.
        self.conv3 = ConvNorm(width, cout, 1, eps=eps, init_scale=0.2)

    def forward(self, x):
        y = F.relu(self.conv1(x))
        y = F.relu(self.conv2(y))
        y = self.conv3(y)
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


def make_stage(num_blocks, cin, cout, width, first_stride, dilation=1, stride_in_1x1=True, eps=1e-5):
    blocks = [Bottleneck(cin if i == 0 else cout, cout, width, first_stride if i == 0 else 1, dilation,
                         stride_in_1x1, eps) for i in range(num_blocks)]
    return nn.Sequential(*blocks)


class Stem(nn.Layer):
    def __init__(self, channels, caffe_maxpool=True, eps=1e-5):
        super().__init__()
        self.conv1 = ConvNorm(3, channels, 7, 2, padding=3, eps=eps)
        self.caffe_maxpool = caffe_maxpool

    def forward(self, x):
        x = F.relu(self.conv1(x))
        if self.caffe_maxpool:  # Caffe's pooling: no padding, output size rounded up
            return F.max_pool2d(x, 3, 2, padding=0, ceil_mode=True)
        return F.max_pool2d(x, 3, 2, padding=1)


class ResNetC4(nn.Layer):
    """Stem + res2..res4: the stride-16 trunk shared by the RPN and the RoI head."""

    def __init__(self, cfg):
        super().__init__()
        self.stem = Stem(cfg.stem_channels, cfg.caffe_maxpool, cfg.bn_eps)
        cin, cout, width = cfg.stem_channels, cfg.res2_channels, cfg.bottleneck_channels
        for i, n in enumerate(cfg.trunk_blocks):
            setattr(self, f"res{i + 2}", make_stage(n, cin, cout, width, 1 if i == 0 else 2,
                                                    stride_in_1x1=cfg.stride_in_1x1, eps=cfg.bn_eps))
            cin, cout, width = cout, cout * 2, width * 2
        self.num_stages = len(cfg.trunk_blocks)

    def forward(self, x):
        x = self.stem(x)
        for i in range(self.num_stages):
            x = getattr(self, f"res{i + 2}")(x)
        return x


def make_res5(cfg):
    """res5 as the RoI head. With ``res5_dilation=2`` (bottom-up attention) the
    first block keeps stride 1 and every 3x3 is dilated, so a 14x14 RoI stays
    14x14; with 1 it is the standard stride-2 stage."""
    stride = 1 if cfg.res5_dilation == 2 else 2
    return make_stage(cfg.res5_blocks, cfg.trunk_channels, cfg.head_channels, cfg.bottleneck_channels * 8,
                      stride, cfg.res5_dilation, cfg.stride_in_1x1, cfg.bn_eps)


def fuse_frozen_bn(layer):
    for sub in layer.sublayers(include_self=True):
        if isinstance(sub, ConvNorm):
            sub.fuse()
