"""Deterministic "no near ties" test cases for the SSD300 network parity tests.

Used by `run.py make-case` (model_cmds.py); nothing else imports it. A float32 C implementation is
compared against the float64 oracle; in a deep ReLU net such a comparison is dominated by values
that sit within rounding distance of a ReLU kink or of a max-pool tie (one side flips a mask, the
other does not). Instead of loosening tolerances, make_case() builds weights and inputs where this
cannot happen:

  * weights from the reference's init distributions (spec 1.3 / 2.4, torchvision ResNet init for
    the backbone: kaiming normal fan_out/relu convs, BN gamma 1 beta 0; Xavier uniform for the
    extras/heads weights; PyTorch default conv bias U(+-1/sqrt(fan_in))), drawn from seeded
    torch.Generators and rounded to float32; BN running stats random (to exercise the update);
  * images: smooth random fields + pixel noise, squashed to (0,1) and normalised with the ImageNet
    mean/std (range about [-2.1, 2.6]), float32;
  * then, in forward order, in float64 and BN train mode: for every BN followed by a ReLU (bn1 of
    the stem, bn1 of each block, bn2 + shortcut of each block) each channel's beta, and for every
    extras conv each output channel's bias, is set so that all pre-ReLU values of the channel over
    (N,H,W) are >= +margin (active) or <= -margin (inactive, with probability inactive_frac);
    margin = margin_frac * max(channel spread, 0.25 * layer RMS);
  * the stem max-pool (3x3/2/pad 1 after bn1+ReLU): every window of an active channel must have a
    unique maximum with a gap to the runner-up >= 1e-4 * the channel's standard deviation (about
    100 float32 ulps of the largest values). Each offending window gets the one input pixel with
    the largest weight difference between its two leading positions nudged (the image stays
    float32), bn1 is recalibrated, and this repeats until no window violates. Inactive channels
    are all zeros (ties), but the ReLU in front of the pool zeroes their gradient, so the argmax
    choice cannot matter there;
  * targets: 1-6 random GT boxes per image (labels 1..80) through boxes.encode; an image's
    targets are redrawn if the hard-negative selection has a near tie at its K-th rank
    (ce_neg[K-1] - ce_neg[K] < 1e-4 relative; torch's float32 logits are off by ~3e-6 of their
    max), so the 3:1 mining picks the same anchors in float32; boxes are sized per pyramid level
    and the last image is redrawn until all six levels hold positives over the batch, so every
    extras/head tensor receives a gradient.
Everything is finally re-verified with the float32-rounded weights/images on the real SSD300
module (forward hooks on the ReLUs and the max-pool), in float64.
"""
import math

import torch
import torch.nn.functional as F

from torchref import boxes, model
from torchref import loss as loss_mod

IMNET_MEAN = (0.485, 0.456, 0.406)
IMNET_STD = (0.229, 0.224, 0.225)
POOL_REL_GAP = 1e-4
HNM_REL_GAP = 1e-4


def _gen(seed, stream):
    g = torch.Generator()
    g.manual_seed((int(seed) * 1000003 + stream) % (2 ** 63))
    return g


def _f32(t):
    """Round to float32 and back to float64 (values exactly representable in float32)."""
    return t.float().double()


# ------------------------------------------------------------------------------------ weights


def init_weights(net, seed):
    """Fill net (any dtype) in place with the reference init distributions, float32-exact."""
    g = _gen(seed, 1)
    sd = {}
    with torch.no_grad():
        for name, mod in net.named_modules():
            if isinstance(mod, torch.nn.Conv2d):
                cout, cin, kh, kw = mod.weight.shape
                if name.startswith("model."):
                    std = math.sqrt(2.0 / (cout * kh * kw))          # kaiming normal, fan_out, relu
                    w = torch.randn(mod.weight.shape, generator=g, dtype=torch.float64) * std
                else:
                    b = math.sqrt(6.0 / (cin * kh * kw + cout * kh * kw))   # xavier uniform
                    w = (torch.rand(mod.weight.shape, generator=g, dtype=torch.float64) * 2 - 1) * b
                sd[name + ".weight"] = w
                if mod.bias is not None:
                    bb = 1.0 / math.sqrt(cin * kh * kw)
                    sd[name + ".bias"] = (torch.rand(cout, generator=g, dtype=torch.float64)
                                          * 2 - 1) * bb
            elif isinstance(mod, torch.nn.BatchNorm2d):
                c = mod.num_features
                sd[name + ".weight"] = torch.ones(c, dtype=torch.float64)
                sd[name + ".bias"] = torch.zeros(c, dtype=torch.float64)
                sd[name + ".running_mean"] = (torch.rand(c, generator=g, dtype=torch.float64)
                                              - 0.5)
                sd[name + ".running_var"] = 0.5 + 1.5 * torch.rand(c, generator=g,
                                                                   dtype=torch.float64)
                sd[name + ".num_batches_tracked"] = torch.zeros((), dtype=torch.int64)
        full = net.state_dict()
        for k, v in sd.items():
            full[k].copy_(v.float() if v.is_floating_point() else v)
    assert set(sd) == set(net.state_dict()), "init did not cover every state-dict entry"


