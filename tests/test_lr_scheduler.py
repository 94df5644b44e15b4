"""Learning-rate schedulers: lr sequences over 60+ steps vs torch (where installed) and vs their
closed forms (always), chaining, step(epoch), get_last_lr, state dicts and warnings."""
import math
import warnings

import numpy as np
import pytest

from _backend import fg

STEPS = 60


def _optimizer(lib, name="SGD", groups=2, **kw):
    ps = [lib.zeros(2, requires_grad=True) for _ in range(groups)]
    kw = {"lr": 0.1, **kw}
    if name == "SGD":
        kw.setdefault("momentum", 0.9)
    if name == "Adagrad":
        kw.pop("momentum", None)
    lr = kw.pop("lr")
    lrs = [lr * (i + 1) for i in range(groups)]
    return getattr(lib.optim, name)([{"params": [p], "lr": lr} for p, lr in zip(ps, lrs)], **kw)


def _lambda(e):
    return 0.95 ** e if e % 7 else 0.5


def _half_life(x):
    return 0.5 ** (x / 20)


SCHEDULERS = {
    "StepLR": (dict(step_size=7, gamma=0.5), "SGD"),
    "MultiStepLR": (dict(milestones=[5, 12, 12, 40], gamma=0.3), "SGD"),
    "ExponentialLR": (dict(gamma=0.93), "SGD"),
    "CosineAnnealingLR": (dict(T_max=17, eta_min=0.001), "SGD"),
    "LambdaLR": (dict(lr_lambda=_lambda), "SGD"),
    "LinearLR": (dict(start_factor=0.25, end_factor=0.9, total_iters=23), "SGD"),
    "OneCycleLR": (dict(max_lr=[0.5, 1.0], total_steps=STEPS + 1), "SGD"),
    "OneCycleLR-adam-linear-3phase": (dict(max_lr=0.3, total_steps=STEPS + 1,
                                           anneal_strategy="linear", three_phase=True), "Adam"),
    "CyclicLR": (dict(base_lr=0.01, max_lr=[0.1, 0.3], step_size_up=4, step_size_down=7), "SGD"),
    "CyclicLR-triangular2": (dict(base_lr=[0.01, 0.02], max_lr=0.2, step_size_up=5,
                                  mode="triangular2"), "SGD"),
    "CyclicLR-exp_range-adam": (dict(base_lr=0.001, max_lr=0.01, step_size_up=3,
                                     mode="exp_range", gamma=0.97), "Adam"),
    "CyclicLR-scale_fn": (dict(base_lr=0.01, max_lr=0.1, step_size_up=6, scale_fn=_half_life,
                               scale_mode="iterations", cycle_momentum=False), "Adagrad"),
    "CosineAnnealingWarmRestarts": (dict(T_0=5, T_mult=2, eta_min=0.002), "SGD"),
    "CosineAnnealingWarmRestarts-flat": (dict(T_0=7), "Adam"),
}


def _sequence(lib, key, steps=STEPS):
    kw, opt_name = SCHEDULERS[key]
    opt = _optimizer(lib, opt_name)
    sched = getattr(lib.optim.lr_scheduler, key.split("-")[0])(opt, **kw)
    seq = [list(sched.get_last_lr())]
    moms = []
    for _ in range(steps):
        opt.step()
        sched.step()
        seq.append(list(sched.get_last_lr()))
        assert seq[-1] == [g["lr"] for g in opt.param_groups]
        g = opt.param_groups[0]
        moms.append(g["betas"][0] if "betas" in g else g.get("momentum", 0.0))
    return np.array(seq), np.array(moms)


@pytest.mark.parametrize("key", list(SCHEDULERS))
def test_sequence_vs_torch(key):
    torch = pytest.importorskip("torch")
    import fastgrad
    mine, my_moms = _sequence(fastgrad, key)
    theirs, their_moms = _sequence(torch, key)
    np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=0)
    np.testing.assert_allclose(my_moms, their_moms, rtol=1e-12, atol=0)


