"""SSD300-ResNet34 network in torch (spec/ssd-reference.md sections 1 and 2), for the test oracle.

    from torchref import model
    net = model.SSD300().double()          # or .float(); random torch default init
    ploc, plabel = net(images)             # images [N,3,300,300] -> [N,4,8732], [N,81,8732]

State-dict names are exactly the reference's (spec 1.4, 2.1, 2.2): model.layer1.{0..5}.*,
model.layer2.0.{0..5}.*, additional_blocks.{0..4}.{0,2}.*, loc.{0..5}.*, conf.{0..5}.*.
The backbone is torchvision's ResNet-34 (BasicBlock) written out here and truncated after layer3,
whose first block has stride 1 in both its 3x3 conv and its 1x1 downsample. BatchNorm: eps 1e-5,
momentum 0.1. Head outputs are reshaped with a plain view (no permute) to [N,4,-1] / [N,81,-1]
and concatenated over the 6 levels (spec 2.3). Weight initialisation for test cases lives in
model_cmds.py (make-case); this module only defines the structure.

Command-line use goes through run.py (subcommands step, make-case, count; see model_cmds.py).
"""
import torch
import torch.nn as nn

N_CLASSES = 81
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
# (input channels per head level, anchors per location)
HEAD_CHANNELS = [256, 512, 512, 256, 256, 256]
NUM_DEFAULTS = [4, 6, 6, 6, 4, 4]
# extras: (in, mid, out, stride, pad) of conv b; conv a is 1x1 in->mid
EXTRAS = [(256, 256, 512, 2, 1), (512, 256, 512, 2, 1), (512, 128, 256, 2, 1),
          (256, 128, 256, 1, 0), (256, 128, 256, 1, 0)]

N_PARAMS = 19972534
N_PARAM_TENSORS = 131
N_BN = 29


def _bn(c):
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=BN_MOMENTUM)


def _conv3x3(cin, cout, stride):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """y = ReLU(bn2(conv2(ReLU(bn1(conv1(x))))) + shortcut(x)); shortcut = x or downsample(x)."""

    def __init__(self, cin, cout, stride, downsample_stride=None):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = _bn(cout)
        self.relu = nn.ReLU(inplace=False)    # used twice, as in torchvision (no parameters)
        self.conv2 = _conv3x3(cout, cout, 1)
        self.bn2 = _bn(cout)
        if downsample_stride is not None:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=downsample_stride, bias=False), _bn(cout))
        else:
            self.downsample = None

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = x if self.downsample is None else self.downsample(x)
        return self.relu(out + sc)


def _stage(cin, cout, blocks, stride, ds_stride):
    layers = [BasicBlock(cin, cout, stride, ds_stride)]
    for _ in range(1, blocks):
        layers.append(BasicBlock(cout, cout, 1))
    return nn.Sequential(*layers)


class ResNet34Trunk(nn.Module):
    """model.layer1 = [conv1, bn1, relu, maxpool, resnet.layer1, resnet.layer2];
    model.layer2 = [resnet.layer3 with stride 1]. Output 256x38x38 for a 300x300 input."""

    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False),
            _bn(64),
            nn.ReLU(inplace=False),
            nn.MaxPool2d(3, stride=2, padding=1),
            _stage(64, 64, 3, 1, None),
            _stage(64, 128, 4, 2, 2),
        )
        self.layer2 = nn.Sequential(_stage(128, 256, 6, 1, 1))

    def forward(self, x):
        return self.layer2(self.layer1(x))


class SSD300(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = ResNet34Trunk()
        blocks = []
        for cin, mid, cout, stride, pad in EXTRAS:
            blocks.append(nn.Sequential(
                nn.Conv2d(cin, mid, 1, bias=True),
                nn.ReLU(inplace=False),
                nn.Conv2d(mid, cout, 3, stride=stride, padding=pad, bias=True),
                nn.ReLU(inplace=False),
            ))
        self.additional_blocks = nn.ModuleList(blocks)
        self.loc = nn.ModuleList(
            [nn.Conv2d(c, 4 * nd, 3, padding=1) for c, nd in zip(HEAD_CHANNELS, NUM_DEFAULTS)])
        self.conf = nn.ModuleList(
            [nn.Conv2d(c, N_CLASSES * nd, 3, padding=1)
             for c, nd in zip(HEAD_CHANNELS, NUM_DEFAULTS)])

    def features(self, x):
        """The six head inputs F0..F5 (spec 2.2)."""
        feats = [self.model(x)]
        for blk in self.additional_blocks:
            feats.append(blk(feats[-1]))
        return feats

    def heads(self, feats):
        n = feats[0].shape[0]
        locs = [l(f).reshape(n, 4, -1) for f, l in zip(feats, self.loc)]
        confs = [c(f).reshape(n, N_CLASSES, -1) for f, c in zip(feats, self.conf)]
        return torch.cat(locs, 2).contiguous(), torch.cat(confs, 2).contiguous()

    def forward(self, x):
        return self.heads(self.features(x))


def param_names(net):
    return [n for n, _ in net.named_parameters()]


def buffer_names(net):
    return [n for n, _ in net.named_buffers()]


def bn_modules(net):
    """(name, module) of every BatchNorm2d in forward order."""
    return [(n, m) for n, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)]


def count(net):
    """(trainable parameter count, parameter tensor count, BN count)."""
    ps = [p for p in net.parameters() if p.requires_grad]
    return sum(p.numel() for p in ps), len(ps), len(bn_modules(net))
