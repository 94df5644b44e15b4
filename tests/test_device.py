"""Devices as PyTorch's CPU build reports them: fastgrad.device, tensor.device, .to(device),
device= on creation functions, cuda / backends / accelerator, and PyTorch's error types when a
script asks for a device fastgrad does not have (FASTGRAD_TEST_BACKEND=torch runs the file on
the installed CPU build of PyTorch)."""
import pickle

import pytest

from _backend import fg, REFERENCE

CUDA_MSG = "Torch not compiled with CUDA enabled"


def test_device_construction_and_attributes():
    d = fg.device("cpu")
    assert (d.type, d.index) == ("cpu", None)
    assert repr(d) == "device(type='cpu')" and str(d) == "cpu"
    d0 = fg.device("cpu:0")
    assert (d0.type, d0.index) == ("cpu", 0)
    assert repr(d0) == "device(type='cpu', index=0)" and str(d0) == "cpu:0"
    assert fg.device("cpu", 0) == d0 and fg.device(type="cpu", index=0) == d0
    assert fg.device(d0) == d0 and fg.device(d) == d
    assert d != d0 and d != "cpu"                    # PyTorch compares type and index only
    assert len({fg.device("cpu"), fg.device("cpu"), d0}) == 2
    assert pickle.loads(pickle.dumps(d0)) == d0
    cuda = fg.device("cuda:1")                       # naming a device is allowed ...
    assert (cuda.type, cuda.index) == ("cuda", 1) and str(cuda) == "cuda:1"


@pytest.mark.parametrize("spec", ["foo", "CPU", "cpu:x", "cpu:-1"])
def test_bad_device_strings_raise_runtime_error(spec):
    with pytest.raises(RuntimeError):
        fg.device(spec)


def test_negative_index_raises():
    with pytest.raises(RuntimeError, match="Device index must not be negative"):
        fg.device("cpu", -1)


def test_tensor_device_and_moves():
    x = fg.ones(2)
    assert x.device == fg.device("cpu") and x.device.type == "cpu"
    assert not x.is_cuda and x.is_cpu and x.get_device() == -1
    assert x.to("cpu") is x and x.to(fg.device("cpu")) is x and x.cpu() is x
    assert x.to(device="cpu") is x and x.to("cpu", non_blocking=True) is x
    y = x.to(fg.device("cpu"), fg.float64)
    assert y.dtype == fg.float64 and y.tolist() == [1.0, 1.0]
    assert x.to("cpu", dtype=fg.int64).dtype == fg.int64
    assert x.to(fg.zeros(1, dtype=fg.float16)).dtype == fg.float16
    assert x.to(fg.float32, copy=True) is not x


CREATORS = {
    "tensor": lambda d: fg.tensor([1.0], device=d),
    "as_tensor": lambda d: fg.as_tensor([1.0], device=d),
    "zeros": lambda d: fg.zeros(2, device=d),
    "ones": lambda d: fg.ones(2, device=d),
    "full": lambda d: fg.full((2,), 3.0, device=d),
    "empty": lambda d: fg.empty(2, device=d),
    "arange": lambda d: fg.arange(3, device=d),
    "linspace": lambda d: fg.linspace(0, 1, 3, device=d),
    "rand": lambda d: fg.rand(2, device=d),
    "randn": lambda d: fg.randn(2, device=d),
    "randint": lambda d: fg.randint(0, 5, (2,), device=d),
    "randperm": lambda d: fg.randperm(4, device=d),
    "eye": lambda d: fg.eye(2, device=d),
    "zeros_like": lambda d: fg.zeros_like(fg.ones(2), device=d),
    "ones_like": lambda d: fg.ones_like(fg.ones(2), device=d),
    "full_like": lambda d: fg.full_like(fg.ones(2), 2.0, device=d),
    "empty_like": lambda d: fg.empty_like(fg.ones(2), device=d),
    "rand_like": lambda d: fg.rand_like(fg.ones(2), device=d),
    "randn_like": lambda d: fg.randn_like(fg.ones(2), device=d),
}


@pytest.mark.parametrize("name", list(CREATORS))
def test_creation_on_cpu_and_on_cuda(name):
    for d in ("cpu", "cpu:0", fg.device("cpu"), None):
        assert CREATORS[name](d).device.type == "cpu"
    with pytest.raises(AssertionError, match=CUDA_MSG):
        CREATORS[name]("cuda")
    with pytest.raises(AssertionError, match=CUDA_MSG):
        CREATORS[name](fg.device("cuda:0"))


@pytest.mark.parametrize("move", [lambda x: x.to("cuda"), lambda x: x.to("cuda:0"),
                                  lambda x: x.to(device="cuda"), lambda x: x.cuda(),
                                  lambda x: x.to(fg.device("cuda"), fg.float64),
                                  lambda x: fg.nn.Linear(2, 2).to("cuda"),
                                  lambda x: fg.nn.Linear(2, 2).cuda()])
def test_moving_to_cuda_raises_assertion_error(move):
    with pytest.raises(AssertionError, match=CUDA_MSG):
        move(fg.ones(2))


def test_mps_raises_pytorch_types():
    with pytest.raises(RuntimeError):
        fg.ones(2).to("mps")
    with pytest.raises(NotImplementedError):
        fg.zeros(2, device="mps")