def _closed_form(key, base, e):
    """The documented closed form of each schedule at epoch e for base lr `base`."""
    if key == "StepLR":
        return base * 0.5 ** (e // 7)
    if key == "MultiStepLR":
        return base * 0.3 ** sum(m <= e for m in [5, 12, 12, 40])
    if key == "ExponentialLR":
        return base * 0.93 ** e
    if key == "CosineAnnealingLR":
        return 0.001 + (base - 0.001) * (1 + math.cos(math.pi * e / 17)) / 2
    if key == "LambdaLR":
        return base * _lambda(e)
    if key == "LinearLR":
        return base * (0.25 + (0.9 - 0.25) * min(23, e) / 23)
    if key == "CyclicLR":                  # up 4 steps from 0.01 to max, down 7, and again
        top = {0.1: 0.1, 0.2: 0.3}[base]
        t = e % 11
        return 0.01 + (top - 0.01) * (t / 4 if t <= 4 else (11 - t) / 7)
    if key == "CosineAnnealingWarmRestarts":   # periods of 5, 10, 20, 40 steps
        start, period = 0, 5
        while e >= start + period:
            start, period = start + period, period * 2
        return 0.002 + (base - 0.002) * (1 + math.cos(math.pi * (e - start) / period)) / 2
    raise KeyError(key)


@pytest.mark.parametrize("key", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                                 "LambdaLR", "LinearLR", "CyclicLR",
                                 "CosineAnnealingWarmRestarts"])
def test_sequence_vs_closed_form(key):
    seq, _ = _sequence(fg, key)
    want = np.array([[_closed_form(key, b, e) for b in (0.1, 0.2)] for e in range(STEPS + 1)])
    # the chainable (recursive) updates drift from the closed form only by rounding;
    # cosine annealing with eta_min > 0 is only close to it (PyTorch's recursion, as documented)
    rtol = 1e-3 if key == "CosineAnnealingLR" else 1e-10
    np.testing.assert_allclose(seq, want, rtol=rtol, atol=1e-12)


def test_cosine_annealing_without_eta_min_follows_closed_form_within_its_period():
    opt = _optimizer(fg, groups=1)
    sched = fg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20)
    for e in range(1, 20):
        opt.step()
        sched.step()
        assert sched.get_last_lr()[0] == pytest.approx(0.1 * (1 + math.cos(math.pi * e / 20)) / 2,
                                                      rel=1e-9, abs=1e-15)


def test_onecycle_closed_form():
    opt = _optimizer(fg, groups=1)
    total = 100
    sched = fg.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=total, pct_start=0.3)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(total - 1):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[0] == pytest.approx(1.0 / 25)
    assert max(lrs) == pytest.approx(1.0)
    assert int(np.argmax(lrs)) == 29                      # end of warm-up: 0.3 * 100 - 1
    assert lrs[-1] == pytest.approx(1.0 / 25 / 1e4)
    assert opt.param_groups[0]["momentum"] == pytest.approx(0.95)
    with pytest.raises(ValueError, match="Tried to step 101 times"):
        opt.step()
        sched.step()
        opt.step()
        sched.step()


def test_step_with_epoch_uses_closed_form_and_warns():
    opt = _optimizer(fg, groups=1)
    sched = fg.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    opt.step()
    with pytest.warns(UserWarning, match="epoch parameter"):
        sched.step(10)
    assert sched.get_last_lr()[0] == pytest.approx(0.1 * 0.5 ** 3)


def test_chained_schedulers_vs_torch():
    torch = pytest.importorskip("torch")
    import fastgrad

    def run(lib):
        opt = _optimizer(lib)
        s1 = lib.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=10)
        s2 = lib.optim.lr_scheduler.ExponentialLR(opt, gamma=0.97)
        out = []
        for _ in range(STEPS):
            opt.step()
            s1.step()
            s2.step()
            out.append(s2.get_last_lr())
        return np.array(out)

    np.testing.assert_allclose(run(fastgrad), run(torch), rtol=1e-12, atol=0)


