"""Spike-and-slab recurrent network: mean-field dynamics, BPTT through the mean and variance paths.

Symbols follow docs/model-rnn.md (the feed-forward ones, ``pi``, ``m``, ``xi``, ``mu``, ``var``,
as in docs/model.md section 1):

===========  =================================================================================
code         meaning (docs/model-rnn.md section)
===========  =================================================================================
``c``        per-matrix scale, ``1/sqrt(fan_in)`` (``"fan_in"``) or 1 (``"reference"``)     (1)
``g``        mean drive ``c_r mu_r r_{t-1} + c_i mu_i x_t``                                   (2)
``D``        its spread ``sqrt(c_r^2 var_r r_{t-1}^2 + c_i^2 var_i x_t^2)``                    (2)
``eps``      fresh standard normal per step, unit and pattern, fixed in the backward pass    (2)
``u``        ``g + D eps``; ``h_t = (1 - alpha) h_{t-1} + alpha u_t``; ``r = ReLU(h)``          (2)
``w``        ``eps / D`` where ``D > 0``, else 0: what the variance path needs                (4)
``z``        ``dL/dh_t``; ``d_t = alpha z_t = dL/du_t``; ``d~_t = d_t w_t``                   (4)
===========  =================================================================================

Shapes: every parameter array has a leading replica axis ``R``; the input matrix is
``(R, N, N_in)``, the recurrent one ``(R, N, N)``, the readout ``(R, N_out, N)``. Input
sequences are ``(B, T, N_in)`` (shared by the replicas) or ``(R, B, T, N_in)``; outputs are
``(R, B, N_out)`` (readout at the last step) or ``(R, B, T, N_out)`` (every step). Inside, the
per-step arrays are kept time-major, ``(R, T, B, N)``, so that one step is a batch of
contiguous ``(B, N)`` blocks and the sums over time of the weight gradients are one matrix
product each.

The BPTT baseline is the limit ``pi = Xi = 0`` without noise, run through the same functions
with ``bp=True``. All functions are pure array code (NumPy or CuPy, the namespace taken from
the arguments); the moments and the chain rule are the feed-forward model's own
(``mfphys.kernels.scaled_moments`` and ``mfphys.kernels.chain_rule``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ... import cpu_kernels as _cpu
from ... import kernels
from ...backend import namespace_of
from ...errors import MfphysError
from ...fileio import quote
from ...layers import Layer, cross_entropy

#: the three matrices, in the order of every tuple of parameters, gradients and settings
MATRICES = ("input", "recurrent", "output")
SCALINGS = ("fan_in", "reference")
READOUTS = ("last", "all")


class RnnParams(NamedTuple):
    """The spike-and-slab parameters of the three matrices, each a :class:`mfphys.model.Layer`."""

    input: Layer  # (R, N, N_in)
    recurrent: Layer  # (R, N, N)
    output: Layer  # (R, N_out, N)


@dataclass(frozen=True)
class RnnSpec:
    """The network and its dynamics (docs/model-rnn.md sections 1-3): what the arrays alone do not say.

    ``scaling`` picks the per-matrix scale ``c`` (section 1); ``input_stochastic=False`` makes
    the input matrix deterministic (its ``pi`` and ``Xi`` are held, only ``m`` is trained);
    ``sigma_rec`` is the private noise outside the mean-field variance; ``h0`` the constant
    initial state; ``readout`` ``"last"`` (cross-entropy of the last step) or ``"all"`` (masked
    squared error over every step).
    """

    n_in: int
    n: int
    n_out: int
    alpha: float
    scaling: str = "fan_in"
    h0: float = 0.0
    sigma_rec: float = 0.0
    readout: str = "last"
    input_stochastic: bool = True

    def __post_init__(self):
        for name in ("n_in", "n", "n_out"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise MfphysError(f"{name} must be a positive integer, got {quote(value)}")
        if not (0 < self.alpha <= 1):
            raise MfphysError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.scaling not in SCALINGS:
            raise MfphysError(f"unknown scaling {quote(self.scaling)}: choose one of {', '.join(SCALINGS)}")
        if self.readout not in READOUTS:
            raise MfphysError(f"unknown readout {quote(self.readout)}: choose one of {', '.join(READOUTS)}")
        if not (self.sigma_rec >= 0 and math.isfinite(self.sigma_rec)):
            raise MfphysError(f"sigma_rec must be a finite number >= 0, got {self.sigma_rec}")
        if not math.isfinite(self.h0):
            raise MfphysError(f"h0 must be finite, got {self.h0}")

    @property
    def fan_ins(self) -> tuple[int, int, int]:
        """Fan-in of the input, recurrent and output matrices."""
        return (self.n_in, self.n, self.n)

    @property
    def n_eff(self) -> tuple[float, float, float]:
        """``1 / c^2`` per matrix: the fan-in, or 1 in the reference scaling (docs/model-rnn.md section 1)."""
        return self.fan_ins if self.scaling == "fan_in" else (1, 1, 1)

    @property
    def shapes(self) -> tuple[tuple[int, int], ...]:
        return ((self.n, self.n_in), (self.n, self.n), (self.n_out, self.n))

    def stochastic(self, *, bp: bool = False) -> tuple[bool, bool, bool]:
        """Which matrices are spike-and-slab (their ``pi`` and ``Xi`` trained, a variance path)."""
        if bp:
            return (False, False, False)
        return (self.input_stochastic, True, True)

    def trainable(self, *, bp: bool = False) -> tuple[tuple[str, ...], ...]:
        """The parameter kinds trained per matrix: ``("pi", "m", "xi")``, or ``("m",)`` where deterministic."""
        return tuple(("pi", "m", "xi") if s else ("m",) for s in self.stochastic(bp=bp))


class Noise(NamedTuple):
    """The standard-normal draws of one mini-batch (docs/model-rnn.md section 2), time-major.

    ``eps`` (R, T, B, N) of the hidden units; ``eps_out`` (R, B, N_out) for the last-step
    readout or (R, T, B, N_out) for the every-step one; ``private`` (R, T, B, N), multiplied by
    ``sigma_rec sqrt(2 alpha)``. Any of them may be ``None`` (that noise is off).
    """

    eps: object = None
    eps_out: object = None
    private: object = None


class Moments(NamedTuple):
    """``c mu`` and ``c^2 var`` of one matrix (``var_hat`` is ``None`` where it has no variance path)."""

    mu_hat: object
    var_hat: object


class Trace(NamedTuple):
    """What the backward pass needs from the forward pass (docs/model-rnn.md section 4)."""

    xs: object  # time-major inputs (R or none, T, B, N_in)
    x2s: object  # their squares, or None without an input variance path
    r: object  # rates (R, T+1, B, N); r[:, 0] = ReLU(h0); the ReLU mask is r > 0
    w: object  # eps / D (R, T, B, N) where the hidden variance path is on, else None
    w_out: object  # eps_out / D_out where the readout variance path is on, else None
    scratch: object  # a free (R, T, B, N) array the backward pass writes d_t into
    moments: tuple  # Moments per matrix
    h: object  # the last hidden state h_T (R, B, N)


# --- moments --------------------------------------------------------------------------------


def moments(params: RnnParams, spec: RnnSpec, *, bp: bool = False, noisy: bool = True) -> tuple:
    """``(c mu, c^2 var)`` of every matrix, from the feed-forward model's one definition.

    ``kernels.scaled_moments`` folds ``1/sqrt(n)`` and ``1/n`` into the moments; with ``n`` the
    fan-in or 1 (``spec.n_eff``) that is ``c mu`` and ``c^2 var`` in both scalings. Matrices
    without a variance path (deterministic, BP, or a noise-free pass) get ``var_hat = None``.
    """
    out = []
    for layer, n, stochastic in zip(params, spec.n_eff, spec.stochastic(bp=bp)):
        mu_hat, var_hat = kernels.scaled_moments(layer.pi, layer.m, layer.xi, n)
        out.append(Moments(mu_hat, var_hat if (stochastic and noisy) else None))
    return tuple(out)


def _t(a):
    return a.swapaxes(-1, -2)


def _time_major(x, xp):
    """(…, B, T, F) -> contiguous (…, T, B, F)."""
    return xp.ascontiguousarray(xp.swapaxes(x, -2, -3))


def _flat(a):
    """(R, T, B, F) -> (R, T*B, F) (a view for the contiguous per-replica blocks used here)."""
    return a.reshape(a.shape[:-3] + (-1, a.shape[-1]))


# --- forward ----------------------------------------------------------------------------------


def forward(params: RnnParams, x, noise: Noise | None, spec: RnnSpec, *, bp: bool = False):
    """Mean-field dynamics with fixed noise (docs/model-rnn.md section 2): outputs and a :class:`Trace`.

    ``x`` (B, T, N_in) or (R, B, T, N_in); ``noise`` a :class:`Noise` or ``None`` for the
    noise-free pass (``eps = 0``, no private noise: ``u = g``). Returns ``y`` as (R, B, N_out)
    for ``spec.readout == "last"`` and (R, B, T, N_out) for ``"all"``.
    """
    xp = namespace_of(x, params.recurrent.m)
    noise = noise or Noise()
    R, N = params.recurrent.m.shape[0], spec.n
    B, T = x.shape[-3], x.shape[-2]
    dt = params.recurrent.m.dtype
    mom_in, mom_rec, mom_out = mom = moments(params, spec, bp=bp, noisy=noise.eps is not None)
    hidden_var = mom_rec.var_hat is not None

    xs = _time_major(x, xp)
    x2s = xs * xs if mom_in.var_hat is not None else None
    # the input drive of every step in one product: G[:, t] = c_i mu_i x_t, V[:, t] = c_i^2 var_i x_t^2
    G = xp.matmul(_flat(xs), _t(mom_in.mu_hat)).reshape(R, T, B, N)
    V = None
    if hidden_var:
        V = (xp.matmul(_flat(x2s), _t(mom_in.var_hat)).reshape(R, T, B, N) if x2s is not None
             else xp.zeros((R, T, B, N), dt))
    w = xp.empty((R, T, B, N), dt) if hidden_var else None

    r = xp.empty((R, T + 1, B, N), dt)
    h = xp.full((R, B, N), spec.h0, dtype=dt)
    r[:, 0] = max(spec.h0, 0.0)
    muT_rec = _t(mom_rec.mu_hat)
    varT_rec = _t(mom_rec.var_hat) if hidden_var else None
    buf, buf2 = xp.empty((R, B, N), dt), xp.empty((R, B, N), dt)
    priv = noise.private if (noise.private is not None and spec.sigma_rec > 0) else None
    priv_scale = spec.sigma_rec * math.sqrt(2 * spec.alpha)
    leak, alpha = 1 - spec.alpha, spec.alpha
    if hidden_var and priv is None and _cpu.applies(G, V, w, r, h, buf, buf2, noise.eps, muT_rec, varT_rec):
        _forward_compiled(G, V, w, r, h, buf, buf2, noise.eps, muT_rec, varT_rec, leak, alpha)
    else:
        for t in range(T):
            rp = r[:, t]
            g = G[:, t]
            g += xp.matmul(rp, muT_rec, out=buf)  # g_t, written over the input drive
            if hidden_var:
                D2 = V[:, t]
                xp.multiply(rp, rp, out=buf)
                D2 += xp.matmul(buf, varT_rec, out=buf2)
                # u = g + D eps and w = eps / D masked where D = 0 (docs/model-rnn.md section 4)
                u, w[:, t] = kernels.noisy_preactivation(g, D2, noise.eps[:, t])
            else:
                u = g
            h *= leak
            u *= alpha
            h += u
            if priv is not None:
                h += priv_scale * priv[:, t]
            xp.maximum(h, 0, out=r[:, t + 1])

    y, w_out = _readout(r, mom_out, noise.eps_out, spec, xp)
    return y, Trace(xs, x2s, r, w, w_out, G, mom, h)


def _rows(a):
    """(R, ..., B, N) -> a (R, ..., B*N) view (C-contiguous arrays only)."""
    return a.reshape(a.shape[:-2] + (-1,))


def _forward_compiled(G, V, w, r, h, buf, buf2, eps, muT_rec, varT_rec, leak, alpha):
    """The steps of :func:`forward` with the element-wise work of each step in one compiled loop
    (:mod:`mfphys.cpu_kernels`): the same products and the same numbers bit for bit, a dozen
    NumPy calls per step fewer (bench/README.md, the recurrent epoch)."""
    step = _cpu.kernels()["rnn_step"]
    dt = G.dtype.type
    T = G.shape[1]
    G3, V3, E3, W3, r3, h2, m1, m2 = (_rows(a) for a in (G, V, eps, w, r, h, buf, buf2))
    r2 = np.empty_like(buf)
    np.multiply(r[:, 0], r[:, 0], out=r2)
    r2_2 = _rows(r2)
    for t in range(T):
        np.matmul(r[:, t], muT_rec, out=buf)
        np.matmul(r2, varT_rec, out=buf2)
        step(G3, V3, t, m1, m2, E3, h2, dt(leak), dt(alpha), dt(0), dt(1), W3, r3, r2_2)


def _readout(r, mom_out: Moments, eps_out, spec: RnnSpec, xp):
    """``y = c_o mu_o r + sqrt(c_o^2 var_o r^2) eps_out`` at the last step or at every step."""
    R, T1, B, N = r.shape
    if spec.readout == "last":
        a = r[:, -1]
    else:
        a = _flat(r[:, 1:])  # (R, T*B, N): the readout of all steps is one product
    g = xp.matmul(a, _t(mom_out.mu_hat))
    w_out = None
    if mom_out.var_hat is not None and eps_out is not None:
        e = eps_out if spec.readout == "last" else _flat(eps_out)
        g, w_out = kernels.noisy_preactivation(g, xp.matmul(a * a, _t(mom_out.var_hat)), e)
    if spec.readout == "all":
        g = g.reshape(R, T1 - 1, B, -1).swapaxes(1, 2)  # public layout (R, B, T, N_out)
    return g, w_out


# --- losses ---------------------------------------------------------------------------------------


def last_step_loss(y, labels):
    """Mean cross-entropy per replica (R,) of the last-step outputs and ``dL/dy`` (docs/model-rnn.md section 3).

    ``labels`` (B,) or (R, B) integers."""
    xp = namespace_of(y)
    labels = xp.broadcast_to(labels, y.shape[:-1])
    loss, p, oh = cross_entropy(y, labels)
    return loss, (p - oh) * (1 / y.shape[-2])


def masked_squared_error(y, target, mask):
    """``L = 1/(2 B T) sum (M (y - y*))^2`` per replica (R,) and ``dL/dy`` (docs/model-rnn.md section 3).

    ``y`` (R, B, T, N_out); ``target`` and ``mask`` (B, T, N_out) or (R, B, T, N_out)."""
    B, T = y.shape[-3], y.shape[-2]
    e = (y - target) * mask
    loss = 0.5 / (B * T) * (e * e).sum(axis=(-3, -2, -1))
    e *= mask
    e *= 1 / (B * T)
    return loss, e


# --- backward ---------------------------------------------------------------------------------------


def backward(params: RnnParams, trace: Trace, e, spec: RnnSpec, *, bp: bool = False) -> RnnParams:
    """BPTT through the mean and the variance paths (docs/model-rnn.md section 4).

    ``e = dL/dy`` in the layout of the outputs. Returns one :class:`Layer` of gradients per
    matrix, with ``None`` for the kinds that are not trained (``spec.trainable``). Overwrites
    ``trace.w`` and ``trace.scratch``: a trace serves one backward pass.
    """
    xp = namespace_of(e)
    mom_in, mom_rec, mom_out = trace.moments
    r, w, d_all = trace.r, trace.w, trace.scratch
    R, T1, B, N = r.shape
    T = T1 - 1
    c_in, c_rec, c_out = (1 / math.sqrt(n) for n in spec.n_eff)
    leak, alpha = 1 - spec.alpha, spec.alpha

    # readout: rho_t = dL/dr_t through y_t, and the readout's moment gradients
    if spec.readout == "last":
        a, ef = r[:, -1], e
    else:
        a, ef = _flat(r[:, 1:]), _flat(_time_major(e, xp))
    et = ef * trace.w_out if trace.w_out is not None else None  # e~ = e eps_out / D_out
    rho = xp.matmul(ef, mom_out.mu_hat)
    g_mu_out = xp.matmul(_t(ef), a) * c_out
    g_var_out = None
    if et is not None:
        rho += a * xp.matmul(et, mom_out.var_hat)
        g_var_out = xp.matmul(_t(et), a * a) * (0.5 * c_out * c_out)
    if spec.readout == "all":
        rho = rho.reshape(R, T, B, N)

    # z_t = dL/dh_t, from t = T down to 1; d_t = alpha z_t is kept for the weight gradients
    z = xp.zeros((R, B, N), r.dtype)
    dt = r.dtype.type
    acc = xp.empty((R, B, N), r.dtype)
    buf = xp.empty((R, B, N), r.dtype)
    fused = None
    if w is not None and spec.readout == "last" and _cpu.applies(acc, buf, r, z, d_all, w, mom_rec.mu_hat,
                                                                 mom_rec.var_hat):
        step = _cpu.kernels()["rnn_back_step"]
        acc2, buf2, r3, z2, d3, w3 = (_rows(a) for a in (acc, buf, r, z, d_all, w))  # views, made once

        def fused(t):
            step(acc2, buf2, r3, t, z2, dt(leak), dt(alpha), dt(0), dt(1), d3, w3)
    for t in range(T, 0, -1):
        rt = r[:, t]
        if t < T and fused is not None:  # the same step, its element-wise work in one compiled loop
            np.matmul(d_all[:, t], mom_rec.mu_hat, out=acc)
            np.matmul(w[:, t], mom_rec.var_hat, out=buf)
            fused(t)
            continue
        if t < T:  # dL/dr_t through u_{t+1}: c_r mu_r^T d_{t+1} + c_r^2 r_t (var_r^T d~_{t+1})
            xp.matmul(d_all[:, t], mom_rec.mu_hat, out=acc)
            if w is not None:
                xp.matmul(w[:, t], mom_rec.var_hat, out=buf)
                buf *= rt
                acc += buf
            if spec.readout == "all":
                acc += rho[:, t - 1]
        else:
            acc[...] = rho[:, t - 1] if spec.readout == "all" else rho
        acc *= rt > 0  # f'(h_t) of ReLU: h_t > 0 exactly where r_t > 0
        z *= leak
        z += acc
        d = xp.multiply(z, alpha, out=d_all[:, t - 1])
        if w is not None:
            w[:, t - 1] *= d  # d~_t = d_t eps_t / D_t, over the stored eps / D

    # sums over time: one product per moment (docs/model-rnn.md section 4)
    dT = _t(_flat(d_all))  # (R, N, T*B)
    r_prev = _flat(r[:, :-1])
    g_mu_rec = xp.matmul(dT, r_prev) * c_rec
    g_mu_in = xp.matmul(dT, _flat(trace.xs)) * c_in
    g_var_rec = g_var_in = None
    if w is not None:
        dtT = _t(_flat(w))
        g_var_rec = xp.matmul(dtT, r_prev * r_prev) * (0.5 * c_rec * c_rec)
        if trace.x2s is not None:
            g_var_in = xp.matmul(dtT, _flat(trace.x2s)) * (0.5 * c_in * c_in)

    grads = []
    for layer, g_mu, g_var, kinds in zip(params, (g_mu_in, g_mu_rec, g_mu_out), (g_var_in, g_var_rec, g_var_out),
                                         spec.trainable(bp=bp)):
        # the chain rule of docs/model.md section 3 maps (G^mu, G^var) to (pi, m, Xi); with no
        # variance path G^var = 0 and only dL/dm = (1 - pi) G^mu is used (pi = 1 on masked inputs)
        d_pi, d_m, d_xi = kernels.chain_rule(layer.pi, layer.m, layer.xi, g_mu,
                                             g_var if g_var is not None else xp.zeros_like(g_mu))
        grads.append(Layer(d_pi if "pi" in kinds else None, d_m, d_xi if "xi" in kinds else None))
    return RnnParams(*grads)


def loss_and_grad(params: RnnParams, x, target, noise: Noise | None, spec: RnnSpec, *, mask=None, bp: bool = False):
    """Loss per replica (R,), gradients (:class:`RnnParams` of :class:`Layer`) and outputs.

    ``target``: integer labels (B,) or (R, B) for the last-step readout; for the every-step
    readout target values and ``mask`` (B, T, N_out) or (R, B, T, N_out). The noise is held
    fixed in the backward pass (docs/model-rnn.md section 4).
    """
    y, trace = forward(params, x, noise, spec, bp=bp)
    if spec.readout == "last":
        loss, e = last_step_loss(y, target)
    else:
        if mask is None:
            raise MfphysError("the every-step readout needs a loss mask")
        loss, e = masked_squared_error(y, target, mask)
    return loss, backward(params, trace, e, spec, bp=bp), y


# --- initialisation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixInit:
    """Initial ``(pi, m, Xi)`` of one matrix, in the reference scaling (docs/model-rnn.md section 7).

    ``m ~ m_std Normal(0, 1)`` (``m="normal"``) or the identity (``m="identity"``, square
    matrices), ``Xi ~ xi Uniform(0, 1)``, ``pi = 0``. In the ``"fan_in"`` scaling the values
    are multiplied by ``sqrt(n)`` (``m``) and ``n`` (``Xi``), so both scalings start the same network.
    """

    m: str = "normal"
    m_std: float = 1.0
    xi: float = 0.0

    def __post_init__(self):
        if self.m not in ("normal", "identity"):
            raise MfphysError(f"unknown m initialisation {quote(self.m)}: choose normal or identity")
        for name in ("m_std", "xi"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise MfphysError(f"initial {name} must be a finite number >= 0, got {v}")


def init_params(spec: RnnSpec, inits, rngs, *, bp: bool = False, dtype=np.float64, input_mask=None) -> RnnParams:
    """Initial parameters on the host: one NumPy generator per replica (``backend.replica_rngs``).

    ``inits``: one :class:`MatrixInit` per matrix. Per replica the draws come in the order input
    (m, Xi), recurrent, output, so replica ``r`` gets the same numbers whatever the number of
    replicas. Deterministic matrices (``spec.stochastic``) start with ``pi = Xi = 0``;
    ``input_mask`` (N, N_in) bool marks the input connections that exist: the others are held
    at ``pi = 1``, ``m = Xi = 0`` (docs/model-rnn.md section 1).
    """
    per_replica = []
    for rng in rngs:
        mats = []
        for (n_out, n_in), init, n, stochastic in zip(spec.shapes, inits, spec.n_eff, spec.stochastic(bp=bp)):
            if init.m == "identity":
                if n_out != n_in:
                    raise MfphysError(f"an identity initialisation needs a square matrix, not {n_out}x{n_in}")
                m = np.eye(n_out)
            else:
                m = init.m_std * rng.standard_normal((n_out, n_in))
            xi = init.xi * rng.random((n_out, n_in)) if (stochastic and init.xi > 0) else np.zeros((n_out, n_in))
            # the reference scaling's weights, seen through c = 1/sqrt(n): m' = sqrt(n) m, Xi' = n Xi
            mats.append((np.zeros((n_out, n_in)), m * math.sqrt(n), xi * n))
        per_replica.append(mats)
    params = RnnParams(*(Layer(*(np.stack([rep[k][j] for rep in per_replica]).astype(dtype) for j in range(3)))
                         for k in range(3)))
    return clamp_masked(params, input_mask)


def clamp_masked(params: RnnParams, input_mask):
    """Hold the input connections outside ``input_mask`` at ``pi = 1``, ``m = Xi = 0``, in place."""
    if input_mask is None:
        return params
    layer = params.input
    xp = namespace_of(layer.m)
    on = xp.asarray(input_mask)
    layer.pi[...] = xp.where(on, layer.pi, 1)
    xp.multiply(layer.m, on, out=layer.m)
    xp.multiply(layer.xi, on, out=layer.xi)
    return params
