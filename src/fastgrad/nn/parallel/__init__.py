"""nn.parallel: PyTorch's single-process data parallelism across GPUs. fastgrad has one device,
the CPU, and behaves as PyTorch does on a machine without GPUs: DataParallel runs the module as
it is (the CPU's cores are used inside each op: fastgrad.set_num_threads), and data_parallel
raises RuntimeError."""
from fastgrad.nn.modules.module import Module

__all__ = ["DataParallel", "data_parallel"]


class DataParallel(Module):
    """Runs `module` unchanged (device_ids are ignored, as by PyTorch without GPUs); the wrapped
    module is `.module`, so a state_dict's keys start with "module." as in PyTorch."""

    def __init__(self, module, device_ids=None, output_device=None, dim=0):
        super().__init__()
        self.module = module
        self.device_ids = []

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)


def data_parallel(module, inputs, device_ids=None, output_device=None, dim=0,
                  module_kwargs=None):
    """PyTorch's functional DataParallel, which needs GPUs: RuntimeError here (call the module
    itself, or wrap it in DataParallel, which runs it on the CPU)."""
    raise RuntimeError("data_parallel: device type could not be determined (it replicates the "
                       "module across GPUs, and fastgrad runs on the CPU); call the module "
                       "itself, or wrap it in nn.DataParallel")