# ------------------------------------------------------------------------------------- images


def _smooth_field(g, n, size):
    f = torch.zeros(n, 1, size, size, dtype=torch.float64)
    for res, amp in ((3, 1.0), (6, 0.7), (12, 0.5), (25, 0.35), (50, 0.2)):
        lo = torch.randn(n, 1, res, res, generator=g, dtype=torch.float64)
        f += amp * F.interpolate(lo, size=(size, size), mode="bilinear", align_corners=False)
    return f


def make_images(n, seed, size=300):
    """[n,3,size,size] float32: structured random images in the normalised range."""
    g = _gen(seed, 2)
    lum = _smooth_field(g, n, size)
    chans = []
    for c in range(3):
        f = 0.8 * lum + 0.6 * _smooth_field(g, n, size)
        f = f + 0.15 * torch.randn(n, 1, size, size, generator=g, dtype=torch.float64)
        u = torch.sigmoid(1.3 * f)
        chans.append((u - IMNET_MEAN[c]) / IMNET_STD[c])
    return torch.cat(chans, 1).float()


def load_images(directory, n, seed=0, grain=0.03):
    """n images from DIR (sorted file names): .npy ([3,300,300] normalised floats, or HxWx3
    uint8), .safetensors ('image' [3,300,300] or 'images' [k,3,300,300]), or anything PIL opens
    (resized to 300x300 bilinear, /255, ImageNet mean/std). 8-bit sources get Gaussian grain of
    std `grain` (in [0,1] pixel units) before normalising: flat regions of real images make
    exact or near max-pool ties by the thousand, and the one-pixel fixes of calibrate_stem only
    converge where near ties are rare (about 1e-3 of the windows or fewer).
    Returns [n,3,300,300] float32."""
    g = _gen(seed, 6)
    import os
    import numpy as np
    from torchref import st
    mean = torch.tensor(IMNET_MEAN, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(IMNET_STD, dtype=torch.float64).view(3, 1, 1)

    def from_hwc_u8(a):
        t = torch.from_numpy(np.array(a, dtype=np.float64)).permute(2, 0, 1)
        t = t / 255.0 + grain * torch.randn(t.shape, generator=g, dtype=torch.float64)
        if t.shape[1:] != (300, 300):
            t = F.interpolate(t.unsqueeze(0), size=(300, 300), mode="bilinear",
                              align_corners=False)[0]
        return (t - mean) / std

    out = []
    for fn in sorted(os.listdir(directory)):
        p = os.path.join(directory, fn)
        if not os.path.isfile(p):
            continue
        if fn.endswith(".npy"):
            a = np.load(p)
            out.append(from_hwc_u8(a) if a.dtype == np.uint8 else torch.from_numpy(a).double())
        elif fn.endswith(".safetensors"):
            d, _ = st.read(p)
            if "images" in d:
                out.extend(list(d["images"].double()))
            else:
                out.append(d["image"].double())
        else:
            try:
                from PIL import Image
                with Image.open(p) as im:
                    out.append(from_hwc_u8(np.asarray(im.convert("RGB").resize(
                        (300, 300), Image.BILINEAR))))
            except Exception:
                continue
        if len(out) >= n:
            break
    if len(out) < n:
        raise SystemExit("make-case: %s holds %d usable images, %d needed"
                         % (directory, len(out), n))
    imgs = torch.stack(out[:n])
    if imgs.shape[1:] != (3, 300, 300):
        raise SystemExit("make-case: images must be 3x300x300, got %s" % (tuple(imgs.shape),))
    return imgs.float()


# -------------------------------------------------------------------------------- calibration


def _bn_train(x, weight, bias):
    return F.batch_norm(x, None, None, weight, bias, training=True, momentum=0.0,
                        eps=model.BN_EPS)


class Calibrator:
    """Forward pass in float64 that sets betas/biases in forward order (see module docstring)."""

    def __init__(self, sd64, seed, margin_frac, inactive_frac, log):
        self.sd = sd64                      # name -> float64 tensor (float32-exact)
        self.g = _gen(seed, 3)
        self.frac = margin_frac
        self.pinact = inactive_frac
        self.log = log
        self.sites = []                     # (site name, param name, margins [C], active [C])

    def _choose(self, site, pname, vals):
        """vals [N,C,H,W] pre-ReLU values without the additive per-channel term; sets
        sd[pname] (beta or bias) so that vals + b is >= margin or <= -margin per channel."""
        c = vals.shape[1]
        mn = vals.amin(dim=(0, 2, 3))
        mx = vals.amax(dim=(0, 2, 3))
        rms = vals.pow(2).mean().sqrt()
        scale = torch.maximum(mx - mn, 0.25 * rms)
        margin = self.frac * scale
        inactive = torch.rand(c, generator=self.g, dtype=torch.float64) < self.pinact
        if bool(inactive.all()):
            inactive[0] = False
        b = torch.where(inactive, -margin - mx, margin - mn)
        self.sd[pname] = _f32(b)
        self.sites.append((site, pname, margin, ~inactive))

    def conv(self, x, name, stride, pad):
        return F.conv2d(x, self.sd[name + ".weight"], self.sd.get(name + ".bias"), stride, pad)

    def stem(self, images):
        c1 = self.conv(images, "model.layer1.0", 2, 3)
        z = _bn_train(c1, self.sd["model.layer1.1.weight"], None)
        self._choose("model.layer1.1 (stem bn1)", "model.layer1.1.bias", z)
        y = F.relu(_bn_train(c1, self.sd["model.layer1.1.weight"], self.sd["model.layer1.1.bias"]))
        return y

    def block(self, x, name, stride, ds_stride):
        c1 = self.conv(x, name + ".conv1", stride, 1)
        z1 = _bn_train(c1, self.sd[name + ".bn1.weight"], None)
        self._choose(name + ".bn1", name + ".bn1.bias", z1)
        h = F.relu(_bn_train(c1, self.sd[name + ".bn1.weight"], self.sd[name + ".bn1.bias"]))
        c2 = self.conv(h, name + ".conv2", 1, 1)
        if ds_stride is None:
            sc = x
        else:
            d = self.conv(x, name + ".downsample.0", ds_stride, 0)
            sc = _bn_train(d, self.sd[name + ".downsample.1.weight"],
                           self.sd[name + ".downsample.1.bias"])
        z2 = _bn_train(c2, self.sd[name + ".bn2.weight"], None) + sc
        self._choose(name + ".bn2+shortcut", name + ".bn2.bias", z2)
        return F.relu(_bn_train(c2, self.sd[name + ".bn2.weight"], self.sd[name + ".bn2.bias"])
                      + sc)

    def extra_conv(self, x, name, stride, pad):
        v = F.conv2d(x, self.sd[name + ".weight"], None, stride, pad)
        self._choose(name, name + ".bias", v)
        return F.relu(self.conv(x, name, stride, pad))

    def rest(self, y):
        """From the stem's bn1+ReLU output to the six head inputs."""
        x = F.max_pool2d(y, 3, 2, 1)
        for b in range(3):
            x = self.block(x, "model.layer1.4.%d" % b, 1, None)
        for b in range(4):
            x = self.block(x, "model.layer1.5.%d" % b, 2 if b == 0 else 1, 2 if b == 0 else None)
        for b in range(6):
            x = self.block(x, "model.layer2.0.%d" % b, 1, 1 if b == 0 else None)
        feats = [x]
        for i, (_, _, _, stride, pad) in enumerate(model.EXTRAS):
            x = self.extra_conv(x, "additional_blocks.%d.0" % i, 1, 0)
            x = self.extra_conv(x, "additional_blocks.%d.2" % i, stride, pad)
            feats.append(x)
        return feats


def pool_windows(y):
    """y [N,C,150,150] -> (top1 - top2 gaps [N,C,75,75], argmax and runner-up window slots
    0..8 [N,C,75,75] each, per-channel scale [C] = standard deviation over (N,H,W))."""
    n, c, h, w = y.shape
    p = F.pad(y, (1, 1, 1, 1), value=-math.inf)
    win = p.unfold(2, 3, 2).unfold(3, 3, 2)              # [N,C,75,75,3,3]
    top = win.reshape(n, c, win.shape[2], win.shape[3], 9).topk(2, dim=-1)
    gap = top.values[..., 0] - top.values[..., 1]
    scale = y.std(dim=(0, 2, 3), unbiased=False)
    return gap, top.indices[..., 0], top.indices[..., 1], scale


def pool_violations(y, active):
    """Windows of active channels whose relative gap (top1 - top2) / channel std < POOL_REL_GAP.
    Returns (bad mask, gaps, slots1, slots2, scale, min relative gap, min gap / channel max)."""
    gap, s1, s2, scale = pool_windows(y)
    rel = gap / scale.clamp(min=1e-300).view(1, -1, 1, 1)
    rel = torch.where(active.view(1, -1, 1, 1), rel, torch.full_like(rel, math.inf))
    bad = rel < POOL_REL_GAP
    relmax = gap / y.amax(dim=(0, 2, 3)).clamp(min=1e-300).view(1, -1, 1, 1)
    relmax = torch.where(active.view(1, -1, 1, 1), relmax, torch.full_like(relmax, math.inf))
    return bad, gap, s1, s2, scale, float(rel.min()), float(relmax.min())


def _fix_window(img, w1, n, c, i, j, slot1, slot2, need_raw, g=None):
    """Raise conv1 output at the window's argmax position relative to its runner-up by need_raw
    (conv units) by changing the one input pixel with the largest weight difference (with a
    generator g: a random one of the 8 largest, to break cycles between neighbouring windows)."""
    k = w1.shape[-1]                                      # 7, stride 2, pad 3
    H, W = img.shape[2], img.shape[3]
    r1, s1 = 2 * i - 1 + slot1 // 3, 2 * j - 1 + slot1 % 3
    r2, s2 = 2 * i - 1 + slot2 // 3, 2 * j - 1 + slot2 % 3
    u0 = 2 * min(r1, r2) - 3
    v0 = 2 * min(s1, s2) - 3
    d = torch.zeros(w1.shape[1], 2 * abs(r1 - r2) + k, 2 * abs(s1 - s2) + k, dtype=w1.dtype)
    d[:, 2 * r1 - 3 - u0:2 * r1 - 3 - u0 + k, 2 * s1 - 3 - v0:2 * s1 - 3 - v0 + k] += w1[c]
    d[:, 2 * r2 - 3 - u0:2 * r2 - 3 - u0 + k, 2 * s2 - 3 - v0:2 * s2 - 3 - v0 + k] -= w1[c]
    uu = torch.arange(d.shape[1]).view(1, -1, 1) + u0
    vv = torch.arange(d.shape[2]).view(1, 1, -1) + v0
    inside = (uu >= 0) & (uu < H) & (vv >= 0) & (vv < W)
    score = torch.where(inside, d.abs(), torch.zeros_like(d))
    if g is None:
        flat = int(score.argmax())
    else:
        top = score.reshape(-1).topk(8).indices
        flat = int(top[int(torch.randint(0, 8, (1,), generator=g))])
    ch, rest = divmod(flat, d.shape[1] * d.shape[2])
    du, dv = divmod(rest, d.shape[2])
    img[n, ch, u0 + du, v0 + dv] += need_raw / float(d[ch, du, dv])


def calibrate_stem(sd64, images, seed, margin_frac, inactive_frac, log, max_rounds=60):
    """Stem bn1 betas + image fixes until every active max-pool window has a clear maximum:
    each offending window gets one input pixel nudged so its argmax leads the runner-up by
    2x the threshold (a change of the order of the threshold elsewhere, so few new violations);
    repeated until none is left. A window that needs fixing again gets a larger lead (2x the
    threshold per time) and, from its third fix on, a pixel drawn among the 8 best, so windows
    that keep breaking each other settle.
    Returns (images float32, stem output y float64, Calibrator positioned after the stem,
    violations at the start, min gap / channel std, min gap / channel max)."""
    img = images.double().clone()
    gfix = _gen(seed, 4)
    fixed = {}                                            # window -> times it was fixed
    w1 = sd64["model.layer1.0.weight"]
    gamma = sd64["model.layer1.1.weight"]
    first = None
    for rnd in range(max_rounds + 1):
        cal = Calibrator(sd64, seed, margin_frac, inactive_frac, log)
        y = cal.stem(img)
        active = cal.sites[0][3]
        bad, gap, sl1, sl2, scale, relmin, relmax = pool_violations(y, active)
        nbad = int(bad.sum())
        if first is None:
            first = nbad
        log("  max-pool round %d: %d of %d active-channel windows with gap < %.0e x channel "
            "std (min gap/std %.3e, min gap/channel max %.3e)" % (
                rnd, nbad, int(active.sum()) * bad.shape[0] * 75 * 75, POOL_REL_GAP, relmin,
                relmax))
        if nbad == 0:
            return img.float(), y, cal, first, relmin, relmax
        if rnd == max_rounds:
            raise SystemExit("make-case: max-pool ties not resolved after %d rounds" % max_rounds)
        c1 = F.conv2d(img, w1, None, 2, 3)
        sigma = (c1.var(dim=(0, 2, 3), unbiased=False) + model.BN_EPS).sqrt()
        for n, c, i, j in bad.nonzero().tolist():
            times = fixed.get((n, c, i, j), 0)
            fixed[(n, c, i, j)] = times + 1
            need = 2.0 * (1 + times) * POOL_REL_GAP * float(scale[c]) - float(gap[n, c, i, j])
            need_raw = need * float(sigma[c]) / float(gamma[c])
            _fix_window(img, w1, n, c, i, j, int(sl1[n, c, i, j]), int(sl2[n, c, i, j]), need_raw,
                        gfix if times >= 2 else None)
        img = _f32(img)
    raise AssertionError


# ------------------------------------------------------------------------------------ targets


LEVEL_OFFSETS = [0, 5776, 7942, 8542, 8692, 8728, 8732]
LEVEL_SCALES = [0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.0]     # spec 3: scales / 300, last 1.0


def levels_hit(label):
    pos = label > 0
    return {l for l in range(6) if bool(pos[LEVEL_OFFSETS[l]:LEVEL_OFFSETS[l + 1]].any())}


def random_targets(g, dltrb, dxywh, want_levels):
    """1-6 random GT boxes (labels 1..80) encoded with boxes.encode. Box k is sized for pyramid
    level want_levels[k % len] (size between that level's anchor scale and the next one's,
    aspect ratio in [1/3, 3], centre so that the box mostly fits), so a batch can cover all six
    levels; returns (bbox [A,4], label [A], gt ltrb, gt labels)."""
    nb = int(torch.randint(1, 7, (1,), generator=g))
    gts = []
    for k in range(nb):
        lv = want_levels[k % len(want_levels)]
        u = torch.rand(5, generator=g, dtype=torch.float64).tolist()
        sz = LEVEL_SCALES[lv] + (LEVEL_SCALES[lv + 1] - LEVEL_SCALES[lv]) * u[0]
        ar = math.exp(math.log(3.0) * (2 * u[1] - 1))
        w, h = min(1.0, sz * math.sqrt(ar)), min(1.0, sz / math.sqrt(ar))
        cx = w / 2 + (1 - w) * u[2]
        cy = h / 2 + (1 - h) * u[3]
        gts.append([max(0.0, cx - w / 2), max(0.0, cy - h / 2),
                    min(1.0, cx + w / 2), min(1.0, cy + h / 2)])
    gt = torch.tensor(gts, dtype=torch.float64).float()
    labels = torch.randint(1, 81, (nb,), generator=g, dtype=torch.int64)
    bbox, label = boxes.encode(gt, labels, dltrb, dxywh)
    return bbox, label, gt, labels


def draw_targets(plabel, seed, log, max_attempts=20000):
    """Targets for every image: positives in each image, no near tie at the hard-negative
    boundary, and positives on all six pyramid levels over the batch (the last image is drawn
    until it covers the levels the others missed), so every extras/head tensor gets a gradient.
    Each image's boxes are sized for the levels still missing, in a random rotation."""
    n = plabel.shape[0]
    dxywh, dltrb = boxes.default_boxes()
    g = _gen(seed, 5)
    rows = []
    covered = set()
    for i in range(n):
        missing = [l for l in range(6) if l not in covered]
        need = set(missing) if i == n - 1 else set()
        pool = missing or list(range(6))
        for attempt in range(max_attempts):
            off = int(torch.randint(0, len(pool), (1,), generator=g))
            want = pool[off:] + pool[:off]
            bbox, label, gtb, _ = random_targets(g, dltrb, dxywh, want)
            if not need <= levels_hit(label):
                continue
            p, k, rgap, agap = hnm_gap(plabel[i], label)
            if p > 0 and rgap >= HNM_REL_GAP:
                break
        else:
            raise SystemExit("make-case: no suitable targets for image %d in %d draws"
                             % (i, max_attempts))
        covered |= levels_hit(label)
        per_level = [int((label[LEVEL_OFFSETS[l]:LEVEL_OFFSETS[l + 1]] > 0).sum())
                     for l in range(6)]
        log("image %d: %d GT boxes, %d positives (per level %s), K=%d hard negatives, boundary "
            "gap %.3e rel (%.3e abs), %d redraws" % (i, gtb.shape[0], p, per_level, k, rgap,
                                                     agap, attempt))
        rows.append((bbox, label))
    assert len(covered) == 6
    return torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])