def test_reduce_lr_on_plateau_vs_expected_and_torch():
    metrics = [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.79999, 0.5] + [0.5] * 20

    def run(lib, **kw):
        opt = _optimizer(lib)
        sched = lib.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
        out = []
        for m in metrics:
            opt.step()
            sched.step(m)
            out.append(sched.get_last_lr())
        return np.array(out)

    kws = [dict(patience=2, factor=0.5), dict(patience=1, factor=0.1, cooldown=2, min_lr=1e-3),
           dict(mode="max", patience=3, threshold=0.1, threshold_mode="abs")]
    got = run(fg, patience=2, factor=0.5)
    # best=0.9 at epoch 2; three bad epochs (3, 4, 5 -> 0.9, 0.9, ...) then halve
    assert got[0, 0] == pytest.approx(0.1)
    assert got[-1, 0] < 0.1
    try:
        import torch
    except ImportError:
        return
    import fastgrad
    for kw in kws:
        np.testing.assert_allclose(run(fastgrad, **kw), run(torch, **kw), rtol=1e-12, atol=0)


def test_reduce_lr_on_plateau_errors():
    opt = _optimizer(fg)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        fg.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="mode sideways is unknown"):
        fg.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="sideways")


def test_scheduler_before_optimizer_step_warns():
    opt = _optimizer(fg)
    sched = fg.optim.lr_scheduler.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()


def test_no_warning_in_the_right_order():
    opt = _optimizer(fg)
    sched = fg.optim.lr_scheduler.StepLR(opt, step_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()


def test_initial_lr_and_base_lrs():
    opt = _optimizer(fg)
    sched = fg.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    assert sched.base_lrs == [0.1, 0.2]
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.2]
    assert sched.last_epoch == 0
    with pytest.raises(KeyError, match="initial_lr"):
        fg.optim.lr_scheduler.StepLR(_optimizer(fg), step_size=2, last_epoch=3)


def test_scheduler_state_dict_round_trip():
    opt = _optimizer(fg)
    sched = fg.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        opt.step()
        sched.step()
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 4
    opt2 = _optimizer(fg)
    opt2.load_state_dict(opt.state_dict())
    sched2 = fg.optim.lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
    sched2.load_state_dict(sd)
    for _ in range(5):
        opt.step()
        sched.step()
        opt2.step()
        sched2.step()
        assert sched.get_last_lr() == sched2.get_last_lr()


def test_lambda_lr_validates_count():
    with pytest.raises(ValueError, match="Expected 2 lr_lambdas, but got 1"):
        fg.optim.lr_scheduler.LambdaLR(_optimizer(fg), lr_lambda=[lambda e: 1.0])


def test_not_an_optimizer():
    with pytest.raises(TypeError, match="is not an Optimizer"):
        fg.optim.lr_scheduler.StepLR(object(), step_size=1)


def test_schedule_drives_the_update():
    p = fg.ones(1, requires_grad=True)
    opt = fg.optim.SGD([p], lr=1.0)
    sched = fg.optim.lr_scheduler.MultiStepLR(opt, milestones=[1], gamma=0.5)
    p.grad = fg.ones(1)
    opt.step()                           # lr 1.0
    sched.step()
    p.grad = fg.ones(1)
    opt.step()                           # lr 0.5
    assert p.detach().numpy()[0] == pytest.approx(1.0 - 1.0 - 0.5)


def _sequential(lib, steps=30):
    S = lib.optim.lr_scheduler
    opt = _optimizer(lib)
    warm = S.LinearLR(opt, start_factor=0.1, total_iters=5)
    mid = S.ConstantLR(opt, factor=0.5, total_iters=3)
    decay = S.CosineAnnealingLR(opt, T_max=12, eta_min=0.01)
    sched = S.SequentialLR(opt, [warm, mid, decay], milestones=[5, 9])
    seq = [sched.get_last_lr()]
    for _ in range(steps):
        opt.step()
        sched.step()
        seq.append(sched.get_last_lr())
        assert seq[-1] == [g["lr"] for g in opt.param_groups]
    return np.array(seq)


