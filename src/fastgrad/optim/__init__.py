"""fastgrad.optim: PyTorch's optimizers and learning-rate schedulers, with compiled updates.

    opt = fastgrad.optim.Adam(model.parameters(), lr=1e-3)
    opt.zero_grad(); loss.backward(); opt.step()
"""
from fastgrad.optim.optimizer import Optimizer
from fastgrad.optim.sgd import SGD
from fastgrad.optim.adam import Adam
from fastgrad.optim.adamw import AdamW
from fastgrad.optim.adagrad import Adagrad
from fastgrad.optim.rmsprop import RMSprop
from fastgrad.optim.nadam import NAdam
from fastgrad.optim.radam import RAdam
from fastgrad.optim.adamax import Adamax
from fastgrad.optim.adadelta import Adadelta
from fastgrad.optim.rprop import Rprop
from fastgrad.optim.asgd import ASGD
from fastgrad.optim.lbfgs import LBFGS
from fastgrad.optim import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "NAdam", "RAdam", "Adamax",
           "Adadelta", "Rprop", "ASGD", "LBFGS", "lr_scheduler"]
