"""fastgrad.nn: Module, Parameter, layers, activations, losses (torch.nn's names)."""
from fastgrad.nn.parameter import Parameter
from fastgrad.nn import functional, init  # noqa: F401
from fastgrad.nn.modules import *  # noqa: F401,F403
from fastgrad.nn.modules import (Module, Sequential, ModuleList, ModuleDict, Linear, Identity,  # noqa: F401
                                 Flatten, Dropout, Embedding, LayerNorm, BatchNorm1d, ReLU,
                                 LeakyReLU, GELU, ELU, SiLU, Sigmoid, Tanh, Softplus, Softmax,
                                 LogSoftmax, MSELoss, L1Loss, SmoothL1Loss, HuberLoss,
                                 CrossEntropyLoss, NLLLoss, BCELoss, BCEWithLogitsLoss)
from fastgrad.nn.modules.rnn import (RNNBase, RNN, LSTM, GRU, RNNCellBase, RNNCell,  # noqa: F401
                                     LSTMCell, GRUCell)
from fastgrad.nn.modules import (MultiheadAttention, TransformerEncoderLayer,  # noqa: F401
                                 TransformerEncoder, TransformerDecoderLayer, TransformerDecoder,
                                 Transformer, BatchNorm2d, GroupNorm, InstanceNorm1d,
                                 InstanceNorm2d, Dropout1d, Dropout2d, Upsample, PixelShuffle,
                                 PixelUnshuffle)
from fastgrad.nn import utils, parallel  # noqa: F401
from fastgrad.nn.parallel import DataParallel  # noqa: F401