def hnm_gap(conf_n, label_n):
    """conf [81,A], label [A] -> (P, K, rel gap, abs gap) at the hard-negative K boundary."""
    ce = F.cross_entropy(conf_n.t(), label_n, reduction="none")
    pos = label_n > 0
    p = int(pos.sum())
    ce_neg = torch.where(pos, torch.zeros_like(ce), ce)
    srt = ce_neg.sort(descending=True).values
    k = min(3 * p, srt.numel())
    if k >= srt.numel():
        return p, k, math.inf, math.inf
    a, b = float(srt[k - 1]), float(srt[k])
    return p, k, (a - b) / max(abs(a), 1e-300), a - b


# ------------------------------------------------------------------------------- verification


def relu_sites(net):
    """Pre-ReLU site names in forward order, matching Calibrator.sites."""
    names = ["model.layer1.1 (stem bn1)"]
    for pre, nb in (("model.layer1.4", 3), ("model.layer1.5", 4), ("model.layer2.0", 6)):
        for b in range(nb):
            names += ["%s.%d.bn1" % (pre, b), "%s.%d.bn2+shortcut" % (pre, b)]
    for i in range(len(model.EXTRAS)):
        names += ["additional_blocks.%d.0" % i, "additional_blocks.%d.2" % i]
    return names