@pytest.mark.skipif(REFERENCE, reason="fastgrad's own message")
def test_messages_say_what_to_do():
    with pytest.raises(AssertionError) as info:
        fg.zeros(2, device="cuda")
    assert "CPU only" in str(info.value) and "torch.cuda.is_available()" in str(info.value)
    with pytest.raises(AssertionError, match="CPU only"):
        fg.set_default_device("cuda")


def test_module_to_device():
    m = fg.nn.Linear(2, 3)
    assert m.to("cpu") is m and m.to(fg.device("cpu")) is m and m.cpu() is m
    assert m.to(fg.device("cpu"), fg.float64).weight.dtype == fg.float64
    assert m.to(device="cpu", dtype=fg.float32).weight.dtype == fg.float32


def test_cuda_backends_accelerator():
    assert fg.cuda.is_available() is False and fg.cuda.device_count() == 0
    assert fg.cuda.manual_seed(0) is None and fg.cuda.manual_seed_all(0) is None
    fg.cuda.empty_cache()
    assert fg.backends.mps.is_available() is False and fg.backends.mps.is_built() is False
    assert fg.backends.cudnn.is_available() is False
    old = (fg.backends.cudnn.deterministic, fg.backends.cudnn.benchmark)
    try:
        fg.backends.cudnn.deterministic = True
        fg.backends.cudnn.benchmark = False
        assert fg.backends.cudnn.deterministic is True
    finally:
        fg.backends.cudnn.deterministic, fg.backends.cudnn.benchmark = old
    assert fg.backends.cuda.matmul.allow_tf32 is False
    assert fg.accelerator.is_available() is False
    assert fg.accelerator.current_accelerator() is None
    with pytest.raises(AssertionError, match=CUDA_MSG):
        fg.cuda.current_device()


def test_portable_device_idiom_runs_on_cpu():
    device = "cuda" if fg.cuda.is_available() else "cpu"
    x = fg.randn(4, 2, device=device)
    model = fg.nn.Linear(2, 1).to(device)
    assert model(x.to(device)).device == fg.device("cpu")


def test_default_device():
    assert fg.get_default_device() == fg.device("cpu")
    fg.set_default_device("cpu")
    fg.set_default_device(None)
    assert fg.get_default_device() == fg.device("cpu")
    if not REFERENCE:                      # PyTorch accepts it here and fails on the next op
        with pytest.raises(AssertionError, match=CUDA_MSG):
            fg.set_default_device("cuda")
        assert fg.zeros(1).device == fg.device("cpu")


def test_device_behaviour_matches_torch():
    torch = pytest.importorskip("torch")
    for spec in ["cpu", "cpu:0", "cuda", "cuda:2", "mps"]:
        a, b = fg.device(spec), torch.device(spec)
        assert (repr(a), str(a), a.type, a.index) == (repr(b), str(b), b.type, b.index)
    for spec in ["foo", "cpu:x"]:
        with pytest.raises(RuntimeError):
            torch.device(spec)
    with pytest.raises(AssertionError, match=CUDA_MSG):
        torch.zeros(2, device="cuda")
    with pytest.raises(AssertionError, match=CUDA_MSG):
        torch.zeros(2).to("cuda:0")


@pytest.mark.parametrize("args", [(3.5,), ("cpu", "x"), (None,)])
def test_bad_device_argument_types_raise_type_error(args):
    with pytest.raises(TypeError):
        fg.device(*args)


def test_other_device_kinds_are_false():
    """Scripts test tensor.is_xpu / is_mps (dcgan) before moving anything: False on the CPU."""
    x = fg.ones(2)
    for name in ("is_cuda", "is_mps", "is_xpu", "is_meta", "is_sparse", "is_quantized",
                 "is_mkldnn", "is_vulkan"):
        assert getattr(x, name) is False, name
    assert x.is_cpu is True


def test_data_parallel_on_the_cpu():
    """nn.DataParallel runs the module as it is (PyTorch without GPUs: device_ids ignored, the
    state_dict's keys under "module."); the functional form needs GPUs and raises."""
    import importlib
    parallel = importlib.import_module(fg.__name__ + ".nn.parallel")
    lin = fg.nn.Linear(3, 2)
    dp = fg.nn.DataParallel(lin, device_ids=[0, 1])
    x = fg.rand(4, 3)
    assert dp.device_ids == []
    assert bool((dp(x) == lin(x)).all())
    assert list(dp.state_dict()) == ["module.weight", "module.bias"]
    assert parallel.DataParallel is fg.nn.DataParallel
    with pytest.raises(RuntimeError, match="device type could not be determined"):
        parallel.data_parallel(lin, x)


@pytest.mark.skipif(REFERENCE, reason="fastgrad's export refuses; PyTorch's needs onnx")
def test_onnx_names_import_and_export_says_what_to_do():
    import importlib
    onnx = importlib.import_module(fg.__name__ + ".onnx")
    assert onnx.is_in_onnx_export() is False
    with pytest.raises(RuntimeError, match="torch.onnx.export"):
        onnx.export(fg.nn.Linear(2, 2), fg.ones(1, 2), "model.onnx")