def test_sequential_lr_warm_up_then_decay():
    seq = _sequential(fg)
    base = np.array([0.1, 0.2])
    np.testing.assert_allclose(seq[0], base * 0.1)            # the warm-up's first value
    np.testing.assert_allclose(seq[4], base * (0.1 + 0.9 * 4 / 5))
    np.testing.assert_allclose(seq[5:8], np.tile(base * 0.5, (3, 1)))   # ConstantLR from its start
    np.testing.assert_allclose(seq[8], base)                  # its total_iters reached
    np.testing.assert_allclose(seq[9], base)                  # the cosine from its first value
    assert (np.diff(seq[9:22, 0]) < 0).all()
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(seq, _sequential(torch), rtol=1e-12, atol=0)


def test_chained_cyclic_and_exponential_vs_torch():
    def run(lib):
        S = lib.optim.lr_scheduler
        opt = _optimizer(lib)
        sched = S.ChainedScheduler([S.CyclicLR(opt, 0.01, 0.1, step_size_up=3),
                                    S.ExponentialLR(opt, gamma=0.95)])
        out = []
        for _ in range(20):
            opt.step()
            sched.step()
            out.append(sched.get_last_lr() + [opt.param_groups[0]["momentum"]])
        return np.array(out)
    mine = run(fg)
    assert mine[:, 0].max() > 0.03 and mine[:, 2].min() < 0.9
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(mine, run(torch), rtol=1e-12, atol=0)


def test_warm_restarts_step_with_epoch_jumps_to_the_closed_form():
    opt = _optimizer(fg)
    sched = fg.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=5, T_mult=2, eta_min=0.002)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for e in (0.5, 3, 7.25, 16, 40):
            sched.step(e)
            start = 0 if e < 5 else 5 if e < 15 else 15 if e < 35 else 35
            period = {0: 5, 5: 10, 15: 20, 35: 40}[start]
            want = 0.002 + (0.1 - 0.002) * (1 + math.cos(math.pi * (e - start) / period)) / 2
            assert sched.get_last_lr()[0] == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="non-negative epoch"):
        sched.step(-1)


@pytest.mark.parametrize("make", [
    lambda S, o: S.CyclicLR(o, 0.01, 0.1, step_size_up=3, mode="exp_range", gamma=0.9),
    lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=3),
    lambda S, o: S.SequentialLR(o, [S.ConstantLR(o, total_iters=2), S.ExponentialLR(o, 0.9)],
                                milestones=[3]),
    lambda S, o: S.ChainedScheduler([S.StepLR(o, 2), S.ExponentialLR(o, 0.9)])])
def test_cycles_and_composed_state_dicts_resume_the_sequence(make):
    import pickle
    S = fg.optim.lr_scheduler

    def fresh():
        opt = _optimizer(fg)
        return opt, make(S, opt)
    opt, sched = fresh()
    for _ in range(7):
        opt.step()
        sched.step()
    state = pickle.loads(pickle.dumps(sched.state_dict()))
    opt2, sched2 = fresh()
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(state)
    for _ in range(9):
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step()
        assert sched2.get_last_lr() == sched.get_last_lr()


def test_cycles_and_composed_bad_arguments():
    S = fg.optim.lr_scheduler
    opt = _optimizer(fg)
    with pytest.raises(ValueError, match="positive integer T_0"):
        S.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="T_mult >= 1"):
        S.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0)
    with pytest.raises(ValueError, match="mode is invalid"):
        S.CyclicLR(opt, 0.01, 0.1, mode="sawtooth")
    with pytest.raises(ValueError, match="support momentum or beta1"):
        S.CyclicLR(_optimizer(fg, "Adagrad"), 0.01, 0.1)
    with pytest.raises(ValueError, match="one more than the number of milestone"):
        S.SequentialLR(opt, [S.StepLR(opt, 2)], milestones=[3])
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        S.SequentialLR(opt, [S.ReduceLROnPlateau(opt), S.StepLR(opt, 2)], milestones=[3])
    with pytest.raises(ValueError, match="at least one scheduler"):
        S.ChainedScheduler([])
    other = _optimizer(fg)
    with pytest.raises(ValueError, match="same optimizer"):
        S.ChainedScheduler([S.StepLR(opt, 2), S.StepLR(other, 2)])