def verify(net64, images64):
    """Train-mode float64 forward of the real module with hooks. Returns (list of pre-ReLU
    tensors in forward order, max-pool input, ploc, plabel). Restores BN buffers afterwards."""
    saved = {k: v.clone() for k, v in net64.state_dict().items()}
    pre = []
    pool_in = []
    hooks = []
    for _, m in net64.named_modules():
        if isinstance(m, torch.nn.ReLU):
            hooks.append(m.register_forward_pre_hook(lambda mod, inp: pre.append(inp[0].detach())))
        elif isinstance(m, torch.nn.MaxPool2d):
            hooks.append(m.register_forward_pre_hook(
                lambda mod, inp: pool_in.append(inp[0].detach())))
    net64.train()
    with torch.no_grad():
        ploc, plabel = net64(images64)
    for h in hooks:
        h.remove()
    net64.load_state_dict(saved)
    return pre, pool_in[0], ploc, plabel


# ------------------------------------------------------------------------------------ driver


def make_case(n, seed, images=None, margin_frac=0.08, inactive_frac=0.15, log=print):
    """Returns (state dict name -> float32/int64 tensors, batch dict, summary dict)."""
    net = model.SSD300()
    init_weights(net, seed)
    sd64 = {k: (v.double() if v.is_floating_point() else v.clone())
            for k, v in net.state_dict().items()}
    if images is None:
        images = make_images(n, seed)
    images = images.float()
    log("make-case: batch %d, seed %d, margin %.3g x max(channel spread, 0.25 layer rms), "
        "inactive fraction %.2f" % (n, seed, margin_frac, inactive_frac))

    images, y, cal, pool_first, _, _ = calibrate_stem(sd64, images, seed, margin_frac,
                                                      inactive_frac, log)
    cal.rest(y)

    # final weights: float32-rounded (betas/biases already are; everything else was)
    final = {}
    for k, v in net.state_dict().items():
        final[k] = sd64[k].float() if v.is_floating_point() else sd64[k].clone()
    for k, v in final.items():
        if v.is_floating_point():
            assert torch.equal(v.double(), sd64[k]), k

    # independent verification on the real module, float64 with the float32 values
    net64 = model.SSD300().double()
    net64.load_state_dict({k: (v.double() if v.is_floating_point() else v)
                           for k, v in final.items()})
    img64 = images.double()
    pre, pool_in, ploc, plabel = verify(net64, img64)
    names = relu_sites(net64)
    assert len(pre) == len(names) == len(cal.sites), (len(pre), len(names), len(cal.sites))
    log("%-36s %5s %5s %11s %11s %10s" % ("pre-ReLU site", "act", "inact", "min|v|/mrg",
                                          "min|v|/scl", "min|v|"))
    worst = math.inf
    rows = []
    for v, nm, (site, pname, margin, active) in zip(pre, names, cal.sites):
        assert nm == site, (nm, site)
        mn = v.amin(dim=(0, 2, 3))
        mx = v.amax(dim=(0, 2, 3))
        absmin = torch.where(active, mn, -mx)            # > 0: every value on the chosen side
        ratio = float((absmin / margin).min())
        rel_scale = float((absmin / (margin / cal.frac)).min())
        if not ratio >= 0.99:
            raise SystemExit("make-case: site %s fails its margin (min ratio %.6g)" % (nm, ratio))
        worst = min(worst, ratio)
        rows.append((nm, int(active.sum()), int((~active).sum()), ratio, rel_scale,
                     float(absmin.min())))
        log("%-36s %5d %5d %11.7f %11.5f %10.4g" % rows[-1])

    active0 = cal.sites[0][3]
    bad, _, _, _, _, relmin, relmax = pool_violations(pool_in, active0)
    nbad = int(bad.sum())
    log("max-pool: %d violating windows before the image fixes, %d after; min gap over active "
        "channels %.3e x channel std (threshold %.0e), %.3e x channel max; %d inactive channels "
        "are all-zero (ties, zero gradient through the ReLU)" % (
            pool_first, nbad, relmin, POOL_REL_GAP, relmax, int((~active0).sum())))
    if nbad:
        raise SystemExit("make-case: max-pool still has %d violating windows" % nbad)

    bboxes, labels = draw_targets(plabel, seed, log)
    dxywh, _ = boxes.default_boxes()
    lossv, per = loss_mod.ssd_loss(ploc, plabel, bboxes, labels, dxywh.double())
    finite = bool(torch.isfinite(ploc).all() and torch.isfinite(plabel).all())
    log("heads: loc in [%.3f, %.3f] rms %.3f; conf in [%.3f, %.3f] rms %.3f; finite %s" % (
        float(ploc.min()), float(ploc.max()), float(ploc.pow(2).mean().sqrt()),
        float(plabel.min()), float(plabel.max()), float(plabel.pow(2).mean().sqrt()), finite))
    log("loss (float64) %.6f, per image %s" % (float(lossv),
                                               ", ".join("%.6f" % float(x) for x in per)))
    if not finite or not math.isfinite(float(lossv)):
        raise SystemExit("make-case: non-finite heads or loss")

    batch = {"images": images, "bboxes": bboxes.float(), "labels": labels}
    summary = {"worst_margin_ratio": worst, "pool_violations_before": pool_first,
               "pool_min_rel_gap": relmin, "pool_min_gap_over_max": relmax,
               "loss": float(lossv), "sites": rows}
    return final, batch, summary
