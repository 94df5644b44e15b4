"""L-BFGS (torch.optim.LBFGS): closure-based, over the parameters as one flat vector.

The algorithm runs in NumPy over flat arrays of the parameters' dtype. Its scalars (dot
products, 1 / y·s, the diagonal scaling, the step) are NumPy scalars of that dtype, as PyTorch's
are 0-d tensors of it, so float32 parameters take float32 roundings in the same places.
"""
import numpy as np

from fastgrad._creation import from_numpy
from fastgrad.optim._checks import check_lr
from fastgrad.optim._state import scalar
from fastgrad.optim.optimizer import Optimizer, _no_grad_step, _run_closure
from fastgrad._core.tensor import TensorBase

__all__ = ["LBFGS"]

# The state entries that are arrays (flat vectors, scalars) or lists of them.
_ARRAYS = ("d", "t", "H_diag", "prev_flat_grad")
_LISTS = ("old_dirs", "old_stps", "ro", "al")


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through (x1, f1, slope g1) and (x2, f2, slope g2), clamped to
    `bounds` (default: the interval between x1 and x2); its midpoint when the cubic has none."""
    if bounds is not None:
        lo, hi = bounds
    else:
        lo, hi = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1 ** 2 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2.0
    d2 = np.sqrt(disc)
    if x1 <= x2:
        x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(x, lo), hi)


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9,
                  max_ls=25):
    """A step t along d meeting the strong Wolfe conditions (sufficient decrease c1, curvature
    c2): bracketing by growing t, then zooming by cubic interpolation (PyTorch's line search,
    after minFunc). Returns (loss, flat gradient, t, evaluations)."""
    d_norm = np.abs(d).max()
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    evals = 1
    gtd_new = g_new.dot(d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    it = 0
    bracket = bracket_f = bracket_g = bracket_gtd = None
    while it < max_ls:
        if f_new > (f + c1 * t * gtd) or (it > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        # extrapolate within [t + 0.01 (t - t_prev), 10 t]
        t_next = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                                    bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new.copy(), gtd_new
        t = t_next
        f_new, g_new = obj_func(x, t, d)
        evals += 1
        gtd_new = g_new.dot(d)
        it += 1
    if it == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # zoom: shrink the bracket until a point satisfies the conditions
    insuf_progress = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and it < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # keep t away from the bracket's ends unless the last step made no progress
        top, bottom = max(bracket), min(bracket)
        eps = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < eps:
            if insuf_progress or t >= top or t <= bottom:
                t = top - eps if abs(t - top) < abs(t - bottom) else bottom + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        evals += 1
        gtd_new = g_new.dot(d)
        it += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low]:
            bracket[high], bracket_f[high] = t, f_new
            bracket_g[high], bracket_gtd[high] = g_new.copy(), gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low] = t, f_new
            bracket_g[low], bracket_gtd[low] = g_new.copy(), gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evals


def _to_array(v):
    """A state value as NumPy: tensors (ours, or loaded from a checkpoint) become arrays, 0-d
    ones scalars of their dtype; lists element by element; numbers stay."""
    if isinstance(v, TensorBase):
        a = v.detach().numpy()
        return a[()] if a.ndim == 0 else a
    if isinstance(v, list):
        return [_to_array(x) for x in v]
    return v


def _to_tensor(v):
    """A NumPy state value as a tensor, as PyTorch keeps it (numbers and None stay)."""
    if isinstance(v, (np.ndarray, np.generic)):
        return from_numpy(np.array(v))
    if isinstance(v, list):
        return [_to_tensor(x) for x in v]
    return v


class LBFGS(Optimizer):
    """Limited-memory BFGS: each step(closure) runs up to max_iter iterations along
    d = -H g (H from the last history_size curvature pairs), with a fixed step lr or a strong
    Wolfe line search (line_search_fn="strong_wolfe"). One parameter group only."""

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        check_lr(lr)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                        tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                        history_size=history_size, line_search_fn=line_search_fn)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups); "
                             "pass one list of parameters")
        self._params = self.param_groups[0]["params"]

    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__.setdefault("_params", self.param_groups[0]["params"])

    def _dtype(self):
        return np.result_type(*[p.detach().numpy().dtype for p in self._params])

    def _gather_flat_grad(self):
        dtype = self._dtype()
        return np.concatenate([np.zeros(p.numel(), dtype) if p.grad is None
                               else p.grad.detach().numpy().reshape(-1).astype(dtype, copy=False)
                               for p in self._params])

    def _add_grad(self, step_size, update):
        """p += step_size * (p's slice of the flat `update`), for every parameter."""
        offset = 0
        for p in self._params:
            n = p.numel()
            p.add_(from_numpy(np.ascontiguousarray(update[offset:offset + n]).reshape(p.shape)),
                   alpha=float(step_size))
            offset += n

    def _clone_param(self):
        return [p.detach().numpy().copy() for p in self._params]

    def _set_param(self, values):
        for p, v in zip(self._params, values):
            p.copy_(from_numpy(v))

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        loss = float(_run_closure(closure))
        flat_grad = self._gather_flat_grad()
        self._set_param(x)
        return loss, flat_grad

    @_no_grad_step
    def step(self, closure):
        """Run up to max_iter L-BFGS iterations; `closure` re-evaluates the model (clearing the
        gradients, backward) and returns the loss. Returns the closure's first loss."""
        group = self.param_groups[0]
        lr = scalar(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]
        if line_search_fn not in (None, "strong_wolfe"):
            raise RuntimeError("only 'strong_wolfe' is supported as LBFGS's line_search_fn "
                               f"(or None), got {line_search_fn!r}")

        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = _run_closure(closure)
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if np.abs(flat_grad).max(initial=0) <= tolerance_grad:
            return orig_loss

        d, t, H_diag, prev_flat_grad = (_to_array(state.get(k)) for k in _ARRAYS)
        old_dirs, old_stps, ro = (_to_array(state.get(k)) for k in _LISTS[:3])
        prev_loss = state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                # the new curvature pair, kept when y·s is positive enough
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = y.dot(s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)
                # two-loop recursion: d = -H g
                num_old = len(old_dirs)
                al = _to_array(state.get("al")) or [None] * history_size
                q = -flat_grad
                for i in range(num_old - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q = q + float(-al[i]) * old_dirs[i]
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r += float(al[i] - be_i) * old_stps[i]
                state["al"] = al

            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr
            else:
                t = lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:           # not a descent direction
                break

            evals = 0
            if line_search_fn is not None:
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, evals = _strong_wolfe(obj_func, x_init, t, d, loss,
                                                          flat_grad, gtd,
                                                          max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                opt_cond = np.abs(flat_grad).max(initial=0) <= tolerance_grad
            else:
                self._add_grad(t, d)
                opt_cond = False
                if n_iter != max_iter:
                    loss = float(_run_closure(closure))
                    flat_grad = self._gather_flat_grad()
                    opt_cond = np.abs(flat_grad).max(initial=0) <= tolerance_grad
                    evals = 1
            current_evals += evals
            state["func_evals"] += evals

            if (n_iter == max_iter or current_evals >= max_eval or opt_cond
                    or np.abs(d * t).max(initial=0) <= tolerance_change
                    or abs(loss - prev_loss) < tolerance_change):
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        for k in _ARRAYS + _LISTS:
            if k in state:
                state[k] = _to_tensor(state[k])
        return orig_loss
